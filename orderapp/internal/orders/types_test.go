package orders

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in      string
		want    Amount
		wantErr bool
	}{
		{"0", 0, false},
		{"12", 1200, false},
		{"12.5", 1250, false},
		{"12.50", 1250, false},
		{"12.5000", 1250, false},
		{"-0.50", -50, false},
		{".05", 5, false},
		{"1234567890.12", 123456789012, false},
		{"1.005", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"1e3", 0, true},
		{"1.-5", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAmount(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseAmount(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("parseAmount(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestAmountScan(t *testing.T) {
	tests := []struct {
		src  any
		want Amount
	}{
		{"123.45", 12345},
		{[]byte("0.10"), 10},
		{123.45, 12345}, // SQLite's float
		{0.29, 29},      // 0.29*100 = 28.999999999999996
		{-0.29, -29},
		{int64(7), 700},
	}
	for _, tt := range tests {
		var a Amount
		if err := a.Scan(tt.src); err != nil || a != tt.want {
			t.Errorf("Scan(%#v) = %d, %v; want %d", tt.src, a, err, tt.want)
		}
	}
	var a Amount
	if err := a.Scan(nil); err == nil {
		t.Error("Scan(nil) succeeded, want an error")
	}
}

func TestJSON(t *testing.T) {
	o := Order{OrderID: 1, ClientID: 7, OrderDate: NewDate(2026, 1, 2), Status: "paid", Currency: "EUR", TotalAmount: 12345}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"orderId":1,"clientId":7,"orderDate":"2026-01-02","status":"paid","currency":"EUR","totalAmount":"123.45"}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	var back Order
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(o, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseBound(t *testing.T) {
	tests := []struct {
		in     string
		want   Date
		wantOK bool
	}{
		{"2026-01-02", NewDate(2026, 1, 2), true},
		{"0001-01-02", NewDate(1, 1, 2), true},
		{"9999-12-31", NewDate(9999, 12, 31), true},
		{"0001-01-01", Date{}, false}, // time.Time's zero: a Filter would read it as no bound
		{"2026-02-30", Date{}, false},
		{"2026-1-2", Date{}, false},
		{"", Date{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBound(tt.in)
			if (err == nil) != tt.wantOK {
				t.Fatalf("ParseBound(%q) error = %v, want ok=%v", tt.in, err, tt.wantOK)
			}
			if !got.Equal(tt.want.Time) {
				t.Errorf("ParseBound(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
