package cache

import (
	"context"
	"errors"
	"sync"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// watcher collects the changes a stream has not sent yet. Publishing never
// blocks the refresher: a slow stream gets later changes merged into its next
// message, which still keeps changes found together in one message.
type watcher struct {
	names  map[string]bool // nil: every declared secret
	mu     sync.Mutex
	order  []string
	latest map[string]*secretproxyv1.Secret
	notify chan struct{}
}

// add records the secrets that changed together. They go in under one lock,
// so the stream's take never sees half of them: a user name and a password
// rotated in one pass reach the application in one message.
func (w *watcher) add(changed []*secretproxyv1.Secret) {
	w.mu.Lock()
	added := false
	for _, s := range changed {
		if w.names != nil && !w.names[s.Name] {
			continue
		}
		if _, ok := w.latest[s.Name]; !ok {
			w.order = append(w.order, s.Name)
		}
		w.latest[s.Name] = s
		added = true
	}
	w.mu.Unlock()
	if !added {
		return
	}
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watcher) take() []*secretproxyv1.Secret {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*secretproxyv1.Secret, 0, len(w.order))
	for _, n := range w.order {
		out = append(out, w.latest[n])
	}
	w.order = w.order[:0]
	clear(w.latest)
	return out
}

func (c *Cache) publishLocked(found []*secretproxyv1.Secret) {
	for w := range c.watchers {
		w.add(found)
	}
}

type sent struct{ version, value string }

// Watch streams the named declared secrets (every one when names is empty) to
// send: first all of them once each is settled, then each change of version
// or value. It returns when ctx ends (nil), at Drain (ErrShuttingDown), when
// a non-optional secret is absent or disabled at the start, or refused by
// refuseExpired (ErrNotFound, ErrDisabled, ErrExpired, ErrNotYetValid, wrapped
// with its name), or when send fails.
func (c *Cache) Watch(ctx context.Context, names []string, send func([]*secretproxyv1.Secret) error) error {
	var es []*entry
	w := &watcher{latest: map[string]*secretproxyv1.Secret{}, notify: make(chan struct{}, 1)}
	if len(names) == 0 {
		es = c.entries
	} else {
		w.names = make(map[string]bool, len(names))
		for _, n := range names {
			e := c.byName[n]
			if e == nil {
				return &NameError{Name: n, Err: ErrUndeclared}
			}
			if !w.names[n] {
				es = append(es, e)
			}
			w.names[n] = true
		}
	}

	// Register before the first message so no change between the two is lost;
	// changes already in the first message are filtered out below.
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	c.m.Watchers.Inc()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
		c.m.Watchers.Dec()
	}()

	// Wait until every requested secret is settled.
	for {
		ch := c.Changed()
		settled := true
		for _, e := range es {
			v := e.view.Load()
			if v.secret == nil && v.kind != kindNotFound && v.kind != kindDisabled {
				settled = false
				break
			}
		}
		if settled {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-c.draining:
			return ErrShuttingDown
		}
	}

	last := make(map[string]sent, len(es))
	first := make([]*secretproxyv1.Secret, 0, len(es))
	for _, e := range es {
		v := e.view.Load()
		// refuseExpired holds for the first message as for a read: it is the
		// stream's answer to "what is the value now".
		refused := c.refusedAsExpired(v)
		switch {
		case v.secret != nil && v.kind != kindDisabled && refused == nil:
			first = append(first, v.secret)
			last[e.decl.Name] = sent{v.secret.Version, v.secret.Value}
		case e.decl.Optional:
			// An optional secret absent, disabled or refused is left out.
		case v.kind == kindDisabled:
			return &NameError{Name: e.decl.Name, Err: ErrDisabled}
		case refused != nil:
			return &NameError{Name: e.decl.Name, Err: refused}
		default:
			return &NameError{Name: e.decl.Name, Err: ErrNotFound}
		}
	}
	if err := send(first); err != nil {
		return err
	}

	for {
		select {
		case <-w.notify:
		case <-ctx.Done():
			return nil
		case <-c.draining:
			return ErrShuttingDown
		}
		var msg []*secretproxyv1.Secret
		for _, s := range w.take() {
			if l, ok := last[s.Name]; ok && l.version == s.Version && l.value == s.Value {
				continue
			}
			last[s.Name] = sent{s.Version, s.Value}
			msg = append(msg, s)
		}
		if len(msg) == 0 {
			continue
		}
		if err := send(msg); err != nil {
			return err
		}
	}
}

// refusedAsExpired returns ErrExpired or ErrNotYetValid when refuseExpired
// is on and v's value is outside its validity, else nil.
func (c *Cache) refusedAsExpired(v *view) error {
	if v.secret == nil || !c.cfg.RefuseExpired {
		return nil
	}
	if _, err := c.serve(v); errors.Is(err, ErrExpired) || errors.Is(err, ErrNotYetValid) {
		return err
	}
	return nil
}

// NameError says which secret a failure is about.
type NameError struct {
	Name string
	Err  error
}

func (e *NameError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *NameError) Unwrap() error { return e.Err }
