package dbconn

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

var errCause = errors.New("the cause")

// TestRedact: every credential value (all four are vault secrets), in the
// forms drivers print them, leaves an error message; the cause stays reachable.
func TestRedact(t *testing.T) {
	c := secrets.Credentials{Server: "test-server-1.example:5433", User: "test-user-1", Password: "test-password-1;{=}", Database: "test-database-1", Version: "v7"}
	tests := []struct {
		name, msg string
	}{
		{"pgx connect", "failed to connect to `user=test-user-1 database=test-database-1`: test-server-1.example:5433 (test-server-1.example): server error: FATAL: password authentication failed for user \"test-user-1\" (SQLSTATE 28P01)"},
		{"host alone", "dial tcp: lookup test-server-1.example: no such host"},
		{"url form", "parse sqlserver://test-user-1:" + "test-password-1%3B%7B%3D%7D" + "@test-server-1.example:5433?database=test-database-1"},
		{"password as is", "bad password test-password-1;{=}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := redact(fmt.Errorf("%s: %w", tt.msg, errCause), c)
			for _, v := range []string{c.Server, "test-server-1.example", c.User, c.Password, "test-password-1", c.Database} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("message keeps %q: %s", v, err)
				}
			}
			if !errors.Is(err, errCause) {
				t.Errorf("the cause is lost: %v", err)
			}
		})
	}
	if got := redact(errCause, secrets.Credentials{}); got.Error() != errCause.Error() {
		t.Errorf("empty credentials changed the message: %q", got)
	}
}

// TestDoRedactsErrors: an error a query returns through Do (which the HTTP
// layer logs) carries no credential value either.
func TestDoRedactsErrors(t *testing.T) {
	m, _, _ := newManager(t, dialect.SQLite, nil)
	path := filepath.Join(t.TempDir(), "redact.db")
	c := secrets.Credentials{Server: "test-server-1", User: "test-user-1", Password: "test-password-1", Database: path, Version: "v1"}
	if err := m.Apply(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	err := m.Do(t.Context(), func(*sql.DB) error {
		return fmt.Errorf("connect to test-server-1 as test-user-1 with test-password-1 on %s: %w", path, errCause)
	})
	for _, v := range []string{c.Server, c.User, c.Password, c.Database} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("Do's error keeps %q: %s", v, err)
		}
	}
	if !errors.Is(err, errCause) {
		t.Errorf("the cause is lost: %v", err)
	}
}
