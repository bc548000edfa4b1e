// Package dialect names the SQL dialects the order application speaks and hides
// the few places where they differ: placeholders, row limits, the database/sql
// driver name and how dates are passed as parameters.
package dialect

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-sql/civil"
)

// Dialect is a database flavour, as given to --db-driver.
type Dialect string

// The supported dialects.
const (
	SQLServer Dialect = "sqlserver" // Azure SQL, the production database
	Postgres  Dialect = "postgres"  // local work and tests with real password authentication
	SQLite    Dialect = "sqlite"    // embedded, no login; for the demo
)

// All lists the dialects in the order they are documented.
var All = []Dialect{SQLServer, Postgres, SQLite}

// Parse checks a --db-driver value.
func Parse(s string) (Dialect, error) {
	for _, d := range All {
		if string(d) == s {
			return d, nil
		}
	}
	return "", fmt.Errorf("unknown database driver %q: use sqlserver, postgres or sqlite", s)
}

// DriverName is the database/sql driver registered for the dialect.
func (d Dialect) DriverName() string {
	switch d {
	case Postgres:
		return "pgx"
	case SQLite:
		return "sqlite"
	default:
		return "sqlserver"
	}
}

// Rebind turns the portable '?' placeholders of q into the dialect's own
// ($1 for PostgreSQL, @p1 for SQL Server). Queries are written by us, never
// built from input, so a '?' inside a string literal does not occur.
func (d Dialect) Rebind(q string) string {
	if d == SQLite {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		if d == Postgres {
			b.WriteByte('$')
		} else {
			b.WriteString("@p")
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// LimitClause is appended after ORDER BY to fetch at most one parameterised
// number of rows: T-SQL has no LIMIT.
func (d Dialect) LimitClause() string {
	if d == SQLServer {
		return " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"
	}
	return " LIMIT ?"
}

// DateArg is how a calendar date is passed as a query parameter. SQLite stores
// dates as 'YYYY-MM-DD' text and compares them as text. go-mssqldb sends a
// time.Time as DATETIMEOFFSET, which would make SQL Server convert the DATE
// column of every row (and skip the index), so it gets a civil.Date, sent as
// DATE. PostgreSQL takes a time.Time.
func (d Dialect) DateArg(t time.Time) any {
	switch d {
	case SQLite:
		return t.Format(time.DateOnly)
	case SQLServer:
		return civil.DateOf(t)
	default:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
}

// TimestampArg is how a point in time (UTC) is passed as a query parameter:
// DATETIME2 for SQL Server, text for SQLite.
func (d Dialect) TimestampArg(t time.Time) any {
	switch d {
	case SQLite:
		return t.UTC().Format("2006-01-02 15:04:05")
	case SQLServer:
		return civil.DateTimeOf(t.UTC())
	default:
		return t.UTC()
	}
}

// MaxParams is the number of bind parameters one statement may carry, with a
// margin (SQL Server allows 2100, PostgreSQL 65535, SQLite 32766).
func (d Dialect) MaxParams() int {
	switch d {
	case SQLServer:
		return 2000
	case Postgres:
		return 60000
	default:
		return 30000
	}
}
