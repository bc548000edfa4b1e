// Package orders is the repository of client orders: parameterised queries,
// keyset (cursor) pagination, the per-client summary and streaming export, the
// same for every SQL dialect the application supports.
package orders

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Statuses lists every order status, in lifecycle order.
var Statuses = []string{"pending", "paid", "shipped", "delivered", "cancelled", "refunded"}

// ValidStatus reports whether s is one of Statuses.
func ValidStatus(s string) bool {
	for _, v := range Statuses {
		if v == s {
			return true
		}
	}
	return false
}

// ErrNotFound means the client or order does not exist.
var ErrNotFound = errors.New("not found")

// InvalidArgumentError is a request the repository refuses before it reaches
// the database; its message tells the caller what to change.
type InvalidArgumentError struct{ Msg string }

func (e *InvalidArgumentError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &InvalidArgumentError{Msg: fmt.Sprintf(format, args...)}
}

// Order is one order, as the API and the export show it.
type Order struct {
	OrderID     int64  `json:"orderId"`
	ClientID    int64  `json:"clientId"`
	OrderDate   Date   `json:"orderDate"`
	Status      string `json:"status"`
	Currency    string `json:"currency"`
	TotalAmount Amount `json:"totalAmount"`
}

// OrderWithLines is an order and its lines, by line number.
type OrderWithLines struct {
	Order
	Lines []Line `json:"lines"`
}

// Line is one order line.
type Line struct {
	LineNo      int    `json:"lineNo"`
	SKU         string `json:"sku"`
	Description string `json:"description"`
	Quantity    int    `json:"quantity"`
	UnitPrice   Amount `json:"unitPrice"`
}

// Summary is a client's order count and totals per currency.
type Summary struct {
	ClientID   int64   `json:"clientId"`
	Name       string  `json:"name"`
	OrderCount int64   `json:"orderCount"`
	Totals     []Total `json:"totals"`
}

// Total is the amount of one currency.
type Total struct {
	Currency string `json:"currency"`
	Amount   Amount `json:"amount"`
}

// Amount is a money amount in hundredths (cents). Held as an integer so that
// sums are exact whatever the driver returns (PostgreSQL and SQL Server give
// decimal text, SQLite a float); shown as a decimal string with two places.
type Amount int64

// String formats the amount as "123.45" or "-0.50".
func (a Amount) String() string {
	sign := ""
	v := int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// MarshalJSON writes the amount as a JSON string, so no client parses it as a float.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(`"` + a.String() + `"`), nil }

// UnmarshalJSON reads the string form.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("amount must be a JSON string: %w", err)
	}
	v, err := parseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// parseAmount reads a decimal string with at most two significant decimals
// ("12", "12.5", "12.50", "12.5000"); more precision is an error, never rounded.
func parseAmount(s string) (Amount, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("parse amount %q: empty", orig)
	}
	if whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 {
		return 0, fmt.Errorf("parse amount %q: not a decimal number", orig)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		return 0, fmt.Errorf("parse amount %q: more than two decimals", orig)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("parse amount %q: not a decimal number", orig)
	}
	if w > (1<<62)/100 {
		return 0, fmt.Errorf("parse amount %q: too large", orig)
	}
	v := w*100 + f
	if neg {
		v = -v
	}
	return Amount(v), nil
}

// Scan reads an amount from any driver's representation.
func (a *Amount) Scan(src any) error {
	switch v := src.(type) {
	case string:
		x, err := parseAmount(v)
		*a = x
		return err
	case []byte:
		x, err := parseAmount(string(v))
		*a = x
		return err
	case float64:
		// SQLite keeps DECIMAL values as floats; round to the nearest cent.
		if v >= 0 {
			*a = Amount(int64(v*100 + 0.5))
		} else {
			*a = Amount(int64(v*100 - 0.5))
		}
		return nil
	case int64:
		*a = Amount(v * 100)
		return nil
	case nil:
		return errors.New("scan amount: NULL")
	default:
		return fmt.Errorf("scan amount: unsupported type %T", src)
	}
}

// Date is a calendar date, shown as YYYY-MM-DD.
type Date struct{ time.Time }

// NewDate returns the date y-m-d.
func NewDate(y int, m time.Month, d int) Date { return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)} }

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("parse date %q: want YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

// ParseBound reads a from or to date given by a user. A Filter reads the zero
// Date as "no bound", and 0001-01-01 is time.Time's zero: as a bound it would
// be silently ignored (to=0001-01-01 would return every order), so it is
// refused instead.
func ParseBound(s string) (Date, error) {
	d, err := ParseDate(s)
	if err != nil {
		return Date{}, err
	}
	if d.IsZero() {
		return Date{}, fmt.Errorf("parse date %q: the earliest date a filter takes is 0001-01-02", s)
	}
	return d, nil
}

func (d Date) String() string { return d.Format(time.DateOnly) }

// MarshalJSON writes "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads "YYYY-MM-DD".
func (d *Date) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("date must be a JSON string: %w", err)
	}
	v, err := ParseDate(s)
	*d = v
	return err
}

// Scan reads a date from a DATE column (time.Time) or SQLite text.
func (d *Date) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*d = NewDate(v.Year(), v.Month(), v.Day())
		return nil
	case string:
		return d.scanText(v)
	case []byte:
		return d.scanText(string(v))
	default:
		return fmt.Errorf("scan date: unsupported type %T", src)
	}
}

func (d *Date) scanText(s string) error {
	if len(s) >= 10 {
		s = s[:10]
	}
	v, err := ParseDate(s)
	*d = v
	return err
}
