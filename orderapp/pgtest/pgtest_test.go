package pgtest_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretproxy/secretproxy/orderapp/pgtest"
)

// TestPasswordAuthentication proves the cluster checks passwords: the right one
// logs in, a wrong one gets SQLSTATE 28P01, and a changed password takes effect.
func TestPasswordAuthentication(t *testing.T) {
	s := pgtest.Start(t)
	s.CreateRole(t, "app_user", "test-password-1")
	s.CreateDatabase(t, "app_db", "app_user")

	login := func(pw string) error {
		db, err := sql.Open("pgx", s.DSN("app_user", pw, "app_db"))
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(t.Context())
	}
	if err := login("test-password-1"); err != nil {
		t.Fatalf("login with the right password: %v", err)
	}
	assertAuthFailure(t, login("wrong-password"))

	s.SetPassword(t, "app_user", "test-password-2")
	assertAuthFailure(t, login("test-password-1"))
	if err := login("test-password-2"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

func assertAuthFailure(t *testing.T, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("login with a wrong password: got %v, want SQLSTATE 28P01", err)
	}
}

// TestStopRestart: a stopped server refuses connections; restarted, it
// answers on the same address with its data.
func TestStopRestart(t *testing.T) {
	s := pgtest.Start(t)
	s.CreateRole(t, "app_user", "test-password-1")
	s.CreateDatabase(t, "app_db", "app_user")
	addr := s.Addr()
	db, err := sql.Open("pgx", s.DSN("app_user", "test-password-1", "app_db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0)
	s.Stop(t)
	if err := db.PingContext(t.Context()); err == nil {
		t.Fatal("ping of a stopped server succeeded")
	}
	s.Restart(t)
	if s.Addr() != addr {
		t.Errorf("restarted on %s, want %s", s.Addr(), addr)
	}
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}
