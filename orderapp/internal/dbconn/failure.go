package dbconn

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
)

// IsConnectionFailure reports whether err is the database being unreachable or
// dropping the connection (refused, reset, timed out at the network, shut down,
// still starting up), as opposed to the server answering with an error about
// the statement. It is the failure a client can retry later with some hope;
// a login refusal is reported by IsLoginFailure, not here.
func IsConnectionFailure(err error) bool {
	// A context that ended is the caller's deadline or cancellation (it
	// satisfies net.Error too): callers answer those on their own terms.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// A server answer decides first: pgx wraps a refused login (28P01) in a
	// ConnectError too, and that is not a connection-level failure.
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return postgresConnectionState(pe.Code)
	}
	if isSQLServerError(err) {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return true
	}
	return false
}

// postgresConnectionState: class 08 (connection exception) and the operator
// interventions that end or refuse sessions: 57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now (the server is starting up).
func postgresConnectionState(code string) bool {
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}

func isSQLServerError(err error) bool {
	var me mssql.Error
	if errors.As(err, &me) {
		return true
	}
	var mp *mssql.Error
	return errors.As(err, &mp) && mp != nil
}
