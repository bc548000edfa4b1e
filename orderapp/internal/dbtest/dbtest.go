// Package dbtest gives tests migrated databases of every dialect that can run
// here: SQLite always, a private PostgreSQL through pgtest, and a real SQL
// Server when ORDERAPP_TEST_SQLSERVER holds its DSN. It also loads the small,
// hand-written fixture the contract tests assert against.
package dbtest

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/migrate"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

// DB is one migrated, empty database.
type DB struct {
	Name    string
	Dialect dialect.Dialect
	DB      *sql.DB
}

// SQLite returns a migrated database in a file under t.TempDir().
func SQLite(t testing.TB) DB {
	t.Helper()
	dsn, err := dbconn.DSN(dialect.SQLite, secrets.Credentials{Database: filepath.Join(t.TempDir(), "orders.db")})
	if err != nil {
		t.Fatal(err)
	}
	return open(t, "sqlite", dialect.SQLite, dsn)
}

// Postgres returns a migrated database owned by a password-authenticated role
// on a private server (skipped loudly, or failed under CI=true, without PostgreSQL).
func Postgres(t testing.TB) DB {
	t.Helper()
	s := pgtest.Start(t)
	return PostgresOn(t, s, "orders_app", "test-password-1", "orders")
}

// PostgresOn creates role user with password and database name on s, migrates it
// and returns it.
func PostgresOn(t testing.TB, s *pgtest.Server, user, password, name string) DB {
	t.Helper()
	s.CreateRole(t, user, password)
	s.CreateDatabase(t, name, user)
	return open(t, "postgres", dialect.Postgres, s.DSN(user, password, name))
}

// PostgresConn opens a pool on s as user (closed when t ends), without migrating.
func PostgresConn(t testing.TB, s *pgtest.Server, user, password, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", s.DSN(user, password, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// SQLServer returns the database named by ORDERAPP_TEST_SQLSERVER, migrated; the
// test is skipped loudly without it (Azure SQL cannot run here).
func SQLServer(t testing.TB) DB {
	t.Helper()
	dsn := os.Getenv("ORDERAPP_TEST_SQLSERVER")
	if dsn == "" {
		t.Skip("dbtest: SQL SERVER CONTRACT TESTS DID NOT RUN: set ORDERAPP_TEST_SQLSERVER to a sqlserver:// DSN of an empty database to run them")
	}
	return open(t, "sqlserver", dialect.SQLServer, dsn)
}

func open(t testing.TB, name string, d dialect.Dialect, dsn string) DB {
	t.Helper()
	db, err := sql.Open(d.DriverName(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := migrate.Apply(t.Context(), db, d); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	return DB{Name: name, Dialect: d, DB: db}
}

// Each runs fn as a subtest for every dialect available.
func Each(t *testing.T, fn func(t *testing.T, db DB)) {
	t.Helper()
	for _, c := range []struct {
		name string
		get  func(testing.TB) DB
	}{{"sqlite", SQLite}, {"postgres", Postgres}, {"sqlserver", SQLServer}} {
		t.Run(c.name, func(t *testing.T) { fn(t, c.get(t)) })
	}
}
