// Command demo runs the whole pod on this machine: kv-emulator standing in for
// Azure (Key Vault and the managed-identity endpoint, over the real protocols),
// secret-proxy reading the order application's database credentials from it,
// and orderapp on an embedded sqlite database taking its credentials from the
// sidecar.
//
//	demo run    [--bin bin] [--dir .demo] [--app-listen 127.0.0.1:8080] [--ops-listen 127.0.0.1:9090]
//	            [--grpc-listen 127.0.0.1:50051] [--clients 200] [--orders 50] [--reseed]
//	demo rotate [--dir .demo]   (sets a new version of the database password in the emulator)
//
// The sqlite database in --dir is kept between runs: --clients and --orders
// seed a new one only; --reseed replaces an existing one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secretproxy/secretproxy/e2e/pod"
	"github.com/secretproxy/secretproxy/proto/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: demo run|rotate [flags]")
	}
	switch args[0] {
	case "run":
		return runDemo(ctx, args[1:], out)
	case "rotate":
		return rotate(ctx, args[1:], out)
	}
	return fmt.Errorf("unknown subcommand %q: want run or rotate", args[0])
}

// state is what `demo run` leaves for `demo rotate`.
type state struct {
	VaultURL string `json:"vaultURL"`
	CAFile   string `json:"caFile"`
	AppURL   string `json:"appURL"`
	OpsURL   string `json:"opsURL"`
}

type runFlags struct {
	bin, dir                      string
	appListen, opsListen, grpcTCP string
	clients, orders               int
	dbAuth                        string
	reseed                        bool
	// sizeFlags are --clients and --orders as given on the command line
	// (empty when left at their defaults), to say that a kept database ignores them.
	sizeFlags []string
}

// sqlScope is the scope orderapp asks for with --db-auth entra and sqlite
// (sqlite stands in for Azure SQL).
const sqlScope = "https://database.windows.net/.default"

func parseRun(args []string) (runFlags, error) {
	var f runFlags
	fs := runFlagSet(&f)
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "clients" || fl.Name == "orders" {
			f.sizeFlags = append(f.sizeFlags, "--"+fl.Name+" "+fl.Value.String())
		}
	})
	return f, checkRun(f)
}

// runFlagSet defines the flags of `demo run` into f; the README lists each one.
func runFlagSet(f *runFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("demo run", flag.ContinueOnError)
	fs.StringVar(&f.bin, "bin", "bin", "directory holding secret-proxy, kv-emulator and orderapp")
	fs.StringVar(&f.dir, "dir", ".demo", "working directory for the demo's files (database, socket, logs)")
	fs.StringVar(&f.appListen, "app-listen", "127.0.0.1:8080", "order API address")
	fs.StringVar(&f.opsListen, "ops-listen", "127.0.0.1:9090", "sidecar ops address (/metrics /livez /readyz)")
	fs.StringVar(&f.grpcTCP, "grpc-listen", "127.0.0.1:50051", "sidecar gRPC on TCP, for grpcurl (the app uses the unix socket)")
	fs.IntVar(&f.clients, "clients", 200, "clients to seed")
	fs.IntVar(&f.orders, "orders", 50, "orders per client to seed")
	fs.StringVar(&f.dbAuth, "db-auth", "password", "orderapp's --db-auth: password, or entra (passwordless: the sidecar hands out Entra access tokens; sqlite has no login, so the token is fetched and not used)")
	fs.BoolVar(&f.reseed, "reseed", false, "replace the demo database left by an earlier run with a new one seeded with --clients and --orders")
	return fs
}

// checkRun refuses addresses that are not loopback and sizes out of range.
func checkRun(f runFlags) error {
	for name, addr := range map[string]string{"--app-listen": f.appListen, "--ops-listen": f.opsListen, "--grpc-listen": f.grpcTCP} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("%s %q: want host:port", name, addr)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s %q: the demo listens on loopback only", name, addr)
		}
	}
	if f.dbAuth != "password" && f.dbAuth != "entra" {
		return fmt.Errorf("--db-auth %q: want password or entra", f.dbAuth)
	}
	if f.clients < 1 || f.clients > 100000 || f.orders < 1 || f.orders > 1000 {
		return errors.New("--clients wants 1..100000 and --orders 1..1000")
	}
	return nil
}

