package kvemulator

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// ErrSecretNotFound is returned by the admin methods for an unknown secret.
var ErrSecretNotFound = errors.New("secret not found")

// maxValueBytes is Key Vault's limit on a secret value (25 KiB).
const maxValueBytes = 25 * 1024

// secret is every version of one secret, oldest first; the last is "latest".
type secret struct {
	name     string // as first created; Key Vault keeps the original case
	versions []*version
}

type version struct {
	id          string // 32 lower-case hex characters, like Key Vault's
	value       string
	contentType string
	tags        map[string]string
	enabled     bool
	created     time.Time
	updated     time.Time
	expires     *time.Time
	notBefore   *time.Time
}

func (s *secret) latest() *version { return s.versions[len(s.versions)-1] }

func (s *secret) version(id string) *version {
	for _, v := range s.versions {
		if strings.EqualFold(v.id, id) {
			return v
		}
	}
	return nil
}

// SecretOption sets an attribute of a new secret version.
type SecretOption func(*version)

// WithContentType sets the version's content type.
func WithContentType(ct string) SecretOption { return func(v *version) { v.contentType = ct } }

// WithExpires sets the version's expiry ('exp').
func WithExpires(t time.Time) SecretOption {
	return func(v *version) { t := t.Truncate(time.Second); v.expires = &t }
}

// WithNotBefore sets the version's activation time ('nbf').
func WithNotBefore(t time.Time) SecretOption {
	return func(v *version) { t := t.Truncate(time.Second); v.notBefore = &t }
}

// WithTags sets the version's tags.
func WithTags(tags map[string]string) SecretOption {
	return func(v *version) { v.tags = maps.Clone(tags) }
}

// WithDisabled creates the version disabled.
func WithDisabled() SecretOption { return func(v *version) { v.enabled = false } }

// SetSecret creates a new version of the secret (creating the secret if
// needed) and returns the version id. It panics on a malformed name, since
// that is a bug in the calling test; the admin API validates names first.
func (e *Emulator) SetSecret(name, value string, opt ...SecretOption) string {
	if err := validateSecretName(name); err != nil {
		panic("kvemulator.SetSecret: " + err.Error())
	}
	id, err := randomHex(16)
	if err != nil {
		panic("kvemulator.SetSecret: " + err.Error())
	}
	now := e.now().UTC().Truncate(time.Second)
	v := &version{id: id, value: value, enabled: true, created: now, updated: now}
	for _, o := range opt {
		o(v)
	}
	e.mu.Lock()
	s, ok := e.secrets[strings.ToLower(name)]
	if !ok {
		s = &secret{name: name}
		e.secrets[strings.ToLower(name)] = s
	}
	s.versions = append(s.versions, v)
	e.mu.Unlock()
	e.log.Info("secret version set", "secret", s.name, "version", id)
	return id
}

// DisableSecret disables the latest version of the secret: reads of it answer
// 403 Forbidden with inner error code SecretDisabled.
func (e *Emulator) DisableSecret(name string) error { return e.setEnabled(name, false) }

// EnableSecret enables the latest version of the secret again.
func (e *Emulator) EnableSecret(name string) error { return e.setEnabled(name, true) }

func (e *Emulator) setEnabled(name string, enabled bool) error {
	e.mu.Lock()
	s, ok := e.secrets[strings.ToLower(name)]
	var v *version
	if ok {
		v = s.latest()
		v.enabled = enabled
		v.updated = e.now().UTC().Truncate(time.Second)
	}
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("set enabled=%t on %q: %w", enabled, name, ErrSecretNotFound)
	}
	e.log.Info("secret enabled changed", "secret", s.name, "version", v.id, "enabled", enabled)
	return nil
}

// DeleteSecret deletes the secret and every version. The emulator behaves as a
// vault with purge on delete: the name can be set again at once.
func (e *Emulator) DeleteSecret(name string) error {
	e.mu.Lock()
	_, ok := e.secrets[strings.ToLower(name)]
	delete(e.secrets, strings.ToLower(name))
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("delete %q: %w", name, ErrSecretNotFound)
	}
	e.log.Info("secret deleted", "secret", name)
	return nil
}

// validateSecretName applies Key Vault's rule: 1-127 characters of
// [0-9A-Za-z-].
func validateSecretName(name string) error {
	if name == "" || len(name) > 127 {
		return fmt.Errorf("invalid secret name %q: Key Vault names are 1-127 characters of 0-9, a-z, A-Z and '-'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("invalid secret name %q: Key Vault names are 1-127 characters of 0-9, a-z, A-Z and '-'", name)
		}
	}
	return nil
}
