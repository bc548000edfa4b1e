package orders

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
)

// Limits of one page of orders.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Conn runs fn with the current database pool. The dbconn manager implements it
// (pool swapped on rotation, one retry after a login failure); Static wraps a
// fixed pool for tools and tests. fn may run twice, so it must not have side
// effects beyond its queries before it returns an error.
type Conn interface {
	Do(ctx context.Context, fn func(*sql.DB) error) error
}

// Static is a Conn over one fixed pool.
type Static struct{ DB *sql.DB }

// Do runs fn with the pool.
func (s Static) Do(_ context.Context, fn func(*sql.DB) error) error { return fn(s.DB) }

// Repo reads orders. It is safe for concurrent use.
type Repo struct {
	conn Conn
	d    dialect.Dialect
}

// New returns a repository speaking dialect d over conn.
func New(conn Conn, d dialect.Dialect) *Repo { return &Repo{conn: conn, d: d} }

// Filter narrows a client's orders. Zero fields do not filter.
type Filter struct {
	Status string // one of Statuses
	From   Date   // inclusive
	To     Date   // inclusive
}

// Validate reports the first problem with f.
func (f Filter) Validate() error {
	if f.Status != "" && !ValidStatus(f.Status) {
		return invalidf("status %q is not one of %s", f.Status, strings.Join(Statuses, ", "))
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To.Time) {
		return invalidf("from (%s) is after to (%s)", f.From, f.To)
	}
	return nil
}

// Page is one page of orders, newest first.
type Page struct {
	Orders     []Order
	NextCursor string // empty on the last page
}

// cursor is the position after the last order of a page. Keyset pagination on
// (order_date, order_id), both descending, is stable under concurrent inserts:
// an order added later never shifts the rows of the pages still to come.
type cursor struct {
	date Date
	id   int64
}

const cursorPrefix = "v1:"

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + c.date.String() + ":" + strconv.FormatInt(c.id, 10)))
}

func decodeCursor(s string) (cursor, error) {
	bad := invalidf("cursor is not valid: pass the nextCursor of the previous page unchanged")
	if len(s) > 100 {
		return cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return cursor{}, bad
	}
	ds, ids, ok := strings.Cut(rest, ":")
	if !ok {
		return cursor{}, bad
	}
	d, err := ParseDate(ds)
	if err != nil {
		return cursor{}, bad
	}
	id, err := strconv.ParseInt(ids, 10, 64)
	if err != nil || id <= 0 {
		return cursor{}, bad
	}
	return cursor{date: d, id: id}, nil
}

const orderColumns = "order_id, client_id, order_date, status, currency, total_amount"

// ordersQuery builds the orders query of one client from fixed fragments; only
// placeholders carry the caller's values.
func (r *Repo) ordersQuery(clientID int64, f Filter, after *cursor, limit int) (string, []any) {
	var b strings.Builder
	args := []any{clientID}
	b.WriteString("SELECT " + orderColumns + " FROM orders WHERE client_id = ?")
	if f.Status != "" {
		b.WriteString(" AND status = ?")
		args = append(args, f.Status)
	}
	if !f.From.IsZero() {
		b.WriteString(" AND order_date >= ?")
		args = append(args, r.d.DateArg(f.From.Time))
	}
	if !f.To.IsZero() {
		b.WriteString(" AND order_date <= ?")
		args = append(args, r.d.DateArg(f.To.Time))
	}
	if after != nil {
		b.WriteString(" AND (order_date < ? OR (order_date = ? AND order_id < ?))")
		da := r.d.DateArg(after.date.Time)
		args = append(args, da, da, after.id)
	}
	b.WriteString(" ORDER BY order_date DESC, order_id DESC")
	if limit > 0 {
		b.WriteString(r.d.LimitClause())
		args = append(args, limit)
	}
	return r.d.Rebind(b.String()), args
}

func checkID(what string, id int64) error {
	if id <= 0 {
		return invalidf("%s must be a positive integer", what)
	}
	return nil
}

