package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareDatabase checks what `make demo` does with the sqlite file of an
// earlier run: a missing file is seeded; an existing one is kept and the demo
// says so, naming the --clients/--orders it ignores and how to reseed;
// --reseed removes it (and its WAL files) so that a new one is seeded.
func TestPrepareDatabase(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		existing bool
		wantSeed bool
		want     []string // in the output
		notWant  []string
	}{
		{name: "new database", args: nil, wantSeed: true, notWant: []string{"keeping"}},
		{name: "kept, defaults", args: nil, existing: true, wantSeed: false,
			want: []string{"keeping the demo database", "orders.db", `make demo DEMO_FLAGS="--reseed`}, notWant: []string{"ignored"}},
		{name: "kept, sizes given", args: []string{"--clients", "50", "--orders", "7"}, existing: true, wantSeed: false,
			want: []string{"--clients 50 and --orders 7 ignored", "--reseed"}},
		{name: "reseed", args: []string{"--reseed", "--clients", "50"}, existing: true, wantSeed: true, notWant: []string{"keeping"}},
		{name: "reseed without a database", args: []string{"--reseed"}, wantSeed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseRun(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(t.TempDir(), "orders.db")
			if tc.existing {
				for _, p := range []string{db, db + "-wal", db + "-shm"} {
					if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			var out strings.Builder
			seed, err := prepareDatabase(db, f, &out)
			if err != nil {
				t.Fatal(err)
			}
			if seed != tc.wantSeed {
				t.Errorf("seed = %v, want %v", seed, tc.wantSeed)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out.String(), nw) {
					t.Errorf("output holds %q:\n%s", nw, out.String())
				}
			}
			_, statErr := os.Stat(db)
			if kept := statErr == nil; kept != (tc.existing && !tc.wantSeed) {
				t.Errorf("database file kept = %v, want %v", kept, tc.existing && !tc.wantSeed)
			}
			if tc.wantSeed {
				for _, p := range []string{db + "-wal", db + "-shm"} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s left beside a database about to be seeded", filepath.Base(p))
					}
				}
			}
		})
	}
}

// TestParseRunFlags pins the demo's address flags (the README lists them)
// and refuses addresses that are not loopback.
func TestParseRunFlags(t *testing.T) {
	f, err := parseRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.appListen != "127.0.0.1:8080" || f.opsListen != "127.0.0.1:9090" || f.grpcTCP != "127.0.0.1:50051" {
		t.Errorf("defaults: app %s ops %s grpc %s", f.appListen, f.opsListen, f.grpcTCP)
	}
	for _, args := range [][]string{
		{"--grpc-listen", "0.0.0.0:50051"},
		{"--app-listen", "8080"},
		{"--clients", "0"},
		{"--db-auth", "kerberos"},
	} {
		if _, err := parseRun(args); err == nil {
			t.Errorf("parseRun(%q) accepted", args)
		}
	}
}

// TestReadmeListsEveryDemoFlag keeps the README's demo section in step with
// `demo run`: every flag a user can pass in DEMO_FLAGS (all but --bin and
// --dir, which the Makefile sets) is listed with its default, and the grpcurl
// command names the proto file, since the sidecar's reflection is off.
func TestReadmeListsEveryDemoFlag(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	var f runFlags
	runFlagSet(&f).VisitAll(func(fl *flag.Flag) {
		if fl.Name == "bin" || fl.Name == "dir" {
			return
		}
		if !strings.Contains(readme, "`--"+fl.Name+"`") {
			t.Errorf("README.md does not list the demo flag --%s", fl.Name)
		}
		if fl.DefValue != "false" && !strings.Contains(readme, "`"+fl.DefValue+"`") {
			t.Errorf("README.md does not give --%s's default %s", fl.Name, fl.DefValue)
		}
	})
	for _, want := range []string{"-proto secretproxy/v1/secret_service.proto", "make demo-grpc", "secretproxy.v1.SecretService/GetSecret"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
