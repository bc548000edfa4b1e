// Package dbconn turns credentials into database connections: it builds each
// driver's DSN, owns the current pool, swaps it atomically when the credentials
// rotate (closing the old pool once its queries have finished), and recovers
// from a login failure with one credential refresh and one retry.
package dbconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// Default ports when db-server names only a host.
const (
	sqlServerPort = 1433
	postgresPort  = 5432
)

// DSN builds the connection string of dialect d from creds. For sqlserver the
// result always requires TLS and checks the server certificate (Azure SQL's
// defaults); for sqlite, Database is the file path and there is no login.
func DSN(d dialect.Dialect, c secrets.Credentials) (string, error) {
	switch d {
	case dialect.SQLServer:
		return sqlServerDSN(c)
	case dialect.Postgres:
		return postgresDSN(c)
	case dialect.SQLite:
		return sqliteDSN(c)
	default:
		return "", fmt.Errorf("unknown database driver %q", d)
	}
}

// splitServer reads "host" or "host:port" (an IPv6 address in brackets).
func splitServer(server string, defPort int) (string, int, error) {
	if server == "" {
		return "", 0, errors.New("db-server is empty")
	}
	if strings.ContainsAny(server, "/?#@\\ \t\r\n") {
		return "", 0, errors.New("db-server must be host or host:port")
	}
	host, portText, err := net.SplitHostPort(server)
	if err != nil {
		// No port: the whole value is the host (brackets allowed around IPv6).
		host = strings.TrimSuffix(strings.TrimPrefix(server, "["), "]")
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", 0, errors.New("db-server must be host or host:port")
		}
		return host, defPort, nil
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, errors.New("db-server must be host or host:port with a port from 1 to 65535")
	}
	return host, port, nil
}

func checkLogin(c secrets.Credentials) error {
	var probs []string
	if c.User == "" {
		probs = append(probs, "db-user is empty")
	}
	if c.Password == "" {
		probs = append(probs, "db-password is empty")
	}
	if c.Database == "" {
		probs = append(probs, "db-name is empty")
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// sqlServerDSN uses go-mssqldb's URL form, every part escaped by net/url, so a
// password holding ; = { } or spaces cannot split into extra keywords (the
// ODBC-style form would need brace quoting for that).
func sqlServerDSN(c secrets.Credentials) (string, error) {
	host, port, err := splitServer(c.Server, sqlServerPort)
	if err != nil {
		return "", err
	}
	if err := checkLogin(c); err != nil {
		return "", err
	}
	q := url.Values{}
	q.Set("database", c.Database)
	// encrypt=true with TrustServerCertificate=false: TLS is required and the
	// server's certificate is checked against the host name. Without an explicit
	// encrypt the driver would trust any certificate.
	q.Set("encrypt", "true")
	q.Set("TrustServerCertificate", "false")
	q.Set("app name", "orderapp")
	q.Set("dial timeout", "15")
	u := url.URL{
		Scheme:   "sqlserver",
		User:     url.UserPassword(c.User, c.Password),
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		RawQuery: q.Encode(),
	}
	return u.String(), nil
}

func postgresDSN(c secrets.Credentials) (string, error) {
	host, port, err := splitServer(c.Server, postgresPort)
	if err != nil {
		return "", err
	}
	if err := checkLogin(c); err != nil {
		return "", err
	}
	q := url.Values{}
	// prefer: TLS when the server offers it. PostgreSQL is for local work and
	// tests; production is Azure SQL, where TLS is required.
	q.Set("sslmode", "prefer")
	q.Set("application_name", "orderapp")
	q.Set("connect_timeout", "10")
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.User, c.Password),
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + c.Database,
		RawQuery: q.Encode(),
	}
	return u.String(), nil
}

// sqliteDSN opens the file named by db-name with WAL (readers never wait for
// the writer), a busy timeout and foreign keys on. SQLite has no login: the
// server, user and password secrets are not used.
func sqliteDSN(c secrets.Credentials) (string, error) {
	if c.Database == "" {
		return "", errors.New("db-name (the SQLite file path) is empty")
	}
	if strings.ContainsAny(c.Database, "?#\x00") {
		return "", errors.New("db-name (the SQLite file path) must not contain '?', '#' or NUL")
	}
	return c.Database + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_pragma=foreign_keys(1)&_txlock=immediate", nil
}
