package orders_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

// The contract suite: the same table runs against every dialect (dbtest.Each),
// so the dialects cannot drift apart.

func repoFor(t *testing.T, db dbtest.DB) *orders.Repo {
	t.Helper()
	dbtest.Load(t, db)
	return orders.New(orders.Static{DB: db.DB}, db.Dialect)
}

func ids(os []orders.Order) []int64 {
	out := []int64{}
	for _, o := range os {
		out = append(out, o.OrderID)
	}
	return out
}

func date(t *testing.T, s string) orders.Date {
	t.Helper()
	d, err := orders.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db dbtest.DB) {
		r := repoFor(t, db)
		t.Run("list", func(t *testing.T) { testList(t, r) })
		t.Run("pages", func(t *testing.T) { testPages(t, r) })
		t.Run("errors", func(t *testing.T) { testListErrors(t, r) })
		t.Run("get", func(t *testing.T) { testGet(t, r) })
		t.Run("summary", func(t *testing.T) { testSummary(t, r) })
		t.Run("export", func(t *testing.T) { testExport(t, r) })
		t.Run("cursor stable under inserts", func(t *testing.T) { testConcurrentInserts(t, r, db) })
	})
}

func testList(t *testing.T, r *orders.Repo) {
	tests := []struct {
		name   string
		client int64
		filter orders.Filter
		want   []int64
	}{
		{"all, newest first, ties by id", dbtest.ClientWithOrders, orders.Filter{}, dbtest.ClientOrderIDs},
		{"status", dbtest.ClientWithOrders, orders.Filter{Status: "paid"}, []int64{101, 107}},
		{"from and to inclusive", dbtest.ClientWithOrders, orders.Filter{From: date(t, "2026-01-03"), To: date(t, "2026-01-04")}, []int64{107, 103}},
		{"from only", dbtest.ClientWithOrders, orders.Filter{From: date(t, "2026-01-04")}, []int64{106, 102, 101, 107}},
		{"to only", dbtest.ClientWithOrders, orders.Filter{To: date(t, "2026-01-02")}, []int64{104, 105}},
		{"single day", dbtest.ClientWithOrders, orders.Filter{From: date(t, "2025-12-31"), To: date(t, "2025-12-31")}, []int64{105}},
		{"status and dates", dbtest.ClientWithOrders, orders.Filter{Status: "paid", From: date(t, "2026-01-05")}, []int64{101}},
		{"nothing matches", dbtest.ClientWithOrders, orders.Filter{Status: "refunded", From: date(t, "2026-01-03")}, []int64{}},
		{"client without orders", dbtest.ClientNoOrders, orders.Filter{}, []int64{}},
		{"other client", dbtest.ClientOther, orders.Filter{}, []int64{201}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := r.ListOrders(t.Context(), tt.client, tt.filter, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(page.Orders)); diff != "" {
				t.Errorf("order ids (-want +got):\n%s", diff)
			}
			if page.NextCursor != "" {
				t.Errorf("NextCursor = %q on the only page, want none", page.NextCursor)
			}
		})
	}
	t.Run("fields", func(t *testing.T) {
		page, err := r.ListOrders(t.Context(), dbtest.ClientWithOrders, orders.Filter{}, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		want := []orders.Order{{OrderID: 106, ClientID: 1, OrderDate: date(t, "2026-01-05"), Status: "pending", Currency: "GBP", TotalAmount: 123456789012}}
		if diff := cmp.Diff(want, page.Orders); diff != "" {
			t.Errorf("orders (-want +got):\n%s", diff)
		}
	})
}

