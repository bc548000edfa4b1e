package dialect

import (
	"testing"

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
