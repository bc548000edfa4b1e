package dbconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

func TestIsConnectionFailure(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"dial refused", fmt.Errorf("query: %w", refused), true},
		{"pgx connect error", &pgconn.ConnectError{}, true},
		{"bad connection", fmt.Errorf("exec: %w", driver.ErrBadConn), true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"postgres admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"postgres starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"postgres connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"postgres login refused is not a connection failure", &pgconn.PgError{Code: "28P01"}, false},
		{"postgres syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"postgres missing table", fmt.Errorf("list: %w", &pgconn.PgError{Code: "42P01"}), false},
		{"sql server error", mssql.Error{Number: 208}, false},
		{"sql server login", &mssql.Error{Number: 18456}, false},
		{"closed pool is a bug", sql.ErrConnDone, false},
		{"plain error", errors.New("connection refused"), false},
		{"deadline is not one (the caller's timeout)", context.DeadlineExceeded, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsConnectionFailure(tt.err); got != tt.want {
				t.Errorf("IsConnectionFailure(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestConnectionFailureFromDrivers: what the real drivers return for a port
// nobody listens on is a connection failure, not a login failure.
func TestConnectionFailureFromDrivers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, d := range []dialect.Dialect{dialect.Postgres, dialect.SQLServer} {
		t.Run(string(d), func(t *testing.T) {
			dsn, err := DSN(d, secrets.Credentials{Server: closed, User: "u", Password: "test-password-x", Database: "db"})
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open(d.DriverName(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err = db.PingContext(ctx)
			if !IsConnectionFailure(err) || IsLoginFailure(err) {
				t.Errorf("ping of a closed port: %v; IsConnectionFailure %v, IsLoginFailure %v, want true, false",
					err, IsConnectionFailure(err), IsLoginFailure(err))
			}
		})
	}
}
