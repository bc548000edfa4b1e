// Package seed writes deterministic demo data: the same options give the same
// rows, byte for byte, on every dialect. It is built for speed (a million order
// lines in seconds on SQLite): multi-row INSERTs through prepared statements,
// many rows per transaction.
package seed

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/orderapp/internal/dialect"
	"github.com/secretproxy/secretproxy/orderapp/internal/orders"
)

// Options say how much to write.
type Options struct {
	Clients         int    // clients 1..Clients
	OrdersPerClient int    // orders per client
	Seed            uint64 // the same seed writes the same data
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var probs []string
	if o.Clients < 1 || o.Clients > 10_000_000 {
		probs = append(probs, "clients must be between 1 and 10000000")
	}
	if int64(o.Clients)*int64(o.OrdersPerClient) > 100_000_000 {
		probs = append(probs, "at most 100000000 orders in all")
	}
	if o.OrdersPerClient < 0 || o.OrdersPerClient > 1_000_000 {
		probs = append(probs, "orders per client must be between 0 and 1000000")
	}
	if len(probs) > 0 {
		return fmt.Errorf("seed options: %s", strings.Join(probs, "; "))
	}
	return nil
}

// Stats counts what was written.
type Stats struct {
	Clients, Orders, Lines int64
}

// Client, Order and Line rows as generated.
type client struct {
	id        int64
	name      string
	email     string
	country   string
	createdAt time.Time
}

type order struct {
	orders.Order
	lines []orders.Line
}

