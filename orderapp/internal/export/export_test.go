package export_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/secretproxy/secretproxy/orderapp/internal/dbtest"
	"github.com/secretproxy/secretproxy/orderapp/internal/export"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

func TestWrite(t *testing.T) {
	db := dbtest.SQLite(t)
	dbtest.Load(t, db)
	repo := orders.New(orders.Static{DB: db.DB}, db.Dialect)
	from, _ := orders.ParseDate("2026-01-03")
	to, _ := orders.ParseDate("2026-01-05")
	tests := []struct {
		format string
		filter orders.Filter
		want   string
		n      int64
	}{
		{export.CSV, orders.Filter{From: from, To: to, Status: "paid"},
			"order_id,client_id,order_date,status,currency,total_amount\n" +
				"101,1,2026-01-05,paid,EUR,100.10\n" +
				"107,1,2026-01-04,paid,EUR,0.01\n", 2},
		{export.JSON, orders.Filter{From: from, To: to, Status: "paid"},
			`{"orderId":101,"clientId":1,"orderDate":"2026-01-05","status":"paid","currency":"EUR","totalAmount":"100.10"}` + "\n" +
				`{"orderId":107,"clientId":1,"orderDate":"2026-01-04","status":"paid","currency":"EUR","totalAmount":"0.01"}` + "\n", 2},
		{export.CSV, orders.Filter{Status: "refunded", From: to}, "order_id,client_id,order_date,status,currency,total_amount\n", 0},
		{export.JSON, orders.Filter{Status: "refunded", From: to}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var out bytes.Buffer
			n, err := export.Write(t.Context(), repo, &out, tt.format, dbtest.ClientWithOrders, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.n {
				t.Errorf("wrote %d orders, want %d", n, tt.n)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
	var out bytes.Buffer
	if _, err := export.Write(t.Context(), repo, &out, export.CSV, dbtest.UnknownClient, orders.Filter{}); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("unknown client: %v, want ErrNotFound", err)
	}
	if _, err := export.Write(t.Context(), repo, &out, "xml", 1, orders.Filter{}); err == nil {
		t.Error("format xml accepted")
	}
	full, err := export.Write(t.Context(), repo, &out, export.CSV, dbtest.ClientWithOrders, orders.Filter{})
	if err != nil || full != int64(len(dbtest.ClientOrderIDs)) {
		t.Errorf("full export: %d orders, %v", full, err)
	}
}