// runDemo runs `demo run`: the emulator, the sidecar and orderapp, in that
// order because each needs the one before, until Ctrl-C or one of them exits.
func runDemo(ctx context.Context, args []string, out io.Writer) error {
	f, err := parseRun(args)
	if err != nil {
		return err
	}
	dir, err := demoDir(f.dir)
	if err != nil {
		return err
	}
	bins := pod.InDir(f.bin)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go stopWhenOrphaned(ctx, cancel)

	dbFile := filepath.Join(dir, "orders.db")
	socket := filepath.Join(dir, "grpc.sock")
	logs := out // each program's lines, prefixed with its name
	emu, err := startDemoEmulator(ctx, bins, dir, dbFile, out, logs)
	if err != nil {
		return err
	}
	var procs []*pod.Process
	procs = append(procs, emu.Process)
	// A closure, not stopAll(procs, out): it must see the processes
	// started after this point.
	defer func() { stopAll(procs, out) }()

	sidecar, err := startDemoSidecar(ctx, f, bins, emu, dir, socket, out, logs)
	if err != nil {
		return err
	}
	procs = append(procs, sidecar)
	app, err := startDemoApp(ctx, f, bins, dbFile, socket, out, logs)
	if err != nil {
		return err
	}
	procs = append(procs, app)

	if f.dbAuth == "entra" {
		if err := showToken(ctx, socket, out); err != nil {
			return err
		}
	}
	st, err := writeState(dir, f, emu)
	if err != nil {
		return err
	}
	printReady(out, f, st, dbFile, socket)
	return waitForEnd(ctx, out, emu.Process, sidecar, app)
}

// demoDir creates the demo's directory and returns its absolute path: the
// files in it are named in the other programs' flags and configuration.
func demoDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", err
	}
	return abs, nil
}

// startDemoEmulator starts kv-emulator seeded with the order database's
// credentials.
func startDemoEmulator(ctx context.Context, bins pod.Binaries, dir, dbFile string, out, logs io.Writer) (*pod.Emulator, error) {
	fmt.Fprintln(out, "starting kv-emulator (Key Vault + managed identity endpoint on 127.0.0.1, TLS with its own CA)")
	return pod.StartEmulator(ctx, bins.KVEmulator, dir, "127.0.0.1:0", map[string]string{
		// Demo data: sqlite has no login, so only db-name (the file) matters to it.
		"sql-server-name": "localhost",
		"sql-user":        "orders_app",
		"sql-password":    "demo-password-1",
		"sql-database":    dbFile,
	}, logs)
}

// stopAll stops the demo's programs, last started first, so that nothing
// loses what it depends on while it is still running.
func stopAll(procs []*pod.Process, out io.Writer) {
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(10 * time.Second); err != nil {
			fmt.Fprintf(out, "%s stopped: %v\n", procs[i].Name, err)
		}
	}
	fmt.Fprintln(out, "demo stopped; nothing left running")
}

// startDemoSidecar writes secret-proxy's configuration into dir and starts
// it against the emulator, waiting until it is ready.
func startDemoSidecar(ctx context.Context, f runFlags, bins pod.Binaries, emu *pod.Emulator, dir, socket string, out, logs io.Writer) (*pod.Process, error) {
	cfgFile := filepath.Join(dir, "secret-proxy.yaml")
	cfg := sidecarConfig(f, emu.VaultURL, socket)
	if f.dbAuth == "entra" {
		fmt.Fprintln(out, "passwordless (--db-auth entra): the sidecar declares no password and hands orderapp Entra access tokens for "+sqlScope+".\n"+
			"  sqlite has no login: orderapp fetches a token for every new connection through the sidecar and does not use it; against Azure SQL it logs in with it.")
	}
	if err := cfg.WriteFile(cfgFile); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "starting secret-proxy (managed identity via IDENTITY_ENDPOINT, Key Vault over TLS via SSL_CERT_FILE)")
	spec := emu.SidecarSpec(bins.SecretProxy, cfgFile)
	spec.Output = logs
	return startReady(ctx, spec, "http://"+f.opsListen+"/readyz")
}

// sidecarConfig is the demo sidecar's configuration: the database secrets,
// served on the unix socket and on --grpc-listen, refreshed often enough
// that a rotation shows within seconds.
func sidecarConfig(f runFlags, vaultURL, socket string) pod.SidecarConfig {
	cfg := pod.SidecarConfig{
		VaultURL: vaultURL, Secrets: pod.DatabaseSecrets,
		GRPC: f.grpcTCP, Unix: socket, Ops: f.opsListen,
		Interval: 15 * time.Second, MinInterval: 2 * time.Second,
		LogFormat: "text",
	}
	if f.dbAuth == "entra" {
		// Passwordless: no password secret is declared; the app gets
		// access tokens of Azure SQL's scope instead.
		cfg.Secrets = nil
		for _, s := range pod.DatabaseSecrets {
			if s.Name != "db-password" {
				cfg.Secrets = append(cfg.Secrets, s)
			}
		}
		cfg.AccessTokenScopes = []string{sqlScope}
	}
	return cfg
}

