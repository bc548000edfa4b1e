package seed_test

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
	"github.com/secretproxy/secretproxy/orderapp/internal/seed"
)

// digest hashes every row in key order, with amounts and dates normalised, so
// two databases (even of different dialects) can be compared.
func digest(t *testing.T, db *sql.DB) string {
	t.Helper()
	h := sha256.New()
	dump := func(q string, cols int, norm func([]any) string) {
		rows, err := db.QueryContext(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			vals := make([]any, cols)
			ptrs := make([]any, cols)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(h, norm(vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	dump("SELECT client_id, name, email, country FROM clients ORDER BY client_id", 4, func(v []any) string { return fmt.Sprintf("%v|%s|%s|%s", v[0], v[1], v[2], v[3]) })
	dump("SELECT order_id, client_id, order_date, status, currency, total_amount FROM orders ORDER BY order_id", 6, func(v []any) string {
		var d orders.Date
		var a orders.Amount
		if err := d.Scan(v[2]); err != nil {
			t.Fatal(err)
		}
		if err := a.Scan(v[5]); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%v|%v|%s|%s|%s|%s", v[0], v[1], d, v[3], v[4], a)
	})
	dump("SELECT order_id, line_no, sku, description, quantity, unit_price FROM order_lines ORDER BY order_id, line_no", 6, func(v []any) string {
		var a orders.Amount
		if err := a.Scan(v[5]); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%v|%v|%s|%s|%v|%s", v[0], v[1], v[2], v[3], v[4], a)
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestDeterministicAcrossDialects(t *testing.T) {
	opts := seed.Options{Clients: 25, OrdersPerClient: 30, Seed: 42}
	var first string
	dbtest.Each(t, func(t *testing.T, db dbtest.DB) {
		st, err := seed.Run(t.Context(), db.DB, db.Dialect, opts)
		if err != nil {
			t.Fatal(err)
		}
		if st.Clients != 25 || st.Orders != 750 || st.Lines < 750 || st.Lines > 5*750 {
			t.Errorf("stats %+v: want 25 clients, 750 orders, 1 to 5 lines each", st)
		}
		var lines int64
		if err := db.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM order_lines").Scan(&lines); err != nil || lines != st.Lines {
			t.Errorf("order_lines holds %d rows (%v), stats say %d", lines, err, st.Lines)
		}
		// Each order's total is the sum of its lines (to the cent: SQLite sums floats).
		var bad int
		q := "SELECT COUNT(*) FROM orders o WHERE ABS(o.total_amount - (SELECT SUM(l.quantity * l.unit_price) FROM order_lines l WHERE l.order_id = o.order_id)) >= 0.005"
		if err := db.DB.QueryRowContext(t.Context(), q).Scan(&bad); err != nil || bad != 0 {
			t.Errorf("%d orders whose total is not the sum of their lines (%v)", bad, err)
		}
		// Every order has 1 to 5 lines; with 750 orders both ends occur.
		var minLines, maxLines, nOrders int
		q = "SELECT MIN(c), MAX(c), COUNT(*) FROM (SELECT (SELECT COUNT(*) FROM order_lines l WHERE l.order_id = o.order_id) AS c FROM orders o) per_order"
		if err := db.DB.QueryRowContext(t.Context(), q).Scan(&minLines, &maxLines, &nOrders); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int{1, 5, 750}, []int{minLines, maxLines, nOrders}); diff != "" {
			t.Errorf("lines per order [min max] and orders (-want +got):\n%s", diff)
		}
		got := digest(t, db.DB)
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("%s data differs from the first dialect's", db.Name)
		}
		if _, err := seed.Run(t.Context(), db.DB, db.Dialect, opts); err == nil {
			t.Error("seeding a database that holds clients succeeded")
		}
	})
	// Another seed writes other data.
	db := dbtest.SQLite(t)
	if _, err := seed.Run(t.Context(), db.DB, db.Dialect, seed.Options{Clients: 25, OrdersPerClient: 30, Seed: 43}); err != nil {
		t.Fatal(err)
	}
	if digest(t, db.DB) == first {
		t.Error("seeds 42 and 43 wrote the same data")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []seed.Options{{Clients: 0, OrdersPerClient: 1}, {Clients: 1, OrdersPerClient: -1}, {Clients: 1, OrdersPerClient: 1_000_001}, {Clients: 1000, OrdersPerClient: 1_000_000}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
