package dbconn

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
)

func TestIsLoginFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"sql server 18456", mssql.Error{Number: 18456, Message: "Login failed for user 'app'."}, true},
		{"sql server 18456 wrapped", fmt.Errorf("ping database: %w", mssql.Error{Number: 18456}), true},
		{"sql server 18456 pointer", &mssql.Error{Number: 18456}, true},
		{"sql server other error", mssql.Error{Number: 208, Message: "Invalid object name"}, false},
		{"postgres 28P01", &pgconn.PgError{Code: "28P01"}, true},
		{"postgres 28P01 wrapped", fmt.Errorf("query: %w", &pgconn.PgError{Code: "28P01"}), true},
		{"postgres other", &pgconn.PgError{Code: "42P01"}, false},
		{"plain error", errors.New("password authentication failed"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsLoginFailure(tt.err); got != tt.want {
				t.Errorf("IsLoginFailure(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
