package dialect

import (
	"testing"
	"time"

	"github.com/golang-sql/civil"
	"github.com/google/go-cmp/cmp"
)

func TestRebind(t *testing.T) {
	q := "SELECT a FROM t WHERE x = ? AND (y < ? OR z = ?)"
	tests := []struct {
		d    Dialect
		want string
	}{
		{SQLite, q},
		{Postgres, "SELECT a FROM t WHERE x = $1 AND (y < $2 OR z = $3)"},
		{SQLServer, "SELECT a FROM t WHERE x = @p1 AND (y < @p2 OR z = @p3)"},
	}
	for _, tt := range tests {
		t.Run(string(tt.d), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.d.Rebind(q)); diff != "" {
				t.Errorf("Rebind (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, d := range All {
		got, err := Parse(string(d))
		if err != nil || got != d {
			t.Errorf("Parse(%q) = %q, %v", d, got, err)
		}
	}
	for _, bad := range []string{"", "mysql", "SQLite", "pgx"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", bad)
		}
	}
}

func TestDateArg(t *testing.T) {
	at := time.Date(2026, 1, 2, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		d    Dialect
		want any
	}{
		{SQLite, "2026-01-02"},
		{SQLServer, civil.Date{Year: 2026, Month: 1, Day: 2}},
		{Postgres, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.d.DateArg(at)); diff != "" {
			t.Errorf("%s DateArg (-want +got):\n%s", tt.d, diff)
		}
	}
}
