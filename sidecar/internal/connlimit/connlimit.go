// Package connlimit bounds the connections a listener holds open. A local
// process can open connections faster than anything closes them; without a
// bound it takes every file descriptor of the sidecar, and then no new client
// and no kubelet probe can connect.
package connlimit

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// Listener accepts at most Max connections at once. A connection beyond the
// bound is accepted and closed at once, so that its client sees the
// connection end (gRPC: UNAVAILABLE, retried with back-off) rather than
// waiting in the kernel's backlog until its deadline: refused promptly, never
// left hanging.
type Listener struct {
	net.Listener
	name  string
	log   *slog.Logger
	slots chan struct{}
	full  atomic.Bool
	// refused counts connections closed at the bound, for tests and logs.
	refused atomic.Int64
}

// Wrap bounds l to max open connections; name says which listener in logs.
func Wrap(l net.Listener, max int, name string, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: l, name: name, log: log, slots: make(chan struct{}, max)}
}

// Accept returns the next connection within the bound, closing those beyond it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			if l.full.CompareAndSwap(true, false) {
				l.log.Info("listener below its connection bound again", "listener", l.name, "refusedSoFar", l.refused.Load())
			}
			return &conn{Conn: c, release: l.release}, nil
		default:
			// Counted before the close, so whoever sees the close sees the count.
			l.refused.Add(1)
			c.Close()
			// One warning per episode, not one per connection: a flood
			// must not flood the log too.
			if l.full.CompareAndSwap(false, true) {
				l.log.Warn("connection bound reached: closing new connections until some close",
					"listener", l.name, "max", cap(l.slots))
			}
		}
	}
}

// Refused is how many connections were closed at the bound.
func (l *Listener) Refused() int64 { return l.refused.Load() }

func (l *Listener) release() { <-l.slots }

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection underneath, for code that needs its type
// (the peer credentials of a unix socket).
func (c *conn) NetConn() net.Conn { return c.Conn }
