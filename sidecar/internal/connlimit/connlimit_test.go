package connlimit

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestBound: at the bound a new connection is closed at once (its client reads
// EOF instead of hanging); closing an accepted one frees its slot.
func TestBound(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw, 2, "test", nil)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var server []net.Conn
	for range 2 {
		dial()
		server = append(server, <-accepted)
	}
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("connection beyond the bound: read = %v, want EOF or reset (closed at once)", err)
	}
	if got := l.Refused(); got != 1 {
		t.Errorf("Refused = %d, want 1", got)
	}
	server[0].Close()
	server[0].Close() // a second Close must not free a second slot
	dial()
	select {
	case c := <-accepted:
		if _, ok := c.(interface{ NetConn() net.Conn }); !ok {
			t.Error("accepted connection does not expose NetConn")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted after a slot was freed")
	}
	extra2 := dial()
	extra2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("a double Close freed two slots: read = %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