func testPages(t *testing.T, r *orders.Repo) {
	for _, limit := range []int{1, 2, 3, 6, 7, 8, 500} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []int64
			cursor := ""
			for i := 0; i < 20; i++ {
				page, err := r.ListOrders(t.Context(), dbtest.ClientWithOrders, orders.Filter{}, limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Orders) > limit {
					t.Fatalf("page of %d orders, limit %d", len(page.Orders), limit)
				}
				got = append(got, ids(page.Orders)...)
				if page.NextCursor == "" {
					break
				}
				if len(page.Orders) != limit {
					t.Fatalf("a short page (%d of %d) carries a cursor", len(page.Orders), limit)
				}
				cursor = page.NextCursor
			}
			if diff := cmp.Diff(dbtest.ClientOrderIDs, got); diff != "" {
				t.Errorf("order ids over all pages (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("cursor with filter", func(t *testing.T) {
		f := orders.Filter{Status: "paid"}
		p1, err := r.ListOrders(t.Context(), dbtest.ClientWithOrders, f, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		p2, err := r.ListOrders(t.Context(), dbtest.ClientWithOrders, f, 1, p1.NextCursor)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int64{101, 107}, append(ids(p1.Orders), ids(p2.Orders)...)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if p2.NextCursor != "" {
			t.Errorf("last page has a cursor")
		}
	})
}

func testListErrors(t *testing.T, r *orders.Repo) {
	tests := []struct {
		name   string
		client int64
		filter orders.Filter
		limit  int
		cursor string
		want   error // ErrNotFound, or nil for *InvalidArgumentError
	}{
		{"unknown client", dbtest.UnknownClient, orders.Filter{}, 0, "", orders.ErrNotFound},
		{"client zero", 0, orders.Filter{}, 0, "", nil},
		{"negative client", -5, orders.Filter{}, 0, "", nil},
		{"limit too big", 1, orders.Filter{}, 501, "", nil},
		{"negative limit", 1, orders.Filter{}, -1, "", nil},
		{"unknown status", 1, orders.Filter{Status: "lost"}, 0, "", nil},
		{"status injection", 1, orders.Filter{Status: "paid' OR '1'='1"}, 0, "", nil},
		{"from after to", 1, orders.Filter{From: date(t, "2026-02-01"), To: date(t, "2026-01-01")}, 0, "", nil},
		{"cursor not base64", 1, orders.Filter{}, 0, "!!!", nil},
		{"cursor injection", 1, orders.Filter{}, 0, "djE6MjAyNi0wMS0wNTowIE9SIDE9MQ", nil}, // v1:2026-01-05:0 OR 1=1
		{"cursor huge id", 1, orders.Filter{}, 0, "djE6MjAyNi0wMS0wNTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", nil},
		{"cursor bad date", 1, orders.Filter{}, 0, "djE6MjAyNi0xMy00MDox", nil},
		{"cursor too long", 1, orders.Filter{}, 0, string(make([]byte, 200)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.ListOrders(t.Context(), tt.client, tt.filter, tt.limit, tt.cursor)
			checkErr(t, err, tt.want)
		})
	}
}

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if want != nil {
		if !errors.Is(err, want) {
			t.Fatalf("error = %v, want %v", err, want)
		}
		return
	}
	var ia *orders.InvalidArgumentError
	if !errors.As(err, &ia) {
		t.Fatalf("error = %v (%T), want an InvalidArgumentError", err, err)
	}
}

func testGet(t *testing.T, r *orders.Repo) {
	got, err := r.GetOrder(t.Context(), 101)
	if err != nil {
		t.Fatal(err)
	}
	want := orders.OrderWithLines{
		Order: orders.Order{OrderID: 101, ClientID: 1, OrderDate: date(t, "2026-01-05"), Status: "paid", Currency: "EUR", TotalAmount: 10010},
		Lines: []orders.Line{
			{LineNo: 1, SKU: "A-1", Description: "Widget, large", Quantity: 2, UnitPrice: 5000},
			{LineNo: 2, SKU: "B-2", Description: "Ünïcode ✓", Quantity: 1, UnitPrice: 10},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetOrder(101) (-want +got):\n%s", diff)
	}
	got, err = r.GetOrder(t.Context(), 103)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]orders.Line{{LineNo: 1, SKU: "C-3", Quantity: 5, UnitPrice: 1000}}, got.Lines); diff != "" {
		t.Errorf("GetOrder(103) lines, NULL description (-want +got):\n%s", diff)
	}
	got, err = r.GetOrder(t.Context(), 106)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lines == nil || len(got.Lines) != 0 {
		t.Errorf("GetOrder(106) lines = %#v, want an empty, non-nil list", got.Lines)
	}
	_, err = r.GetOrder(t.Context(), 999999)
	checkErr(t, err, orders.ErrNotFound)
	_, err = r.GetOrder(t.Context(), 0)
	checkErr(t, err, nil)
}

