// Package migrate applies the embedded schema migrations of one dialect and
// records each applied version in schema_migrations. It only ever creates what
// is missing: no migration drops or rewrites data, so running it against the
// existing production database is safe, and running it twice changes nothing.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/migrations"
)

// Migration is one embedded SQL file.
type Migration struct {
	Version string // the file name's numeric prefix, e.g. "0001"
	Name    string // the file name
	SQL     string
}

// List returns the migrations of dialect d in the order they apply.
func List(d dialect.Dialect) ([]Migration, error) {
	return ListFS(migrations.FS, string(d))
}

// ListFS reads migrations from dir of fsys (List uses the embedded files).
func ListFS(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations of %s: %w", dir, err)
	}
	var out []Migration
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		version, _, ok := strings.Cut(e.Name(), "_")
		if !ok || version == "" || strings.Trim(version, "0123456789") != "" {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, e.Name())
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %s", prev, e.Name(), version)
		}
		seen[version] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: version, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func createTable(d dialect.Dialect) string {
	if d == dialect.SQLServer {
		return `IF OBJECT_ID(N'dbo.schema_migrations', N'U') IS NULL
CREATE TABLE dbo.schema_migrations (version VARCHAR(32) NOT NULL CONSTRAINT pk_schema_migrations PRIMARY KEY, name NVARCHAR(200) NOT NULL, applied_at DATETIME2 NOT NULL)`
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(32) NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at TIMESTAMP NOT NULL)`
}

// Apply runs every migration of d not yet recorded in schema_migrations, each
// in its own transaction together with its record, and returns the versions it
// applied (none when the schema is current).
func Apply(ctx context.Context, db *sql.DB, d dialect.Dialect) ([]string, error) {
	ms, err := List(d)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, createTable(d)); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied, err := Applied(ctx, db)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if err := applyOne(ctx, db, d, m); err != nil {
			return done, err
		}
		done = append(done, m.Version)
	}
	return done, nil
}

func applyOne(ctx context.Context, db *sql.DB, d dialect.Dialect, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, d.Rebind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.Version, m.Name, d.TimestampArg(time.Now())); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// Applied returns the versions recorded in schema_migrations.
func Applied(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[v] = true
	}
	return out, rows.Err()
}
