package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/secretproxy/secretproxy/orderapp/internal/counter"
	"github.com/secretproxy/secretproxy/orderapp/internal/dbconn"
	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/httpapi"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
	"github.com/secretproxy/secretproxy/orderapp/internal/secrets"
)

type server struct {
	h   http.Handler
	reg *prometheus.Registry
	db  dbtest.DB
}

// newServer serves the fixture from a SQLite database through the real
// repository and pool manager.
func newServer(t *testing.T) server {
	t.Helper()
	db := dbtest.SQLite(t)
	dbtest.Load(t, db)
	reg := prometheus.NewRegistry()
	m, err := dbconn.NewManager(dialect.SQLite, dbconn.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Apply(t.Context(), secrets.Credentials{Database: dbPath(t, db)}); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Store: orders.New(m, dialect.SQLite), Ready: m.Ready, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return server{h: h, reg: reg, db: db}
}

func dbPath(t *testing.T, db dbtest.DB) string {
	t.Helper()
	var seq int
	var name, file string
	if err := db.DB.QueryRowContext(t.Context(), "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(file)
}

func (s server) get(t *testing.T, target string) (int, string) {
	t.Helper()
	return s.do(t, http.MethodGet, target)
}

func (s server) do(t *testing.T, method, target string) (int, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, "http://orderapp.test"+target, nil)
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(target, "/metrics") {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, target, ct)
	}
	return res.StatusCode, string(body)
}