func testSummary(t *testing.T, r *orders.Repo) {
	tests := []struct {
		client int64
		want   orders.Summary
	}{
		{dbtest.ClientWithOrders, orders.Summary{ClientID: 1, Name: dbtest.HostileName, OrderCount: 7, Totals: []orders.Total{
			{Currency: "EUR", Amount: 12016}, // 100.10 + 20.05 + 0.01; the cancelled 50.00 is left out
			{Currency: "GBP", Amount: 123456789012},
			{Currency: "USD", Amount: 99}, // the refunded 10.00 is left out
		}}},
		{dbtest.ClientNoOrders, orders.Summary{ClientID: 2, Name: "No Orders Ltd", OrderCount: 0, Totals: []orders.Total{}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.client), func(t *testing.T) {
			got, err := r.Summary(t.Context(), tt.client)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Summary (-want +got):\n%s", diff)
			}
		})
	}
	_, err := r.Summary(t.Context(), dbtest.UnknownClient)
	checkErr(t, err, orders.ErrNotFound)
}

func testExport(t *testing.T, r *orders.Repo) {
	collect := func(client int64, f orders.Filter) ([]int64, error) {
		got := []int64{}
		err := r.Export(t.Context(), client, f, func(o orders.Order) error {
			got = append(got, o.OrderID)
			return nil
		})
		return got, err
	}
	got, err := collect(dbtest.ClientWithOrders, orders.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dbtest.ClientOrderIDs, got); diff != "" {
		t.Errorf("export (-want +got):\n%s", diff)
	}
	got, err = collect(dbtest.ClientWithOrders, orders.Filter{From: date(t, "2026-01-03"), To: date(t, "2026-01-04")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{107, 103}, got); diff != "" {
		t.Errorf("export with dates (-want +got):\n%s", diff)
	}
	_, err = collect(dbtest.UnknownClient, orders.Filter{})
	checkErr(t, err, orders.ErrNotFound)
	stop := errors.New("stop")
	n := 0
	err = r.Export(t.Context(), dbtest.ClientWithOrders, orders.Filter{}, func(orders.Order) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("export whose callback fails: err %v after %d rows, want %v after 1", err, n, stop)
	}
}

// testConcurrentInserts inserts orders between page reads, before, inside and
// after the pages already read: every order that existed at the start is seen
// exactly once.
func testConcurrentInserts(t *testing.T, r *orders.Repo, db dbtest.DB) {
	ctx := context.WithoutCancel(t.Context())
	client := dbtest.ClientOther // 201 on 2026-01-05; give it more orders to page through
	base := []int64{201}
	for i := int64(0); i < 9; i++ {
		id := 300 + i
		dbtest.InsertOrder(t, db, id, client, date(t, fmt.Sprintf("2025-06-%02d", 10+i)), "paid", "EUR", "1.00")
		base = append(base, id)
	}
	inserts := [][]struct {
		id   int64
		date string
	}{
		{{400, "2026-02-01"}, {401, "2025-06-15"}}, // newer than everything; among the pages to come
		{{402, "2025-06-18"}, {200, "2026-01-05"}}, // among pages read; same date as 201, lower id
		{{403, "2025-01-01"}},                      // older than everything
	}
	seen := map[int64]int{}
	cursor := ""
	for i := 0; i < 20; i++ {
		page, err := r.ListOrders(ctx, client, orders.Filter{}, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			seen[o.OrderID]++
		}
		if i < len(inserts) {
			for _, in := range inserts[i] {
				dbtest.InsertOrder(t, db, in.id, client, date(t, in.date), "paid", "EUR", "2.00")
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for _, id := range base {
		if seen[id] != 1 {
			t.Errorf("order %d seen %d times, want once", id, seen[id])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("order %d seen %d times", id, n)
		}
	}
	if seen[401] != 1 || seen[403] != 1 {
		t.Errorf("orders inserted ahead of the cursor: 401 seen %d, 403 seen %d; want both once", seen[401], seen[403])
	}
}
