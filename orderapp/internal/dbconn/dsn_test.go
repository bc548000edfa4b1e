package dbconn

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// hardPasswords hold every character that breaks a naive connection string.
var hardPasswords = []string{
	"test-password-1",
	"semi;colon",
	"equals=sign",
	"{braces}",
	"}{",
	"with space ",
	" leading space",
	"a;Database=master;Encrypt=false",
	"p;w=d{x}y z",
	`quote'double"back\slash`,
	"url?chars#%/@:&+",
	"ünïcødé-密码",
}

// TestSQLServerDSN proves, with the driver's own parser, that every field comes
// back exactly, whatever the password holds, and that TLS is required with the
// certificate checked.
func TestSQLServerDSN(t *testing.T) {
	type fields struct {
		Host, User, Password, Database string
		Port                           uint64
		Encryption                     msdsn.Encryption
		TrustServerCertificate         bool
		InsecureSkipVerify             bool
		ServerName                     string
		AppName                        string
	}
	for _, pw := range hardPasswords {
		for _, srv := range []struct {
			server, host string
			port         uint64
		}{
			{"hermas-sql.database.windows.net", "hermas-sql.database.windows.net", 1433},
			{"hermas-sql.database.windows.net:14330", "hermas-sql.database.windows.net", 14330},
			{"10.1.2.3", "10.1.2.3", 1433},
		} {
			t.Run(srv.server+"/"+pw, func(t *testing.T) {
				c := secrets.Credentials{Server: srv.server, User: "app;user=x", Password: pw, Database: "orders db;x={y}"}
				dsn, err := DSN(dialect.SQLServer, c)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := msdsn.Parse(dsn)
				if err != nil {
					t.Fatalf("msdsn.Parse: %v", err)
				}
				if cfg.TLSConfig == nil {
					t.Fatal("no TLS configuration")
				}
				got := fields{cfg.Host, cfg.User, cfg.Password, cfg.Database, cfg.Port, cfg.Encryption,
					cfg.TrustServerCertificate, cfg.TLSConfig.InsecureSkipVerify, cfg.TLSConfig.ServerName, cfg.AppName}
				want := fields{srv.host, c.User, pw, c.Database, srv.port, msdsn.EncryptionRequired, false, false, srv.host, "orderapp"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("parsed DSN (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestPostgresDSN(t *testing.T) {
	for _, pw := range hardPasswords {
		t.Run(pw, func(t *testing.T) {
			c := secrets.Credentials{Server: "127.0.0.1:5433", User: "app user", Password: pw, Database: "orders-db"}
			dsn, err := DSN(dialect.Postgres, c)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				t.Fatalf("pgx.ParseConfig: %v", err)
			}
			got := []any{cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database}
			want := []any{"127.0.0.1", uint16(5433), c.User, pw, c.Database}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("parsed DSN (-want +got):\n%s", diff)
			}
		})
	}
	dsn, err := DSN(dialect.Postgres, secrets.Credentials{Server: "db.local", User: "u", Password: "p", Database: "d"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil || cfg.Port != postgresPort {
		t.Errorf("default port: %v, %v; want %d", cfg.Port, err, postgresPort)
	}
}

func TestSQLiteDSN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir with space", "orders.db")
	dsn, err := DSN(dialect.SQLite, secrets.Credentials{Database: path, Password: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dsn, "ignored") {
		t.Errorf("sqlite DSN holds the unused password: %q", dsn)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var fk int
	var mode string
	if err := db.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if fk != 1 || mode != "wal" {
		t.Errorf("foreign_keys=%d journal_mode=%s, want 1 and wal", fk, mode)
	}
}

func TestDSNErrors(t *testing.T) {
	ok := secrets.Credentials{Server: "db.example", User: "u", Password: "test-password-1", Database: "d"}
	tests := []struct {
		name string
		d    dialect.Dialect
		mod  func(*secrets.Credentials)
		want string
	}{
		{"empty server", dialect.SQLServer, func(c *secrets.Credentials) { c.Server = "" }, "db-server is empty"},
		{"server with path", dialect.SQLServer, func(c *secrets.Credentials) { c.Server = "host/x" }, "host or host:port"},
		{"server with user", dialect.Postgres, func(c *secrets.Credentials) { c.Server = "u@host" }, "host or host:port"},
		{"port zero", dialect.SQLServer, func(c *secrets.Credentials) { c.Server = "host:0" }, "port from 1 to 65535"},
		{"port too big", dialect.Postgres, func(c *secrets.Credentials) { c.Server = "host:70000" }, "port from 1 to 65535"},
		{"port not a number", dialect.Postgres, func(c *secrets.Credentials) { c.Server = "host:abc" }, "port from 1 to 65535"},
		{"empty user", dialect.SQLServer, func(c *secrets.Credentials) { c.User = "" }, "db-user is empty"},
		{"empty password", dialect.Postgres, func(c *secrets.Credentials) { c.Password = "" }, "db-password is empty"},
		{"empty database", dialect.SQLServer, func(c *secrets.Credentials) { c.Database = "" }, "db-name is empty"},
		{"sqlite empty path", dialect.SQLite, func(c *secrets.Credentials) { c.Database = "" }, "file path) is empty"},
		{"sqlite query in path", dialect.SQLite, func(c *secrets.Credentials) { c.Database = "x.db?_pragma=x" }, "must not contain"},
		{"unknown driver", dialect.Dialect("oracle"), func(*secrets.Credentials) {}, "unknown database driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			_, err := DSN(tt.d, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DSN error = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "test-password-1") {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
}
