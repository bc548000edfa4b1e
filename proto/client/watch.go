package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Update is one message of a watch.
type Update struct {
	// Initial is true for the first message of each stream: a full snapshot of
	// every requested secret. After a reconnect the snapshot comes again, so a
	// change made while the sidecar was unreachable is not missed.
	Initial bool
	// Secrets holds every requested secret (Initial) or those that changed together.
	Secrets []*secretproxyv1.Secret
}

// Watch streams the named secrets (empty: every declared secret) and calls fn
// with each message. It reconnects with jittered exponential back-off when the
// stream breaks, and returns only when ctx ends (ctx.Err()), when fn returns an
// error (that error), or when the sidecar refuses the request itself
// (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED): those
// are configuration mistakes that retrying cannot mend.
func (c *Client) Watch(ctx context.Context, names []string, fn func(context.Context, Update) error) error {
	delay := c.minBackoff
	for {
		received, err := c.watchOnce(ctx, names, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fnErr callbackError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		if permanent(err) {
			return fmt.Errorf("watch secrets: %w", err)
		}
		if received {
			delay = c.minBackoff
		}
		// Full jitter keeps a fleet of applications from reconnecting in step
		// when a sidecar restarts.
		wait := delay/2 + rand.N(delay/2+1)
		c.logger.WarnContext(ctx, "secret watch interrupted; reconnecting",
			"code", status.Code(err).String(), "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(delay*2, c.maxBackoff)
	}
}

// callbackError marks an error returned by the caller's fn, which ends Watch.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// watchOnce runs one stream to its end. received reports whether any message
// came, which resets the back-off.
func (c *Client) watchOnce(ctx context.Context, names []string, fn func(context.Context, Update) error) (received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.WatchSecrets(ctx, &secretproxyv1.WatchSecretsRequest{Names: names})
	if err != nil {
		return false, err
	}
	for first := true; ; first = false {
		msg, err := stream.Recv()
		if err != nil {
			return received, err
		}
		received = true
		if err := fn(ctx, Update{Initial: first, Secrets: msg.GetSecrets()}); err != nil {
			return received, callbackError{err}
		}
	}
}

func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	}
	return false
}
