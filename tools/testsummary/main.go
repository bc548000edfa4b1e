// Command testsummary reads `go test -json` on standard input and prints what
// a reader of a CI log needs, without -v's noise:
//
//   - go test's own package lines (ok, FAIL, "no test files") and build errors, as they come;
//   - every failed test with its whole output;
//   - every skipped test with its reason (go test without -v hides skips);
//   - a last line "LABEL: N passed, N failed, N skipped" (subtests counted).
//
// It exits 1 when a test or package failed, so `go test -json ... | testsummary`
// under `set -o pipefail` fails on either side.
//
//	go test -json -race ./... | testsummary -label sidecar
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	label := flag.String("label", "go test", "name printed on the summary line (the module)")
	flag.Parse()
	failed, err := summarise(os.Stdin, os.Stdout, *label)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (test2json's TestEvent, or a
// BuildEvent, which has ImportPath instead of Package).
type event struct {
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Output      string
	FailedBuild string
}

type testKey struct{ pkg, test string }

// counts is what the summary line reports.
type counts struct{ passed, failed, skipped, failedPackages int }

// summarise copies the useful part of the stream in to out and reports
// whether anything failed. Lines that are not JSON (go's early errors) are
// copied as they are.
func summarise(in io.Reader, out io.Writer, label string) (failed bool, err error) {
	w := bufio.NewWriter(out)
	defer func() {
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
	}()
	var c counts
	running := map[testKey]*strings.Builder{}
	failedPkgs := map[string]bool{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := testKey{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			io.WriteString(w, e.Output)
		case e.Test == "":
			switch e.Action {
			case "output":
				// "PASS" and "FAIL" alone repeat what the package line says.
				if e.Output != "PASS\n" && e.Output != "FAIL\n" {
					io.WriteString(w, e.Output)
				}
			case "fail":
				failedPkgs[e.Package] = true
			}
		case e.Action == "output":
			b := running[k]
			if b == nil {
				b = &strings.Builder{}
				running[k] = b
			}
			b.WriteString(e.Output)
		case e.Action == "pass":
			c.passed++
			delete(running, k)
		case e.Action == "skip":
			c.skipped++
			fmt.Fprintf(w, "SKIP %s %s\n", e.Package, e.Test)
			writeIndented(w, reason(running[k]))
			delete(running, k)
		case e.Action == "fail":
			c.failed++
			fmt.Fprintf(w, "FAIL %s %s\n", e.Package, e.Test)
			writeIndented(w, outputOf(running[k]))
			delete(running, k)
		}
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("read go test output: %w", err)
	}
	// A test binary that panicked or timed out leaves tests without an end:
	// their output is the only clue, so print it.
	var unfinished []testKey
	for k := range running {
		if failedPkgs[k.pkg] {
			unfinished = append(unfinished, k)
		}
	}
	sort.Slice(unfinished, func(i, j int) bool {
		return unfinished[i].pkg+" "+unfinished[i].test < unfinished[j].pkg+" "+unfinished[j].test
	})
	for _, k := range unfinished {
		fmt.Fprintf(w, "UNFINISHED %s %s (its package failed)\n", k.pkg, k.test)
		writeIndented(w, outputOf(running[k]))
	}
	c.failedPackages = len(failedPkgs)
	fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped", label, c.passed, c.failed, c.skipped)
	if c.failedPackages > 0 {
		fmt.Fprintf(w, " (%d package(s) failed)", c.failedPackages)
	}
	fmt.Fprintln(w)
	return c.failed > 0 || c.failedPackages > 0, nil
}

// outputOf is a test's whole output.
func outputOf(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}

// reason is a skipped test's output without the === RUN/PAUSE/CONT and
// --- SKIP framing lines: what t.Skip said.
func reason(b *strings.Builder) string {
	var keep []string
	for l := range strings.SplitSeq(outputOf(b), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return "(no reason given)\n"
	}
	return strings.Join(keep, "\n") + "\n"
}

// writeIndented writes s with every line indented, so a test's output stands
// apart from the package lines around it.
func writeIndented(w io.Writer, s string) {
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}