// ListOrders returns one page of a client's orders, newest first. An unknown
// client is ErrNotFound; a known client without matching orders is an empty page.
func (r *Repo) ListOrders(ctx context.Context, clientID int64, f Filter, limit int, cursorText string) (Page, error) {
	if err := checkID("clientID", clientID); err != nil {
		return Page{}, err
	}
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, invalidf("limit must be between 1 and %d", MaxLimit)
	}
	var after *cursor
	if cursorText != "" {
		c, err := decodeCursor(cursorText)
		if err != nil {
			return Page{}, err
		}
		after = &c
	}
	q, args := r.ordersQuery(clientID, f, after, limit+1)
	var page Page
	err := r.conn.Do(ctx, func(db *sql.DB) error {
		page = Page{Orders: make([]Order, 0, min(limit+1, 64))}
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("query orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var o Order
			if err := scanOrder(rows, &o); err != nil {
				return err
			}
			page.Orders = append(page.Orders, o)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		if len(page.Orders) == 0 {
			// Only an empty page needs to tell "no such client" from "no orders".
			return r.clientExists(ctx, db, clientID)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	if len(page.Orders) > limit {
		last := page.Orders[limit-1]
		page.Orders = page.Orders[:limit]
		page.NextCursor = cursor{date: last.OrderDate, id: last.OrderID}.encode()
	}
	return page, nil
}

func (r *Repo) clientExists(ctx context.Context, db *sql.DB, clientID int64) error {
	var one int
	err := db.QueryRowContext(ctx, r.d.Rebind("SELECT 1 FROM clients WHERE client_id = ?"), clientID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("client %d: %w", clientID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("look up client: %w", err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanOrder(s scanner, o *Order) error {
	if err := s.Scan(&o.OrderID, &o.ClientID, &o.OrderDate, &o.Status, &o.Currency, &o.TotalAmount); err != nil {
		return fmt.Errorf("scan order: %w", err)
	}
	// CHAR(3) may come back padded from some drivers.
	o.Currency = strings.TrimSpace(o.Currency)
	return nil
}

// GetOrder returns an order with its lines; an unknown order is ErrNotFound.
func (r *Repo) GetOrder(ctx context.Context, orderID int64) (OrderWithLines, error) {
	if err := checkID("orderID", orderID); err != nil {
		return OrderWithLines{}, err
	}
	var out OrderWithLines
	err := r.conn.Do(ctx, func(db *sql.DB) error {
		out = OrderWithLines{Lines: []Line{}}
		row := db.QueryRowContext(ctx, r.d.Rebind("SELECT "+orderColumns+" FROM orders WHERE order_id = ?"), orderID)
		if err := scanOrder(row, &out.Order); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("order %d: %w", orderID, ErrNotFound)
			}
			return err
		}
		rows, err := db.QueryContext(ctx, r.d.Rebind(
			"SELECT line_no, sku, description, quantity, unit_price FROM order_lines WHERE order_id = ? ORDER BY line_no"), orderID)
		if err != nil {
			return fmt.Errorf("query order lines: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var l Line
			var desc sql.NullString
			if err := rows.Scan(&l.LineNo, &l.SKU, &desc, &l.Quantity, &l.UnitPrice); err != nil {
				return fmt.Errorf("scan order line: %w", err)
			}
			l.Description = desc.String
			out.Lines = append(out.Lines, l)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read order lines: %w", err)
		}
		return nil
	})
	if err != nil {
		return OrderWithLines{}, err
	}
	return out, nil
}

// Summary counts a client's orders of every status and totals the amounts per
// currency, leaving out cancelled and refunded orders (no money changed hands).
func (r *Repo) Summary(ctx context.Context, clientID int64) (Summary, error) {
	if err := checkID("clientID", clientID); err != nil {
		return Summary{}, err
	}
	var s Summary
	err := r.conn.Do(ctx, func(db *sql.DB) error {
		s = Summary{ClientID: clientID, Totals: []Total{}}
		err := db.QueryRowContext(ctx, r.d.Rebind("SELECT name FROM clients WHERE client_id = ?"), clientID).Scan(&s.Name)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("client %d: %w", clientID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up client: %w", err)
		}
		if err := db.QueryRowContext(ctx, r.d.Rebind("SELECT COUNT(*) FROM orders WHERE client_id = ?"), clientID).Scan(&s.OrderCount); err != nil {
			return fmt.Errorf("count orders: %w", err)
		}
		rows, err := db.QueryContext(ctx, r.d.Rebind(
			"SELECT currency, SUM(total_amount) FROM orders WHERE client_id = ? AND status NOT IN ('cancelled', 'refunded') GROUP BY currency ORDER BY currency"), clientID)
		if err != nil {
			return fmt.Errorf("total orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t Total
			if err := rows.Scan(&t.Currency, &t.Amount); err != nil {
				return fmt.Errorf("scan total: %w", err)
			}
			t.Currency = strings.TrimSpace(t.Currency)
			s.Totals = append(s.Totals, t)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read totals: %w", err)
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	return s, nil
}

// Export calls fn with each of a client's orders, newest first, as the rows
// arrive: memory stays constant however many orders the client has. An unknown
// client is ErrNotFound. An error from fn stops the export and is returned.
func (r *Repo) Export(ctx context.Context, clientID int64, f Filter, fn func(Order) error) error {
	if err := checkID("clientID", clientID); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	q, args := r.ordersQuery(clientID, f, nil, 0)
	return r.conn.Do(ctx, func(db *sql.DB) error {
		if err := r.clientExists(ctx, db, clientID); err != nil {
			return err
		}
		rows, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("query orders: %w", err)
		}
		defer rows.Close()
		var o Order
		for rows.Next() {
			if err := scanOrder(rows, &o); err != nil {
				return err
			}
			if err := fn(o); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		return nil
	})
}