var (
	firstNames = []string{"Ada", "Björn", "Chloé", "Dmitri", "Eşref", "Fatima", "Günter", "Hiroshi", "Inés", "José", "Katarzyna", "Liam", "Małgorzata", "Nuno", "Olivia", "Pál", "Zoë"}
	lastNames  = []string{"Andersen", "Bianchi", "Costa", "Dubois", "Eriksson", "Fernández", "García", "Hoffmann", "Ivanov", "Jansen", "Kowalski", "Lefèvre", "Müller", "Nagy", "O'Brien", "Petrović", "Ødegaard"}
	countries  = []string{"DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "US", "CH"}
	currencies = []string{"EUR", "USD", "GBP", "CHF"}
	products   = []string{"Widget", "Gadget", "Sprocket", "Gear", "Bracket", "Valve", "Sensor", "Cable", "Panel", "Bolt"}
	// Most orders complete; a few are cancelled or refunded.
	statusWeights = []struct {
		status string
		weight int
	}{{"pending", 5}, {"paid", 10}, {"shipped", 15}, {"delivered", 60}, {"cancelled", 6}, {"refunded", 4}}
	epoch = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
)

// genClient produces client id, then calls fn with each of its orders, from a
// generator seeded by (seed, id) alone: the data does not depend on batching
// or on other clients, and a client with a million orders needs no more memory
// than one with ten.
func genClient(seed uint64, id int64, ordersPerClient int, fn func(*order) error) (client, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	c := client{
		id:        id,
		name:      firstNames[rng.IntN(len(firstNames))] + " " + lastNames[rng.IntN(len(lastNames))],
		email:     fmt.Sprintf("client%d@example.com", id),
		country:   countries[rng.IntN(len(countries))],
		createdAt: epoch.AddDate(0, 0, -rng.IntN(1000)).Add(time.Duration(rng.IntN(86400)) * time.Second),
	}
	home := currencies[rng.IntN(len(currencies))]
	if fn == nil {
		return c, nil
	}
	var o order
	for j := range ordersPerClient {
		o.OrderID = (id-1)*int64(ordersPerClient) + int64(j) + 1
		o.ClientID = id
		o.OrderDate = orders.Date{Time: epoch.AddDate(0, 0, rng.IntN(3*365))}
		o.Status = pickStatus(rng)
		o.Currency = home
		if rng.IntN(10) == 0 {
			o.Currency = currencies[rng.IntN(len(currencies))]
		}
		n := 1 + rng.IntN(5)
		o.lines = o.lines[:0]
		var total orders.Amount
		for k := range n {
			p := products[rng.IntN(len(products))]
			l := orders.Line{
				LineNo:      k + 1,
				SKU:         fmt.Sprintf("%s-%04d", strings.ToUpper(p[:3]), rng.IntN(10000)),
				Description: p + " " + []string{"small", "medium", "large"}[rng.IntN(3)],
				Quantity:    1 + rng.IntN(10),
				UnitPrice:   orders.Amount(100 + rng.IntN(50000)),
			}
			total += l.UnitPrice * orders.Amount(l.Quantity)
			o.lines = append(o.lines, l)
		}
		o.TotalAmount = total
		if err := fn(&o); err != nil {
			return c, err
		}
	}
	return c, nil
}

func pickStatus(rng *rand.Rand) string {
	n := rng.IntN(100)
	for _, s := range statusWeights {
		if n < s.weight {
			return s.status
		}
		n -= s.weight
	}
	return "delivered"
}

// Run writes the data into an empty, migrated database. It refuses a database
// that already holds clients rather than mixing two data sets.
func Run(ctx context.Context, db *sql.DB, d dialect.Dialect, o Options) (Stats, error) {
	if err := o.Validate(); err != nil {
		return Stats{}, err
	}
	var existing int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM clients").Scan(&existing); err != nil {
		return Stats{}, fmt.Errorf("count existing clients (run migrate first): %w", err)
	}
	if existing > 0 {
		return Stats{}, fmt.Errorf("the database already holds %d clients: seed only writes into an empty database", existing)
	}
	var st Stats
	// A transaction holds about 20,000 orders: large enough that commits cost
	// little, small enough that memory stays flat.
	chunk := max(1, 20_000/max(1, o.OrdersPerClient))
	for first := 1; first <= o.Clients; first += chunk {
		last := min(o.Clients, first+chunk-1)
		if err := writeChunk(ctx, db, d, o, int64(first), int64(last), &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func writeChunk(ctx context.Context, db *sql.DB, d dialect.Dialect, o Options, first, last int64, st *Stats) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	cb := newBatcher(tx, d, "clients", "client_id, name, email, country, created_at", 5, nil)
	ob := newBatcher(tx, d, "orders", "order_id, client_id, order_date, status, currency, total_amount", 6, nil)
	// Foreign keys are checked per statement: the orders a batch of lines
	// refers to are written first.
	lb := newBatcher(tx, d, "order_lines", "order_id, line_no, sku, description, quantity, unit_price", 6, ob.flush)
	defer cb.close()
	defer ob.close()
	defer lb.close()

	for id := first; id <= last; id++ {
		c, _ := genClient(o.Seed, id, 0, nil)
		if err := cb.add(ctx, c.id, c.name, c.email, c.country, d.TimestampArg(c.createdAt)); err != nil {
			return err
		}
	}
	if err := cb.flush(ctx); err != nil {
		return err
	}
	for id := first; id <= last; id++ {
		_, err := genClient(o.Seed, id, o.OrdersPerClient, func(x *order) error {
			if err := ob.add(ctx, x.OrderID, x.ClientID, d.DateArg(x.OrderDate.Time), x.Status, x.Currency, x.TotalAmount.String()); err != nil {
				return err
			}
			st.Orders++
			for _, l := range x.lines {
				if err := lb.add(ctx, x.OrderID, l.LineNo, l.SKU, l.Description, l.Quantity, l.UnitPrice.String()); err != nil {
					return err
				}
				st.Lines++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := ob.flush(ctx); err != nil {
		return err
	}
	if err := lb.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	st.Clients += last - first + 1
	return nil
}

// batcher collects rows and inserts them many at a time with one prepared
// multi-row INSERT; the last, shorter batch gets its own statement.
type batcher struct {
	tx      *sql.Tx
	d       dialect.Dialect
	table   string
	columns string
	ncols   int
	perStmt int
	full    *sql.Stmt
	args    []any
	before  func(context.Context) error // runs before each insert
}

func newBatcher(tx *sql.Tx, d dialect.Dialect, table, columns string, ncols int, before func(context.Context) error) *batcher {
	// SQL Server also caps a VALUES list at 1000 rows.
	per := min(1000, d.MaxParams()/ncols)
	return &batcher{tx: tx, d: d, table: table, columns: columns, ncols: ncols, perStmt: per, args: make([]any, 0, per*ncols), before: before}
}

func (b *batcher) insert(rows int) string {
	var s strings.Builder
	s.WriteString("INSERT INTO " + b.table + " (" + b.columns + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", b.ncols), ", ") + ")"
	for i := range rows {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(row)
	}
	return b.d.Rebind(s.String())
}

func (b *batcher) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.perStmt*b.ncols {
		return nil
	}
	if b.before != nil {
		if err := b.before(ctx); err != nil {
			return err
		}
	}
	if b.full == nil {
		st, err := b.tx.PrepareContext(ctx, b.insert(b.perStmt))
		if err != nil {
			return fmt.Errorf("prepare insert into %s: %w", b.table, err)
		}
		b.full = st
	}
	if _, err := b.full.ExecContext(ctx, b.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", b.table, err)
	}
	b.args = b.args[:0]
	return nil
}

func (b *batcher) flush(ctx context.Context) error {
	if len(b.args) == 0 {
		return nil
	}
	if b.before != nil {
		if err := b.before(ctx); err != nil {
			return err
		}
	}
	if _, err := b.tx.ExecContext(ctx, b.insert(len(b.args)/b.ncols), b.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", b.table, err)
	}
	b.args = b.args[:0]
	return nil
}

func (b *batcher) close() {
	if b.full != nil {
		b.full.Close()
	}
}