// startDemoApp brings the sqlite database up to date and starts orderapp on
// it, taking its credentials from the sidecar on socket.
func startDemoApp(ctx context.Context, f runFlags, bins pod.Binaries, dbFile, socket string, out, logs io.Writer) (*pod.Process, error) {
	appArgs := []string{"--sidecar", "unix://" + socket, "--db-driver", "sqlite", "--db-auth", f.dbAuth}
	if err := migrateDatabase(ctx, f, bins.OrderApp, dbFile, appArgs, out, logs); err != nil {
		return nil, err
	}
	return startReady(ctx, pod.Spec{
		Name: "orderapp", Path: bins.OrderApp,
		Args: append([]string{"serve", "--listen", f.appListen}, appArgs...), Output: logs,
	}, "http://"+f.appListen+"/readyz")
}

// migrateDatabase migrates the database, and seeds it when prepareDatabase
// says it is new. A half-seeded file is removed so the next run seeds it
// again instead of keeping it.
func migrateDatabase(ctx context.Context, f runFlags, orderApp, dbFile string, appArgs []string, out, logs io.Writer) error {
	seed, err := prepareDatabase(dbFile, f, out)
	if err != nil {
		return err
	}
	if !seed {
		return runToEnd(ctx, orderApp, append([]string{"migrate"}, appArgs...), logs)
	}
	fmt.Fprintf(out, "creating the sqlite database %s: migrate, then seed %d clients x %d orders\n", dbFile, f.clients, f.orders)
	for _, sub := range [][]string{
		{"migrate"},
		{"seed", "--clients", strconv.Itoa(f.clients), "--orders-per-client", strconv.Itoa(f.orders)},
	} {
		if err := runToEnd(ctx, orderApp, append(sub, appArgs...), logs); err != nil {
			os.Remove(dbFile)
			return err
		}
	}
	return nil
}

// writeState records where the running demo listens in dir/state.json,
// for `demo rotate` to find it.
func writeState(dir string, f runFlags, emu *pod.Emulator) (state, error) {
	st := state{VaultURL: emu.VaultURL, CAFile: emu.CAFile, AppURL: "http://" + f.appListen, OpsURL: "http://" + f.opsListen}
	raw, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "state.json"), raw, 0o600); err != nil {
		return state{}, err
	}
	return st, nil
}

// printReady tells the user where everything listens and what to try.
func printReady(out io.Writer, f runFlags, st state, dbFile, socket string) {
	fmt.Fprintf(out, `
demo ready
  order API          %[1]s              (orderapp, sqlite %[4]s)
  sidecar ops        %[2]s              (/metrics /livez /readyz)
  sidecar gRPC       unix://%[5]s and %[6]s
  Key Vault emulator %[3]s

Try:
  curl -s '%[1]s/api/v1/clients/1/orders?limit=5'
  curl -s %[2]s/metrics | grep '^secretproxy_'
  make demo-grpc DEMO_GRPC=%[6]s   # grpcurl ListSecrets and GetSecret on the sidecar's gRPC API
  make demo-rotate     # a new version of the database password; the app swaps its pool without a restart
%[7]sCtrl-C stops everything.
`, st.AppURL, st.OpsURL, st.VaultURL, dbFile, socket, f.grpcTCP, entraHint(f, st.OpsURL))
}

// waitForEnd blocks until the demo is stopped (ctx) or one of its programs
// exits; the latter is an error unless a stop follows at once.
func waitForEnd(ctx context.Context, out io.Writer, emu, sidecar, app *pod.Process) error {
	var exited *pod.Process
	select {
	case <-ctx.Done():
	case <-emu.Done():
		exited = emu
	case <-sidecar.Done():
		exited = sidecar
	case <-app.Done():
		exited = app
	}
	if exited != nil {
		// Ctrl-C and `kill -- -PGID` signal every program of the group at
		// once: a child may end a moment before our own signal handler runs.
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
			return fmt.Errorf("%s exited unexpectedly: %v", exited.Name, exited.ExitErr())
		}
	}
	fmt.Fprintln(out, "\nstopping the demo")
	return nil
}

