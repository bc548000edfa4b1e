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

// sent is what a stream last sent of one secret, to filter out a change it
// already has.
type sent struct{ version, value string }

// Watch streams the named declared secrets (every one when names is empty) to
// send: first all of them once each is settled, then each change of version
// or value. It returns when ctx ends (nil), at Drain (ErrShuttingDown), when
// a non-optional secret is absent or disabled at the start, or refused by
// refuseExpired (ErrNotFound, ErrDisabled, ErrExpired, ErrNotYetValid, wrapped
// with its name), or when send fails.
func (c *Cache) Watch(ctx context.Context, names []string, send func([]*secretproxyv1.Secret) error) error {
	es, w, err := c.newWatcher(names)
	if err != nil {
		return err
	}
	// Registered before the first message so no change between the two is
	// lost; changes already in the first message are filtered out by last.
	defer c.register(w)()
	if settled, err := c.awaitSettled(ctx, es); !settled {
		return err
	}
	first, last, err := c.firstMessage(es)
	if err != nil {
		return err
	}
	if err := send(first); err != nil {
		return err
	}
	return c.streamChanges(ctx, w, last, send)
}

// newWatcher resolves the names of a Watch to their entries (every one when
// names is empty, each once) and makes the watcher that collects their changes.
func (c *Cache) newWatcher(names []string) ([]*entry, *watcher, error) {
	w := &watcher{latest: map[string]*secretproxyv1.Secret{}, notify: make(chan struct{}, 1)}
	if len(names) == 0 {
		return c.entries, w, nil
	}
	var es []*entry
	w.names = make(map[string]bool, len(names))
	for _, n := range names {
		e := c.byName[n]
		if e == nil {
			return nil, nil, &NameError{Name: n, Err: ErrUndeclared}
		}
		if !w.names[n] {
			es = append(es, e)
		}
		w.names[n] = true
	}
	return es, w, nil
}

// register adds w to the watchers and returns its removal.
func (c *Cache) register(w *watcher) (unregister func()) {
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	c.m.Watchers.Inc()
	return func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
		c.m.Watchers.Dec()
	}
}

// awaitSettled waits until every entry of es has a value or a settled answer
// (not found, disabled). Without settling, it returns nil when ctx ends and
// ErrShuttingDown at Drain.
func (c *Cache) awaitSettled(ctx context.Context, es []*entry) (settled bool, err error) {
	for {
		ch := c.Changed()
		if allSettled(es) {
			return true, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false, nil
		case <-c.draining:
			return false, ErrShuttingDown
		}
	}
}

func allSettled(es []*entry) bool {
	for _, e := range es {
		v := e.view.Load()
		if v.secret == nil && v.kind != kindNotFound && v.kind != kindDisabled {
			return false
		}
	}
	return true
}

// firstMessage is a stream's answer to "what are the values now": every
// settled entry of es that a read would serve. An optional secret absent,
// disabled or refused is left out; a non-optional one ends the stream with
// its NameError. last records what the message holds.
func (c *Cache) firstMessage(es []*entry) (first []*secretproxyv1.Secret, last map[string]sent, err error) {
	last = make(map[string]sent, len(es))
	first = make([]*secretproxyv1.Secret, 0, len(es))
	for _, e := range es {
		v := e.view.Load()
		// refuseExpired holds for the first message as for a read.
		refused := c.refusedAsExpired(v)
		switch {
		case v.secret != nil && v.kind != kindDisabled && refused == nil:
			first = append(first, v.secret)
			last[e.decl.Name] = sent{v.secret.Version, v.secret.Value}
		case e.decl.Optional:
		case v.kind == kindDisabled:
			return nil, nil, &NameError{Name: e.decl.Name, Err: ErrDisabled}
		case refused != nil:
			return nil, nil, &NameError{Name: e.decl.Name, Err: refused}
		default:
			return nil, nil, &NameError{Name: e.decl.Name, Err: ErrNotFound}
		}
	}
	return first, last, nil
}

// streamChanges sends, as they come, the changes w collects that the stream
// has not sent yet (last), until ctx ends (nil), Drain (ErrShuttingDown) or
// send fails.
func (c *Cache) streamChanges(ctx context.Context, w *watcher, last map[string]sent, send func([]*secretproxyv1.Secret) error) error {
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
