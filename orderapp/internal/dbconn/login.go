package dbconn

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
)

// Login failure codes: SQL Server error 18456 ("Login failed for user") and
// PostgreSQL SQLSTATE 28P01 (invalid_password).
const (
	sqlServerLoginFailed = 18456
	postgresLoginFailed  = "28P01"
)

// IsLoginFailure reports whether err is the server refusing the credentials,
// the one failure a credential refresh can mend.
func IsLoginFailure(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == postgresLoginFailed
	}
	var me mssql.Error
	if errors.As(err, &me) {
		return me.Number == sqlServerLoginFailed
	}
	var mp *mssql.Error
	if errors.As(err, &mp) && mp != nil {
		return mp.Number == sqlServerLoginFailed
	}
	return false
}