// showToken asks the sidecar for a token as orderapp does, and prints its
// expiry (never the token).
func showToken(ctx context.Context, socket string, out io.Writer) error {
	c, err := client.Dial("unix://" + socket)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := c.AccessToken(cctx, sqlScope)
	if err != nil {
		return fmt.Errorf("GetAccessToken through the sidecar: %w", err)
	}
	fmt.Fprintf(out, "GetAccessToken(%s) through the sidecar: a %d-character token, expires %s (the value is never printed)\n",
		sqlScope, len(tok.Token), tok.Expires.Format(time.RFC3339))
	return nil
}

// entraHint is what to try in the passwordless demo.
func entraHint(f runFlags, opsURL string) string {
	if f.dbAuth != "entra" {
		return ""
	}
	return fmt.Sprintf(`Passwordless (--db-auth entra; sqlite has no login, the tokens are fetched and not used):
  curl -s %[1]s/metrics | grep '^secretproxy_access_token'
  (make demo-rotate changes the password secret, which this mode does not read)
`, opsURL)
}

// prepareDatabase decides what happens to the demo's sqlite file: a new one
// is seeded (true); an existing one is kept and the demo says so, with the
// size flags it ignores and how to reseed; --reseed removes it (and its WAL
// files) first so that a new one is seeded.
func prepareDatabase(dbFile string, f runFlags, out io.Writer) (bool, error) {
	if f.reseed {
		for _, p := range []string{dbFile, dbFile + "-wal", dbFile + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, fmt.Errorf("--reseed: %w", err)
			}
		}
	}
	_, err := os.Stat(dbFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	}
	ignored := ""
	if len(f.sizeFlags) > 0 {
		ignored = "; " + strings.Join(f.sizeFlags, " and ") + " ignored"
	}
	fmt.Fprintf(out, "keeping the demo database %s from an earlier run (its data as seeded then%s);\n"+
		"  to seed a new one: make demo DEMO_FLAGS=\"--reseed --clients N --orders M\" (or make clean)\n", dbFile, ignored)
	return false, nil
}

// stopWhenOrphaned ends the demo when its parent (make) goes away: `make`
// does not pass SIGTERM on to the program it runs.
func stopWhenOrphaned(ctx context.Context, cancel context.CancelFunc) {
	parent := os.Getppid()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != parent {
				cancel()
				return
			}
		}
	}
}

// startReady starts a server of the demo and gives it a minute to be ready.
func startReady(ctx context.Context, spec pod.Spec, readyURL string) (*pod.Process, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return pod.StartReady(ctx, spec, readyURL)
}

func runToEnd(ctx context.Context, bin string, args []string, logs io.Writer) error {
	return pod.Run(ctx, pod.Spec{Name: "orderapp " + args[0], Path: bin, Args: args, Output: logs})
}

func rotations(ctx context.Context, appURL string) (int, error) {
	n, err := pod.Metric(ctx, appURL+"/metrics", `orderapp_credential_rotations_total{result="success"}`)
	return int(n), err
}

func rotate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo rotate", flag.ContinueOnError)
	dir := fs.String("dir", ".demo", "the running demo's directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(*dir, "state.json"))
	if err != nil {
		return fmt.Errorf("no running demo found (start one with 'make demo'): %w", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("read demo state: %w", err)
	}
	emu, err := pod.ConnectEmulator(st.VaultURL, st.CAFile)
	if err != nil {
		return err
	}
	before, err := rotations(ctx, st.AppURL)
	if err != nil {
		return fmt.Errorf("the demo's order API does not answer (is 'make demo' running?): %w", err)
	}
	// A demo value, not a real credential.
	version, err := emu.SetSecret(ctx, "sql-password", fmt.Sprintf("demo-password-%d", time.Now().Unix()))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "set sql-password to a new version %s in the Key Vault emulator\n", version)
	fmt.Fprintln(out, "waiting for secret-proxy's next refresh pass (every 15 s) and the app's pool swap...")
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return errors.New("the app did not report a credential rotation within 45 s; see the demo's logs")
		case <-t.C:
		}
		n, err := rotations(ctx, st.AppURL)
		if ctx.Err() != nil {
			continue // reported by the deadline case above
		}
		if err == nil && n > before {
			fmt.Fprintf(out, "orderapp swapped to the new credentials after %s, without a restart (orderapp_credential_rotations_total{result=\"success\"} %d -> %d)\n",
				time.Since(start).Round(100*time.Millisecond), before, n)
			return nil
		}
		if err != nil && !strings.Contains(err.Error(), "connection refused") {
			return err
		}
	}
}
