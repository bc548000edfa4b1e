// Package pgtest starts a private PostgreSQL server for a test: a fresh cluster
// in a temporary directory, password authentication (scram-sha-256) only, on a
// free 127.0.0.1 port, stopped and removed when the test ends.
//
// It uses Debian's packages (apt-get install postgresql), found under
// /usr/lib/postgresql/*/bin or in $PGTEST_BIN_DIR. When they are absent a test
// is skipped with a loud message, except under CI=true, where it fails: CI must
// never pass by skipping the database tests. As root, initdb and pg_ctl run as
// the "postgres" OS user through runuser, since PostgreSQL refuses to run as root.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Server is a running private PostgreSQL cluster.
type Server struct {
	Host          string // always 127.0.0.1
	Port          int
	AdminUser     string // a superuser
	AdminPassword string
	Database      string // "postgres", the maintenance database

	dir    string
	binDir string
	runAs  *user.User // nil: run the binaries as the current user
}

// Start starts a cluster for t and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	binDir, err := findBinDir()
	if err != nil {
		missing(t, err.Error())
	}
	s := &Server{Host: "127.0.0.1", AdminUser: "pgtest_admin", AdminPassword: randomPassword(t), Database: "postgres", binDir: binDir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root needs the \"postgres\" OS user, which Debian's postgresql package creates: "+err.Error())
		}
		s.runAs = u
	}
	if err := s.initdb(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.stop)
	var lastErr error
	// A free port can be taken between our probe and the server's bind; try a few.
	for range 3 {
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgtest: start server: %v", lastErr)
	return nil
}

func missing(t testing.TB, why string) {
	t.Helper()
	msg := "pgtest: PostgreSQL IS NOT AVAILABLE, SO THIS TEST DID NOT RUN: " + why +
		" (install it with: apt-get install -y postgresql, or set PGTEST_BIN_DIR)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " [CI=true: a missing PostgreSQL is a failure]")
	}
	t.Skip(msg)
}

// findBinDir returns $PGTEST_BIN_DIR or the newest /usr/lib/postgresql/*/bin
// holding initdb and pg_ctl.
func findBinDir() (string, error) {
	var cands []string
	if d := os.Getenv("PGTEST_BIN_DIR"); d != "" {
		cands = []string{d}
	} else {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(matches, func(i, j int) bool { return majorOf(matches[i]) > majorOf(matches[j]) })
		cands = matches
	}
	for _, d := range cands {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if len(cands) == 0 {
		return "", errors.New("no /usr/lib/postgresql/*/bin directory")
	}
	return "", fmt.Errorf("no initdb and pg_ctl in %s", strings.Join(cands, ", "))
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func randomPassword(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: random password: %v", err)
	}
	return "pgtest-" + hex.EncodeToString(b)
}

// command runs a PostgreSQL binary, as the postgres user when we are root.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	bin := filepath.Join(s.binDir, name)
	if s.runAs != nil {
		return exec.Command("runuser", append([]string{"-u", s.runAs.Username, "--", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

func (s *Server) initdb() error {
	// Not t.TempDir: its parent is private to root, and the server runs as postgres.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	s.dir = dir
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.AdminPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if s.runAs != nil {
		uid, _ := strconv.Atoi(s.runAs.Uid)
		gid, _ := strconv.Atoi(s.runAs.Gid)
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("give %s to the postgres user: %w", p, err)
			}
		}
	}
	cmd := s.command("initdb", "-D", s.dataDir(), "-A", "scram-sha-256", "-U", s.AdminUser,
		"--pwfile="+pwfile, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return os.Remove(pwfile)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	return s.startOn(port)
}

func (s *Server) startOn(port int) error {
	s.Port = port
	// fsync off and friends: a throw-away cluster, durability buys nothing.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		port, s.dir)
	cmd := s.command("pg_ctl", "-D", s.dataDir(), "-o", opts, "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "start")
	if out, err := cmd.CombinedOutput(); err != nil {
		logText, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, logText)
	}
	return nil
}

func (s *Server) stop() {
	if s.dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(s.dataDir(), "postmaster.pid")); err == nil {
		_ = s.command("pg_ctl", "-D", s.dataDir(), "-m", "immediate", "-w", "-t", "30", "stop").Run()
	}
	_ = os.RemoveAll(s.dir)
}

// Stop shuts the server down (fast mode: sessions are ended) and keeps its
// data, as a database outage would; Restart brings it back on the same port.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.command("pg_ctl", "-D", s.dataDir(), "-m", "fast", "-w", "-t", "30", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart starts a stopped server again on its port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.startOn(s.Port); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// Addr is "127.0.0.1:port", the form of the db-server secret.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN is a pgx connection URL for user, password and database (TLS off: the
// cluster has none).
func (s *Server) DSN(user, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: s.Addr(), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// AdminDSN connects as the superuser to the maintenance database.
func (s *Server) AdminDSN() string { return s.DSN(s.AdminUser, s.AdminPassword, s.Database) }

// Exec runs one statement as the superuser and fails t on error.
func (s *Server) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if err := s.exec(context.Background(), query, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", firstWords(query), err)
	}
}

// exec runs one statement as the superuser on a connection of its own,
// bounded at 30 s.
func (s *Server) exec(ctx context.Context, query string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", s.AdminDSN())
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, query, args...)
	return err
}

func firstWords(q string) string {
	f := strings.Fields(q)
	return strings.Join(f[:min(3, len(f))], " ")
}

// CreateRole creates a login role with a password.
func (s *Server) CreateRole(t testing.TB, user, password string) {
	t.Helper()
	s.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", ident(user), literal(password)))
}

// SetPassword changes a role's password, as a rotation in the vault would.
// Sessions already open stay open; new logins need the new password.
func (s *Server) SetPassword(t testing.TB, user, password string) {
	t.Helper()
	s.Exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD %s", ident(user), literal(password)))
}

// SetPasswordUntil changes a role's password and makes it expire at until, as
// an Entra access token does: the test makes the role's password the token
// the sidecar will hand out, and PostgreSQL refuses it after its expiry
// (FATAL 28P01, like a wrong password). Open sessions stay open.
func (s *Server) SetPasswordUntil(t testing.TB, user, password string, until time.Time) {
	t.Helper()
	if err := s.AlterPasswordUntil(context.Background(), user, password, until); err != nil {
		t.Fatal(err)
	}
}

// AlterPasswordUntil is SetPasswordUntil for a goroutine other than the
// test's (such as a fake sidecar's handler), where t.Fatal must not be called.
func (s *Server) AlterPasswordUntil(ctx context.Context, user, password string, until time.Time) error {
	if err := s.exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD %s VALID UNTIL %s", ident(user), literal(password), literal(until.UTC().Format("2006-01-02 15:04:05.000000+00")))); err != nil {
		return fmt.Errorf("pgtest: ALTER ROLE %s: %w", user, err)
	}
	return nil
}

// CreateDatabase creates a database owned by owner, so owner may create tables in it.
func (s *Server) CreateDatabase(t testing.TB, name, owner string) {
	t.Helper()
	s.Exec(t, fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident(name), ident(owner)))
}

// ident and literal quote with pgx's own rules: role names and passwords cannot
// be bind parameters in DDL.
func ident(s string) string   { return pgx.Identifier{s}.Sanitize() }
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
