// Package httpapi serves the order application's HTTP API (docs/reference/orderapp.md):
// JSON resources, validated filters, errors as {"error":{"code","message"}} with
// the matching status, never a stack trace or SQL text; plus /livez, /readyz
// and /metrics, with request metrics on every route.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

// Store is what the handlers read; *orders.Repo implements it.
type Store interface {
	ListOrders(ctx context.Context, clientID int64, f orders.Filter, limit int, cursor string) (orders.Page, error)
	GetOrder(ctx context.Context, orderID int64) (orders.OrderWithLines, error)
	Summary(ctx context.Context, clientID int64) (orders.Summary, error)
}

// Config wires the handler.
type Config struct {
	Store Store
	// Ready reports whether the database answers (/readyz).
	Ready      func(context.Context) error
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Logger     *slog.Logger
	// ReadyTimeout bounds the /readyz database ping (default 2 s).
	ReadyTimeout time.Duration
	// RequestTimeout bounds the database work of one API request (default
	// 30 s), so a hung database answers 503 instead of holding connections.
	RequestTimeout time.Duration
}

type api struct {
	cfg Config
	log *slog.Logger
}

// New returns the application's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil || cfg.Ready == nil || cfg.Registerer == nil || cfg.Gatherer == nil {
		return nil, errors.New("httpapi: Store, Ready, Registerer and Gatherer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	m, err := newMetrics(cfg.Registerer, cfg.Logger)
	if err != nil {
		return nil, err
	}
	a := &api{cfg: cfg, log: cfg.Logger}
	mux := http.NewServeMux()
	route := func(pattern, handler string, h http.HandlerFunc) {
		mux.Handle(pattern, m.instrument(handler, onlyGet(h)))
	}
	api := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), cfg.RequestTimeout)
			defer cancel()
			h(w, r.WithContext(ctx))
		}
	}
	route("/api/v1/clients/{clientID}/orders", "client_orders", api(a.listOrders))
	route("/api/v1/clients/{clientID}/summary", "client_summary", api(a.summary))
	route("/api/v1/orders/{orderID}", "order", api(a.getOrder))
	route("/livez", "livez", a.livez)
	route("/readyz", "readyz", a.readyz)
	mux.Handle("/metrics", m.instrument("metrics", onlyGet(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)))
	mux.Handle("/", m.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: see /api/v1/clients/{clientID}/orders, /api/v1/clients/{clientID}/summary, /api/v1/orders/{orderID}")
	})))
	return mux, nil
}

// onlyGet answers other methods with 405 in the API's error shape.
func onlyGet(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "invalid_argument", "method "+r.Method+" is not allowed: use GET")
			return
		}
		h(w, r)
	}
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		// Reason is set by /readyz only: one of dbconn's Reason* words.
		Reason string `json:"reason,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorReason(w, status, code, msg, "")
}

func writeErrorReason(w http.ResponseWriter, status int, code, msg, reason string) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Reason = code, msg, reason
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail maps a repository error to a response. Only errors written for users
// (invalid arguments, not found, not ready) reach the body; anything else is
// logged and answered with a generic message, so no SQL text or driver detail
// leaves the process.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ia *orders.InvalidArgumentError
	var notReady *dbconn.NotReadyError
	switch {
	case errors.As(err, &ia):
		writeError(w, http.StatusBadRequest, "invalid_argument", ia.Msg)
	case errors.Is(err, orders.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.As(err, &notReady):
		writeError(w, http.StatusServiceUnavailable, "unavailable", notReady.Error())
	case errors.Is(err, dbconn.ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, "unavailable", dbconn.ErrNotReady.Error())
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "unavailable", "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		a.log.WarnContext(r.Context(), "request timed out", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the database did not answer in time; retry later")
	case dbconn.IsLoginFailure(err):
		a.log.ErrorContext(r.Context(), "database login failed after a credential refresh", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the database refused the application's credentials; retry later")
	case dbconn.IsConnectionFailure(err):
		// An outage, not a bug: retryable, and logged below error level so
		// a database restart does not page like a defect would.
		a.log.WarnContext(r.Context(), "database unreachable", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the database is unreachable; retry later")
	default:
		a.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; the details are in the application's log")
	}
}

func invalid(format string, args ...any) error {
	return &orders.InvalidArgumentError{Msg: fmt.Sprintf(format, args...)}
}

func pathID(r *http.Request, name string) (int64, error) {
	s := r.PathValue(name)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strings.HasPrefix(s, "+") {
		return 0, invalid("%s must be a positive integer below 2^63", name)
	}
	return id, nil
}

// query reads the allowed query parameters: unknown or repeated ones are an
// error, so a typo like ?stauts=paid is not silently ignored.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalid("the query string is malformed")
	}
	out := map[string]string{}
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return nil, invalid("unknown query parameter %q: allowed are %s", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, invalid("query parameter %q is given %d times: give it once", k, len(vs))
		}
		out[k] = vs[0]
	}
	return out, nil
}

type ordersResponse struct {
	Orders     []orders.Order `json:"orders"`
	NextCursor string         `json:"nextCursor,omitempty"`
}

func (a *api) listOrders(w http.ResponseWriter, r *http.Request) {
	clientID, err := pathID(r, "clientID")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q, err := query(r, "status", "from", "to", "limit", "cursor")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var f orders.Filter
	if s, ok := q["status"]; ok {
		if !orders.ValidStatus(s) {
			a.fail(w, r, invalid("status must be one of %s", strings.Join(orders.Statuses, ", ")))
			return
		}
		f.Status = s
	}
	for _, p := range []struct {
		name string
		dst  *orders.Date
	}{{"from", &f.From}, {"to", &f.To}} {
		if s, ok := q[p.name]; ok {
			d, err := orders.ParseBound(s)
			if err != nil {
				a.fail(w, r, invalid("%s must be a date as YYYY-MM-DD (RFC 3339 full-date), from 0001-01-02", p.name))
				return
			}
			*p.dst = d
		}
	}
	limit := orders.DefaultLimit
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > orders.MaxLimit {
			a.fail(w, r, invalid("limit must be an integer from 1 to %d", orders.MaxLimit))
			return
		}
		limit = n
	}
	cursor, hasCursor := q["cursor"]
	if hasCursor && cursor == "" {
		a.fail(w, r, invalid("cursor is empty: omit it for the first page"))
		return
	}
	page, err := a.cfg.Store.ListOrders(r.Context(), clientID, f, limit, cursor)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ordersResponse{Orders: page.Orders, NextCursor: page.NextCursor})
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "orderID")
	if err == nil {
		_, err = query(r)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.cfg.Store.GetOrder(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (a *api) summary(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "clientID")
	if err == nil {
		_, err = query(r)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.cfg.Store.Summary(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (a *api) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is 503 until the first pool is up, and whenever the database does not
// answer a ping. The body says why in words chosen here (a reason from a
// closed set and a fixed sentence), never a driver message, which may quote a
// credential value.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.ReadyTimeout)
	defer cancel()
	if err := a.cfg.Ready(ctx); err != nil {
		reason := dbconn.Reason(err)
		msg := "the database does not answer: " + dbconn.ReasonText(reason)
		var notReady *dbconn.NotReadyError
		if errors.As(err, &notReady) {
			msg = notReady.Error()
		} else if errors.Is(err, dbconn.ErrNotReady) {
			msg = dbconn.ErrNotReady.Error()
		}
		a.log.WarnContext(r.Context(), "not ready", "reason", reason, "err", err)
		writeErrorReason(w, http.StatusServiceUnavailable, "unavailable", msg, reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
