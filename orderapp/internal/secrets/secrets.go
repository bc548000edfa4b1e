// Package secrets takes the database credentials from the secret-proxy sidecar:
// it watches the four named secrets and hands complete, consistent credential
// sets to the caller, and re-reads them on demand when a login fails. Values
// live only in memory and are never logged: Credentials redacts its password
// when printed.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/secretproxy/secretproxy/proto/client"
	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Names are the sidecar secret names of the four credentials.
type Names struct {
	Server, User, Password, Database string
}

// DefaultNames are the names docs/reference/orderapp.md gives.
func DefaultNames() Names {
	return Names{Server: "db-server", User: "db-user", Password: "db-password", Database: "db-name"}
}

// All lists the four names. Every driver watches all four, sqlite included
// (which has no login and uses only the database file path): a new version of
// any of them opens a new pool, so the application behaves the same whatever
// the driver, and the demo shows a rotation exactly as production does it.
func (n Names) All() []string {
	return []string{n.Server, n.User, n.Password, n.Database}
}

// Entra lists the secrets a passwordless login (--db-auth entra) needs: the
// server and the database and, when the login names a user (PostgreSQL maps
// the role to the identity; Azure SQL takes the identity from the token), the
// user. No password secret is declared or read.
func (n Names) Entra(withUser bool) []string {
	if withUser {
		return []string{n.Server, n.User, n.Database}
	}
	return []string{n.Server, n.Database}
}

// Validate reports every empty or repeated name.
func (n Names) Validate() error {
	var probs []string
	seen := map[string]string{}
	for _, f := range []struct{ flag, v string }{
		{"--secret-server", n.Server}, {"--secret-user", n.User}, {"--secret-password", n.Password}, {"--secret-name", n.Database},
	} {
		if f.v == "" {
			probs = append(probs, f.flag+" must not be empty")
			continue
		}
		if prev, dup := seen[f.v]; dup {
			probs = append(probs, fmt.Sprintf("%s and %s name the same secret %q", prev, f.flag, f.v))
		}
		seen[f.v] = f.flag
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// Credentials are one consistent set of connection values.
type Credentials struct {
	Server   string
	User     string
	Password string
	Database string
	// Version identifies the set: the sidecar's version ids of the secrets, for logs.
	Version string
}

// String shows only the versions: the server, user name, password and
// database are all vault secrets, and no secret value goes into a log or an
// error, so a stray %v cannot leak one.
func (c Credentials) String() string {
	return fmt.Sprintf("credentials version=%s (values redacted)", c.Version)
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue makes slog print the versions of the credentials, never their values.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("version", c.Version))
}

// Source is the part of the sidecar client the watcher uses; *client.Client
// implements it.
type Source interface {
	Watch(ctx context.Context, names []string, fn func(context.Context, client.Update) error) error
	Refresh(ctx context.Context, name string) (*secretproxyv1.Secret, error)
}

var _ Source = (*client.Client)(nil)

// Watcher keeps the latest value of each credential secret.
type Watcher struct {
	src    Source
	names  Names
	need   []string
	logger *slog.Logger

	mu  sync.Mutex
	cur map[string]*secretproxyv1.Secret
}

// NewWatcher watches the four credential secrets.
func NewWatcher(src Source, names Names, logger *slog.Logger) *Watcher {
	return NewWatcherOf(src, names, names.All(), logger)
}

// NewWatcherOf watches only the secrets in need (a subset of names); the
// fields of Credentials whose secret is not watched stay empty.
func NewWatcherOf(src Source, names Names, need []string, logger *slog.Logger) *Watcher {
	return &Watcher{src: src, names: names, need: need, logger: logger, cur: map[string]*secretproxyv1.Secret{}}
}

// merge records the secrets of one message (a snapshot replaces everything)
// and returns the credentials once every needed secret is known.
func (w *Watcher) merge(initial bool, ss []*secretproxyv1.Secret) (Credentials, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if initial {
		w.cur = map[string]*secretproxyv1.Secret{}
	}
	for _, s := range ss {
		w.cur[s.GetName()] = s
	}
	var missing []string
	for _, n := range w.need {
		if w.cur[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Credentials{}, fmt.Errorf("the sidecar did not send %s: declare them in its configuration and in the vault", strings.Join(missing, ", "))
	}
	get := func(n string) string {
		if !contains(w.need, n) {
			return "" // not watched: a stale entry must not leak in
		}
		if s := w.cur[n]; s != nil {
			return s.GetValue()
		}
		return ""
	}
	vers := make([]string, 0, len(w.need))
	for _, n := range w.need {
		vers = append(vers, n+"@"+w.cur[n].GetVersion())
	}
	return Credentials{
		Server:   get(w.names.Server),
		User:     get(w.names.User),
		Password: get(w.names.Password),
		Database: get(w.names.Database),
		Version:  strings.Join(vers, ","),
	}, nil
}

// Run watches the secrets until ctx ends and calls apply with every complete
// credential set: the first snapshot and each change (a user name and password
// rotated together arrive in one message, so apply sees them together). An
// error from apply is logged and the watch goes on: the caller keeps its old
// pool, and the next version may work.
func (w *Watcher) Run(ctx context.Context, apply func(context.Context, Credentials) error) error {
	err := w.src.Watch(ctx, w.need, func(ctx context.Context, u client.Update) error {
		creds, err := w.merge(u.Initial, u.Secrets)
		if err != nil {
			w.logger.ErrorContext(ctx, "incomplete database credentials from the sidecar", "err", err)
			return nil
		}
		if err := apply(ctx, creds); err != nil {
			w.logger.ErrorContext(ctx, "new database credentials not applied; keeping the current connection",
				"credentials", creds, "err", err)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch database credentials: %w", err)
	}
	return nil
}

var errFirst = errors.New("first credentials received")

// First waits for the first complete credential set, for one-shot commands
// (migrate, seed, export).
func (w *Watcher) First(ctx context.Context) (Credentials, error) {
	var out Credentials
	var mergeErr error
	err := w.src.Watch(ctx, w.need, func(ctx context.Context, u client.Update) error {
		out, mergeErr = w.merge(u.Initial, u.Secrets)
		if mergeErr != nil {
			return mergeErr
		}
		return errFirst
	})
	switch {
	case errors.Is(err, errFirst):
		return out, nil
	case mergeErr != nil:
		return Credentials{}, mergeErr
	default:
		return Credentials{}, fmt.Errorf("read database credentials from the sidecar: %w", err)
	}
}

// Refresh asks the sidecar to re-read the login secrets from the vault (a login
// just failed, so the cached values may be out of date) and returns the
// credentials built from the answers.
func (w *Watcher) Refresh(ctx context.Context) (Credentials, error) {
	var got []*secretproxyv1.Secret
	for _, n := range []string{w.names.User, w.names.Password} {
		if !contains(w.need, n) {
			continue
		}
		s, err := w.src.Refresh(ctx, n)
		if err != nil {
			return Credentials{}, fmt.Errorf("refresh database credentials: %w", err)
		}
		got = append(got, s)
	}
	return w.merge(false, got)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
