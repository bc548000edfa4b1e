// Package export writes a client's orders as CSV or JSON lines, streaming:
// each row goes from the database cursor through a buffered writer to the
// output, so memory stays flat however many orders there are.
package export

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

// Formats.
const (
	CSV  = "csv"
	JSON = "json"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (string, error) {
	if s == CSV || s == JSON {
		return s, nil
	}
	return "", fmt.Errorf("unknown format %q: use csv or json", s)
}

// Header is the CSV header row.
var Header = []string{"order_id", "client_id", "order_date", "status", "currency", "total_amount"}

// exporter is the repository call export needs; *orders.Repo implements it.
type exporter interface {
	Export(ctx context.Context, clientID int64, f orders.Filter, fn func(orders.Order) error) error
}

// Write streams the orders of clientID matching f to w in format and returns
// how many it wrote.
func Write(ctx context.Context, src exporter, w io.Writer, format string, clientID int64, f orders.Filter) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	var cw *csv.Writer
	var row func(orders.Order) error
	switch format {
	case CSV:
		cw = csv.NewWriter(bw)
		if err := cw.Write(Header); err != nil {
			return 0, fmt.Errorf("write csv header: %w", err)
		}
		rec := make([]string, len(Header))
		row = func(o orders.Order) error {
			rec[0] = strconv.FormatInt(o.OrderID, 10)
			rec[1] = strconv.FormatInt(o.ClientID, 10)
			rec[2] = o.OrderDate.String()
			rec[3] = o.Status
			rec[4] = o.Currency
			rec[5] = o.TotalAmount.String()
			n++
			return cw.Write(rec)
		}
	case JSON:
		enc := json.NewEncoder(bw)
		row = func(o orders.Order) error {
			n++
			return enc.Encode(o)
		}
	default:
		return 0, fmt.Errorf("unknown format %q: use csv or json", format)
	}
	if err := src.Export(ctx, clientID, f, row); err != nil {
		return n, err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, fmt.Errorf("write csv: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write output: %w", err)
	}
	return n, nil
}