func TestOrdersJSON(t *testing.T) {
	s := newServer(t)
	code, body := s.get(t, "/api/v1/clients/1/orders?limit=2&status=paid")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	want := `{"orders":[{"orderId":101,"clientId":1,"orderDate":"2026-01-05","status":"paid","currency":"EUR","totalAmount":"100.10"},` +
		`{"orderId":107,"clientId":1,"orderDate":"2026-01-04","status":"paid","currency":"EUR","totalAmount":"0.01"}]}` + "\n"
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	code, body = s.get(t, "/api/v1/orders/101")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	want = `{"orderId":101,"clientId":1,"orderDate":"2026-01-05","status":"paid","currency":"EUR","totalAmount":"100.10",` +
		`"lines":[{"lineNo":1,"sku":"A-1","description":"Widget, large","quantity":2,"unitPrice":"50.00"},` +
		`{"lineNo":2,"sku":"B-2","description":"Ünïcode ✓","quantity":1,"unitPrice":"0.10"}]}` + "\n"
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	code, body = s.get(t, "/api/v1/clients/1/summary")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatal(err)
	}
	wantSum := map[string]any{"clientId": 1.0, "name": dbtest.HostileName, "orderCount": 7.0, "totals": []any{
		map[string]any{"currency": "EUR", "amount": "120.16"},
		map[string]any{"currency": "GBP", "amount": "1234567890.12"},
		map[string]any{"currency": "USD", "amount": "0.99"},
	}}
	if diff := cmp.Diff(wantSum, sum); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func TestPagination(t *testing.T) {
	s := newServer(t)
	var got []int64
	target := "/api/v1/clients/1/orders?limit=3"
	for i := 0; i < 10 && target != ""; i++ {
		code, body := s.get(t, target)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var page struct {
			Orders     []orders.Order `json:"orders"`
			NextCursor *string        `json:"nextCursor"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			got = append(got, o.OrderID)
		}
		target = ""
		if page.NextCursor != nil {
			target = "/api/v1/clients/1/orders?limit=3&cursor=" + url.QueryEscape(*page.NextCursor)
		}
	}
	if diff := cmp.Diff(dbtest.ClientOrderIDs, got); diff != "" {
		t.Errorf("ids over all pages (-want +got):\n%s", diff)
	}
	code, body := s.get(t, "/api/v1/clients/2/orders")
	if code != http.StatusOK || body != "{\"orders\":[]}\n" {
		t.Errorf("client without orders: %d %s, want 200 and an empty list without nextCursor", code, body)
	}
}

// TestErrors covers every error status and hostile input for injection: each
// answer is the JSON error shape, the right code, and never SQL text.
func TestErrors(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name, method, target string
		status               int
		code                 string
	}{
		{"unknown client", "GET", "/api/v1/clients/999/orders", 404, "not_found"},
		{"unknown client summary", "GET", "/api/v1/clients/999/summary", 404, "not_found"},
		{"unknown order", "GET", "/api/v1/orders/999999", 404, "not_found"},
		{"unknown path", "GET", "/api/v2/orders", 404, "not_found"},
		{"wrong method", "POST", "/api/v1/orders/101", 405, "invalid_argument"},
		{"delete", "DELETE", "/api/v1/clients/1/orders", 405, "invalid_argument"},
		{"limit zero", "GET", "/api/v1/clients/1/orders?limit=0", 400, "invalid_argument"},
		{"limit too big", "GET", "/api/v1/clients/1/orders?limit=501", 400, "invalid_argument"},
		{"limit negative", "GET", "/api/v1/clients/1/orders?limit=-1", 400, "invalid_argument"},
		{"limit float", "GET", "/api/v1/clients/1/orders?limit=1e2", 400, "invalid_argument"},
		{"limit huge", "GET", "/api/v1/clients/1/orders?limit=99999999999999999999999", 400, "invalid_argument"},
		{"status unknown", "GET", "/api/v1/clients/1/orders?status=lost", 400, "invalid_argument"},
		{"status case", "GET", "/api/v1/clients/1/orders?status=PAID", 400, "invalid_argument"},
		{"from not a date", "GET", "/api/v1/clients/1/orders?from=yesterday", 400, "invalid_argument"},
		{"from with time", "GET", "/api/v1/clients/1/orders?from=2026-01-01T00:00:00Z", 400, "invalid_argument"},
		{"to month 13", "GET", "/api/v1/clients/1/orders?to=2026-13-01", 400, "invalid_argument"},
		{"from after to", "GET", "/api/v1/clients/1/orders?from=2026-02-01&to=2026-01-01", 400, "invalid_argument"},
		// 0001-01-01 is time.Time's zero, which a Filter reads as "no bound":
		// as a bound it would be silently ignored and return every order.
		{"to year one", "GET", "/api/v1/clients/1/orders?to=0001-01-01", 400, "invalid_argument"},
		{"from after to year one", "GET", "/api/v1/clients/1/orders?from=0001-01-02&to=0001-01-01", 400, "invalid_argument"},
		{"unknown parameter", "GET", "/api/v1/clients/1/orders?stauts=paid", 400, "invalid_argument"},
		{"repeated parameter", "GET", "/api/v1/clients/1/orders?status=paid&status=shipped", 400, "invalid_argument"},
		{"empty cursor", "GET", "/api/v1/clients/1/orders?cursor=", 400, "invalid_argument"},
		{"garbage cursor", "GET", "/api/v1/clients/1/orders?cursor=abc", 400, "invalid_argument"},
		{"client not a number", "GET", "/api/v1/clients/abc/orders", 400, "invalid_argument"},
		{"client zero", "GET", "/api/v1/clients/0/orders", 400, "invalid_argument"},
		{"client negative", "GET", "/api/v1/clients/-1/summary", 400, "invalid_argument"},
		{"client plus sign", "GET", "/api/v1/clients/+1/summary", 400, "invalid_argument"},
		{"client overflow", "GET", "/api/v1/clients/99999999999999999999/orders", 400, "invalid_argument"},
		{"order overflow", "GET", "/api/v1/orders/9223372036854775808", 400, "invalid_argument"},
		{"order query parameter", "GET", "/api/v1/orders/101?x=1", 400, "invalid_argument"},
		{"malformed query", "GET", "/api/v1/clients/1/orders?limit=%zz", 400, "invalid_argument"},
		// Hostile input: quotes, comments, stacked statements, unicode, NUL.
		{"status quote", "GET", "/api/v1/clients/1/orders?status=" + url.QueryEscape("paid' OR '1'='1"), 400, "invalid_argument"},
		{"status comment", "GET", "/api/v1/clients/1/orders?status=" + url.QueryEscape("paid'--"), 400, "invalid_argument"},
		{"status stacked", "GET", "/api/v1/clients/1/orders?status=" + url.QueryEscape("paid'; DROP TABLE orders; --"), 400, "invalid_argument"},
		{"status unicode", "GET", "/api/v1/clients/1/orders?status=" + url.QueryEscape("päid"), 400, "invalid_argument"},
		{"status fullwidth quote", "GET", "/api/v1/clients/1/orders?status=" + url.QueryEscape("paid＇ OR 1=1"), 400, "invalid_argument"},
		{"status NUL", "GET", "/api/v1/clients/1/orders?status=paid%00", 400, "invalid_argument"},
		{"from injection", "GET", "/api/v1/clients/1/orders?from=" + url.QueryEscape("2026-01-01' OR '1'='1"), 400, "invalid_argument"},
		{"to comment", "GET", "/api/v1/clients/1/orders?to=" + url.QueryEscape("2026-01-01/**/"), 400, "invalid_argument"},
		{"cursor injection", "GET", "/api/v1/clients/1/orders?cursor=" + url.QueryEscape("' OR 1=1; --"), 400, "invalid_argument"},
		{"client injection", "GET", "/api/v1/clients/" + url.PathEscape("1 OR 1=1") + "/orders", 400, "invalid_argument"},
		{"client stacked", "GET", "/api/v1/clients/" + url.PathEscape("1; DROP TABLE clients") + "/summary", 400, "invalid_argument"},
		{"order unicode digits", "GET", "/api/v1/orders/" + url.PathEscape("١٠١"), 400, "invalid_argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := s.do(t, tt.method, tt.target)
			if code != tt.status {
				t.Errorf("status %d, want %d (body %s)", code, tt.status, body)
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, body)
			}
			if e.Error.Code != tt.code || e.Error.Message == "" {
				t.Errorf("error = %+v, want code %q and a message", e.Error, tt.code)
			}
			for _, leak := range []string{"SELECT", "FROM orders", "sql:", "goroutine", ".go:"} {
				if strings.Contains(body, leak) {
					t.Errorf("body leaks %q: %s", leak, body)
				}
			}
		})
	}
	// The hostile requests changed nothing.
	for table, want := range map[string]int{"clients": 3, "orders": 8, "order_lines": 3} {
		var n int
		if err := s.db.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d rows (err %v), want %d", table, n, err, want)
		}
	}
	// Every answer was counted with its code.
	if got := counterValue(t, s.reg, "client_orders", "GET", "400"); got < 20 {
		t.Errorf("orderapp_http_requests_total{handler=client_orders,code=400} = %v, want >= 20", got)
	}
}

// counterValue reads one series of orderapp_http_requests_total.
func counterValue(t *testing.T, reg *prometheus.Registry, handler, method, code string) float64 {
	t.Helper()
	return counter.Value(t, reg, "orderapp_http_requests_total", map[string]string{"handler": handler, "method": method, "code": code})
}

type failingStore struct{ err error }

func (f failingStore) ListOrders(context.Context, int64, orders.Filter, int, string) (orders.Page, error) {
	return orders.Page{}, f.err
}
func (f failingStore) GetOrder(context.Context, int64) (orders.OrderWithLines, error) {
	return orders.OrderWithLines{}, f.err
}
func (f failingStore) Summary(context.Context, int64) (orders.Summary, error) {
	return orders.Summary{}, f.err
}

type panickingStore struct{ failingStore }

func (panickingStore) Summary(context.Context, int64) (orders.Summary, error) { panic("boom") }

// TestServerErrors: a database error is 500 with a generic message (the SQL
// stays in the log), no pool yet and an unreachable database are 503, a panic
// is a JSON 500.
func TestServerErrors(t *testing.T) {
	sqlErr := errors.New(`ERROR: relation "orders" does not exist: SELECT order_id FROM orders WHERE client_id = $1`)
	tests := []struct {
		name   string
		store  httpapi.Store
		target string
		status int
		code   string
	}{
		{"database error", failingStore{sqlErr}, "/api/v1/clients/1/orders", 500, "internal"},
		{"not ready", failingStore{dbconn.ErrNotReady}, "/api/v1/orders/1", 503, "unavailable"},
		{"timeout", failingStore{context.DeadlineExceeded}, "/api/v1/clients/1/summary", 503, "unavailable"},
		{"database unreachable", failingStore{fmt.Errorf("list orders: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})}, "/api/v1/clients/1/orders", 503, "unavailable"},
		{"database shutting down", failingStore{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}}, "/api/v1/orders/1", 503, "unavailable"},
		{"panic", panickingStore{}, "/api/v1/clients/1/summary", 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			logs := &strings.Builder{}
			h, err := httpapi.New(httpapi.Config{Store: tt.store, Ready: func(context.Context) error { return nil },
				Registerer: reg, Gatherer: reg, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			s := server{h: h, reg: reg}
			code, body := s.get(t, tt.target)
			if code != tt.status || !strings.Contains(body, `"code":"`+tt.code+`"`) {
				t.Errorf("got %d %s, want %d with code %s", code, body, tt.status, tt.code)
			}
			if strings.Contains(body, "SELECT") || strings.Contains(body, "relation") || strings.Contains(body, "boom") {
				t.Errorf("body leaks internals: %s", body)
			}
			if tt.name == "database error" && !strings.Contains(logs.String(), "relation") {
				t.Errorf("the log lacks the database error:\n%s", logs)
			}
		})
	}
}

func TestProbesAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := dbconn.NewManager(dialect.SQLite, dbconn.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h, err := httpapi.New(httpapi.Config{Store: orders.New(m, dialect.SQLite), Ready: m.Ready, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s := server{h: h, reg: reg}
	if code, body := s.get(t, "/livez"); code != 200 {
		t.Errorf("/livez before the pool: %d %s", code, body)
	}
	if code, body := s.get(t, "/readyz"); code != 503 || !strings.Contains(body, `"unavailable"`) {
		t.Errorf("/readyz before the pool: %d %s, want 503 unavailable", code, body)
	}
	if code, body := s.get(t, "/api/v1/clients/1/orders"); code != 503 {
		t.Errorf("API before the pool: %d %s, want 503", code, body)
	}
	if err := m.Apply(t.Context(), secrets.Credentials{Database: filepath.Join(t.TempDir(), "x.db")}); err != nil {
		t.Fatal(err)
	}
	if code, body := s.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz with a pool: %d %s", code, body)
	}
	code, body := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`orderapp_http_requests_total{code="503",handler="readyz",method="GET"} 1`,
		`orderapp_http_requests_total{code="200",handler="readyz",method="GET"} 1`,
		`orderapp_credential_rotations_total{result="success"} 1`,
		`orderapp_credential_rotations_total{result="failure"} 0`,
		`go_sql_open_connections{db_name="orderapp"}`,
		`orderapp_http_request_duration_seconds_bucket{handler="livez",method="GET",le="0.001"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

// slowStore waits for the request's context to end, like a hung database.
type slowStore struct{ failingStore }

func (slowStore) GetOrder(ctx context.Context, _ int64) (orders.OrderWithLines, error) {
	<-ctx.Done()
	return orders.OrderWithLines{}, ctx.Err()
}

func TestRequestTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := httpapi.New(httpapi.Config{Store: slowStore{}, Ready: func(context.Context) error { return nil },
		Registerer: reg, Gatherer: reg, RequestTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	code, body := server{h: h, reg: reg}.get(t, "/api/v1/orders/1")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) {
		t.Errorf("hung store: %d %s, want 503 unavailable", code, body)
	}
}

// TestLimitsAndDates: limit defaults to 50 and accepts 1..500, from and to are
// inclusive, and nextCursor is absent (not null, not "") on the last page.
func TestLimitsAndDates(t *testing.T) {
	s := newServer(t)
	// 60 orders of the client without orders, one a day from 2025-01-01:
	// order 1000+i on day i.
	const n = 60
	first := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		dbtest.InsertOrder(t, s.db, 1000+int64(i), dbtest.ClientNoOrders, orders.NewDate(2025, 1, 1+i), "paid", "EUR", "1.00")
	}
	day := func(i int) string { return first.AddDate(0, 0, i).Format(time.DateOnly) }
	newest := func(count int) []int64 { // the ids of the newest count orders, in API order
		out := []int64{}
		for i := n - 1; i >= n-count; i-- {
			out = append(out, 1000+int64(i))
		}
		return out
	}
	tests := []struct {
		name, query string
		want        []int64
		cursor      bool
	}{
		{"default limit is 50", "", newest(50), true},
		{"limit 1", "?limit=1", newest(1), true},
		{"limit 59", "?limit=59", newest(59), true},
		{"limit equal to the count: last page", "?limit=60", newest(60), false},
		{"limit 500", "?limit=500", newest(60), false},
		{"from and to inclusive", "?from=" + day(10) + "&to=" + day(12), []int64{1012, 1011, 1010}, false},
		{"single day", "?from=" + day(5) + "&to=" + day(5), []int64{1005}, false},
		{"from inclusive", "?from=" + day(58), []int64{1059, 1058}, false},
		{"to inclusive", "?to=" + day(1), []int64{1001, 1000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := s.get(t, "/api/v1/clients/2/orders"+tt.query)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var page struct {
				Orders []orders.Order `json:"orders"`
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(body), &keys); err != nil {
				t.Fatal(err)
			}
			got := []int64{}
			for _, o := range page.Orders {
				got = append(got, o.OrderID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("order ids (-want +got):\n%s", diff)
			}
			raw, has := keys["nextCursor"]
			if has != tt.cursor {
				t.Errorf("nextCursor present = %v (%s), want %v", has, raw, tt.cursor)
			}
			if has && (string(raw) == `""` || string(raw) == "null") {
				t.Errorf("nextCursor = %s, want an opaque non-empty string", raw)
			}
		})
	}
}
