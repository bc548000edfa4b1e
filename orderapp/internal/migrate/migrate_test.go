package migrate_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/migrate"
)

func TestEveryDialectHasTheSameVersions(t *testing.T) {
	var want []string
	for i, d := range dialect.All {
		ms, err := migrate.List(d)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Version)
		}
		if len(got) == 0 {
			t.Fatalf("%s has no migrations", d)
		}
		if i == 0 {
			want = got
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s versions differ from %s (-want +got):\n%s", d, dialect.All[0], diff)
		}
	}
}

func TestListRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no version":        {"d/init.sql": {Data: []byte("x")}},
		"letters":           {"d/v1_init.sql": {Data: []byte("x")}},
		"duplicate version": {"d/0001_a.sql": {Data: []byte("x")}, "d/0001_b.sql": {Data: []byte("y")}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := migrate.ListFS(fsys, "d"); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestApplyIsIdempotent: dbtest already migrated the database; a second run
// applies nothing and keeps the data.
func TestApplyIsIdempotent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db dbtest.DB) {
		dbtest.Load(t, db)
		done, err := migrate.Apply(t.Context(), db.DB, db.Dialect)
		if err != nil {
			t.Fatal(err)
		}
		if len(done) != 0 {
			t.Errorf("second run applied %v", done)
		}
		applied, err := migrate.Applied(t.Context(), db.DB)
		if err != nil {
			t.Fatal(err)
		}
		if !applied["0001"] {
			t.Errorf("schema_migrations = %v, want 0001 recorded", applied)
		}
		var n int
		if err := db.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM orders").Scan(&n); err != nil || n != 8 {
			t.Errorf("orders after re-running migrations: %d (%v), want 8", n, err)
		}
	})
}

// TestSQLServerMigrationIsTSQL: Azure SQL cannot run here, so the T-SQL file
// is checked for the mistakes that would only show in production: constructs
// from other dialects, and a CREATE that is not guarded by an existence check
// (migrate must be safe against the existing production database).
func TestSQLServerMigrationIsTSQL(t *testing.T) {
	ms, err := migrate.List(dialect.SQLServer)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		sql := strings.ToUpper(withoutComments(m.SQL))
		for _, bad := range []string{"CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS", " TIMESTAMP ", " LIMIT ", "SERIAL", "AUTOINCREMENT", "DROP ", "DELETE ", "TRUNCATE ", "ALTER TABLE"} {
			if strings.Contains(sql, bad) {
				t.Errorf("%s contains %q", m.Name, strings.TrimSpace(bad))
			}
		}
		creates := strings.Count(sql, "CREATE TABLE") + strings.Count(sql, "CREATE INDEX")
		guards := strings.Count(sql, "IS NULL\nBEGIN") + strings.Count(sql, "IF NOT EXISTS (SELECT")
		if creates != guards {
			t.Errorf("%s: %d CREATE statements but %d existence guards", m.Name, creates, guards)
		}
	}
}

// TestExistingDatabase: the production database held the tables, with data,
// before migrate existed (no schema_migrations). migrate records the version,
// creates nothing twice and keeps every row.
func TestExistingDatabase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db dbtest.DB) {
		dbtest.Load(t, db)
		// Test set-up only: forget that dbtest ran migrate.
		if _, err := db.DB.ExecContext(t.Context(), "DROP TABLE schema_migrations"); err != nil {
			t.Fatal(err)
		}
		done, err := migrate.Apply(t.Context(), db.DB, db.Dialect)
		if err != nil {
			t.Fatalf("migrate over the existing tables: %v", err)
		}
		if diff := cmp.Diff([]string{"0001"}, done); diff != "" {
			t.Errorf("applied (-want +got):\n%s", diff)
		}
		for table, want := range map[string]int{"clients": 3, "orders": 8, "order_lines": 3} {
			var n int
			if err := db.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != want {
				t.Errorf("%s: %d rows (err %v), want %d", table, n, err, want)
			}
		}
	})
}

// TestNoDestructiveStatements: no migration of any dialect drops, deletes,
// truncates, updates or alters (docs/reference/orderapp.md: migrate never drops or rewrites data).
func TestNoDestructiveStatements(t *testing.T) {
	for _, d := range dialect.All {
		t.Run(string(d), func(t *testing.T) {
			ms, err := migrate.List(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				words := strings.Fields(strings.ToUpper(withoutComments(m.SQL)))
				for _, w := range words {
					switch strings.Trim(w, "(;,") {
					case "DROP", "DELETE", "TRUNCATE", "UPDATE", "ALTER", "MERGE", "REPLACE", "RENAME":
						t.Errorf("%s contains %s", m.Name, w)
					}
				}
			}
		})
	}
}

// withoutComments is sql without its comment lines, which may name what the
// migration avoids.
func withoutComments(sql string) string {
	var code []string
	for _, l := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			code = append(code, l)
		}
	}
	return strings.Join(code, "\n")
}
