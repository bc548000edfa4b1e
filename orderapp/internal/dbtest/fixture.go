package dbtest

import (
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

// Fixture clients.
const (
	ClientWithOrders int64 = 1
	ClientNoOrders   int64 = 2
	ClientOther      int64 = 3
	UnknownClient    int64 = 999
	// HostileName is stored and read back verbatim: data is never SQL.
	HostileName = "Zoë Müller'); DROP TABLE clients; -- 日本"
)

type fixtureOrder struct {
	id, client int64
	date       string
	status     string
	currency   string
	total      string
}

// FixtureOrders lists the fixture's orders of ClientWithOrders.
var fixtureOrders = []fixtureOrder{
	{101, 1, "2026-01-05", "paid", "EUR", "100.10"},
	{102, 1, "2026-01-05", "shipped", "EUR", "20.05"},
	{103, 1, "2026-01-03", "cancelled", "EUR", "50.00"},
	{104, 1, "2026-01-02", "refunded", "USD", "10.00"},
	{105, 1, "2025-12-31", "delivered", "USD", "0.99"},
	{106, 1, "2026-01-05", "pending", "GBP", "1234567890.12"},
	{107, 1, "2026-01-04", "paid", "EUR", "0.01"},
	{201, 3, "2026-01-05", "paid", "EUR", "5.00"},
}

// ClientOrderIDs are ClientWithOrders' orders in API order: date descending, then id descending.
var ClientOrderIDs = []int64{106, 102, 101, 107, 103, 104, 105}

// Load writes the fixture into a migrated, empty database.
func Load(t testing.TB, db DB) {
	t.Helper()
	ctx := t.Context()
	d := db.Dialect
	created := d.TimestampArg(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.DB.ExecContext(ctx, d.Rebind(q), args...); err != nil {
			t.Fatalf("load fixture: %v", err)
		}
	}
	exec("INSERT INTO clients (client_id, name, email, country, created_at) VALUES (?, ?, ?, ?, ?)", ClientWithOrders, HostileName, "zoe@example.com", "DE", created)
	exec("INSERT INTO clients (client_id, name, email, country, created_at) VALUES (?, ?, ?, ?, ?)", ClientNoOrders, "No Orders Ltd", nil, nil, created)
	exec("INSERT INTO clients (client_id, name, email, country, created_at) VALUES (?, ?, ?, ?, ?)", ClientOther, "Other", "other@example.com", "FR", created)
	for _, o := range fixtureOrders {
		InsertOrder(t, db, o.id, o.client, mustDate(t, o.date), o.status, o.currency, o.total)
	}
	exec("INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price) VALUES (?, ?, ?, ?, ?, ?)", 101, 1, "A-1", "Widget, large", 2, "50.00")
	exec("INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price) VALUES (?, ?, ?, ?, ?, ?)", 101, 2, "B-2", "Ünïcode ✓", 1, "0.10")
	exec("INSERT INTO order_lines (order_id, line_no, sku, description, quantity, unit_price) VALUES (?, ?, ?, ?, ?, ?)", 103, 1, "C-3", nil, 5, "10.00")
}

// InsertOrder adds one order (for tests that insert while paginating).
func InsertOrder(t testing.TB, db DB, id, client int64, date orders.Date, status, currency, total string) {
	t.Helper()
	_, err := db.DB.ExecContext(t.Context(), db.Dialect.Rebind(
		"INSERT INTO orders (order_id, client_id, order_date, status, currency, total_amount) VALUES (?, ?, ?, ?, ?, ?)"),
		id, client, db.Dialect.DateArg(date.Time), status, currency, total)
	if err != nil {
		t.Fatalf("insert order %d: %v", id, err)
	}
}

func mustDate(t testing.TB, s string) orders.Date {
	t.Helper()
	d, err := orders.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
