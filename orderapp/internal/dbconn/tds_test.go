package dbconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

// fakeTDS is the first two steps of a SQL Server login, enough to see what
// go-mssqldb sends: it answers PRELOGIN (no encryption, federated
// authentication required), then reads the LOGIN7 message and hands it to
// the test, and hangs up (the client's connection attempt then fails).
func fakeTDS(t *testing.T) (addr string, login <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := readTDS(c); err != nil { // PRELOGIN
			return
		}
		// Options: VERSION (6 bytes), ENCRYPTION = ENCRYPT_NOT_SUP, FEDAUTHREQUIRED = 1.
		opts := []byte{0x00, 0, 16, 0, 6, 0x01, 0, 22, 0, 1, 0x06, 0, 23, 0, 1, 0xff}
		data := append(opts, 16, 0, 0, 0, 0, 0, 0x02, 0x01)
		if err := writeTDS(c, 0x04, data); err != nil {
			return
		}
		typ, msg, err := readTDS(c)
		if err != nil || typ != 0x10 { // LOGIN7
			return
		}
		out <- msg
	}()
	return ln.Addr().String(), out
}

// readTDS reads one message (packets up to the end-of-message flag).
func readTDS(r io.Reader) (byte, []byte, error) {
	var msg []byte
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return 0, nil, err
		}
		body := make([]byte, int(binary.BigEndian.Uint16(h[2:4]))-8)
		if _, err := io.ReadFull(r, body); err != nil {
			return 0, nil, err
		}
		msg = append(msg, body...)
		if h[1]&0x01 != 0 {
			return h[0], msg, nil
		}
	}
}

func writeTDS(w io.Writer, typ byte, data []byte) error {
	h := []byte{typ, 0x01, 0, 0, 0, 0, 1, 0}
	binary.BigEndian.PutUint16(h[2:4], uint16(len(data)+8))
	_, err := w.Write(append(h, data...))
	return err
}

func ucs2(s string) []byte {
	var b bytes.Buffer
	for _, r := range utf16.Encode([]rune(s)) {
		_ = binary.Write(&b, binary.LittleEndian, r)
	}
	return b.Bytes()
}

// TestSQLServerLoginCarriesToken runs go-mssqldb's access-token connector,
// as orderapp builds it, against a fake TDS server: the LOGIN7 message
// carries the sidecar's token for Azure SQL's scope in its federated
// authentication feature, and no user name or password. The fake speaks no
// TLS, so this test turns encryption off; everything else is the production
// connection string. What it cannot show: Azure SQL accepting the token.
func TestSQLServerLoginCarriesToken(t *testing.T) {
	addr, login := fakeTDS(t)
	dsn, err := entraDSN(dialect.SQLServer, secrets.Credentials{Server: addr, Database: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	dsn = strings.Replace(dsn, "encrypt=true", "encrypt=disable", 1)
	const token = "test-token-azure-sql-1"
	var asked atomic.Int32
	c, err := newEntraConnector(dialect.SQLServer, dsn, func(context.Context) (Token, error) {
		asked.Add(1)
		return Token{Value: token, Expires: time.Now().Add(time.Hour)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go func() {
		if conn, err := c.Connect(ctx); err == nil {
			conn.Close()
		}
	}()
	var msg []byte
	select {
	case msg = <-login:
	case <-ctx.Done():
		t.Fatal("no LOGIN7 message reached the fake server")
	}
	if !bytes.Contains(msg, ucs2(token)) {
		t.Error("LOGIN7 does not carry the token (UTF-16LE, in the FEDAUTH feature)")
	}
	if !bytes.Contains(msg, ucs2("orders")) {
		t.Error("LOGIN7 does not name the database")
	}
	// LOGIN7's fixed part: cchUserName at offset 42 and cchPassword at 46
	// (lengths in characters) are zero: no SQL login is sent.
	if len(msg) < 50 || binary.LittleEndian.Uint16(msg[42:44]) != 0 || binary.LittleEndian.Uint16(msg[46:48]) != 0 {
		t.Error("LOGIN7 carries a user name or password")
	}
	if asked.Load() < 1 {
		t.Error("the sidecar was not asked for a token")
	}
}
