// Package source is the seam between the sidecar's core (the cache and the
// gRPC API) and a secret backend. The core speaks only the words of this
// package: a secret, its version, not found, disabled, denied, transient with
// an optional Retry-After. A backend (internal/keyvault today) implements
// Source, turns its own answers into these errors, and supplies the rule its
// secret names follow; the app picks the backend in one place.
package source

import (
	"context"
	"errors"
	"time"
)

// Source reads one secret from a backend.
type Source interface {
	// Get reads one version of a secret; version "" means the latest. The
	// error is ErrNotFound or ErrDisabled (wrapped) for a settled answer;
	// anything else is transient and retried, a *TransientError carrying the
	// backend's Retry-After when it gave one. No error may hold a value.
	Get(ctx context.Context, name, version string) (Secret, error)
}

// Secret is one version of a secret as the backend returned it.
type Secret struct {
	Value       string
	Version     string
	ContentType string
	Tags        map[string]string
	Updated     time.Time // zero when unset
	Expires     time.Time // zero when unset
	NotBefore   time.Time // zero when unset
}

// Settled answers of a read. A backend wraps them with its own detail
// ("secret not found in the vault (404 SecretNotFound)"); the core checks them
// with errors.Is.
var (
	// ErrNotFound: the backend has no such secret (or version).
	ErrNotFound = errors.New("secret not found")
	// ErrDisabled: the secret exists and the backend refuses to serve it.
	ErrDisabled = errors.New("secret is disabled")
	// ErrDenied: the backend refused the sidecar's identity (authentication
	// or permission). It is transient, since a role assignment can come
	// later: a *TransientError with Denied set matches it.
	ErrDenied = errors.New("access denied by the backend")
)

// TransientError is a failed read that may succeed later: the backend was
// unreachable, throttled, failing or refused the identity for now. Its message
// is the backend's (Err); it never holds a value.
type TransientError struct {
	// Err says what the backend answered.
	Err error
	// RetryAfter is how long the backend asked to be left alone (a throttle);
	// 0 when it did not say.
	RetryAfter time.Duration
	// Denied marks a refusal of the identity: errors.Is(err, ErrDenied).
	Denied bool
}

func (e *TransientError) Error() string {
	if e.Err == nil {
		return "transient backend error"
	}
	return e.Err.Error()
}

func (e *TransientError) Unwrap() error { return e.Err }

// Is makes a denied read match ErrDenied.
func (e *TransientError) Is(target error) bool { return e.Denied && target == ErrDenied }

// RetryAfter returns the Retry-After of a throttled read.
func RetryAfter(err error) (time.Duration, bool) {
	var te *TransientError
	if errors.As(err, &te) && te.RetryAfter > 0 {
		return te.RetryAfter, true
	}
	return 0, false
}

// NameRule is a backend's rule for secret names. The API checks a name an
// application sends against it (a malformed name is INVALID_ARGUMENT, not
// PERMISSION_DENIED), and the configuration checks declared names with it.
type NameRule struct {
	// Valid reports whether name can name a secret of the backend.
	Valid func(name string) bool
	// Hint completes the message `"x" is not <Hint>`, saying what a valid
	// name looks like, e.g. "a Key Vault secret name: use 1-127 characters
	// of [0-9A-Za-z-]".
	Hint string
}
