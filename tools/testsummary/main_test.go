package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarise feeds recorded `go test -json` streams and checks what a
// reader sees: package lines kept, skips with their reason, failures in
// full, the summary line, and the failed flag.
func TestSummarise(t *testing.T) {
	const (
		pass = `{"Action":"start","Package":"m/a"}
{"Action":"run","Package":"m/a","Test":"TestOK"}
{"Action":"output","Package":"m/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"m/a","Test":"TestOK","Output":"    a_test.go:9: chatter a passing test logs\n"}
{"Action":"output","Package":"m/a","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}
{"Action":"pass","Package":"m/a","Test":"TestOK"}
{"Action":"output","Package":"m/a","Output":"PASS\n"}
{"Action":"output","Package":"m/a","Output":"ok  \tm/a\t0.01s\n"}
{"Action":"pass","Package":"m/a"}
`
		skip = `{"Action":"run","Package":"m/b","Test":"TestDB"}
{"Action":"output","Package":"m/b","Test":"TestDB","Output":"=== RUN   TestDB\n"}
{"Action":"output","Package":"m/b","Test":"TestDB","Output":"    db_test.go:20: PostgreSQL not installed: run make test-deps\n"}
{"Action":"output","Package":"m/b","Test":"TestDB","Output":"--- SKIP: TestDB (0.00s)\n"}
{"Action":"skip","Package":"m/b","Test":"TestDB"}
{"Action":"output","Package":"m/b","Output":"ok  \tm/b\t0.02s\n"}
{"Action":"pass","Package":"m/b"}
`
		fail = `{"Action":"run","Package":"m/c","Test":"TestBad"}
{"Action":"output","Package":"m/c","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"m/c","Test":"TestBad","Output":"    c_test.go:7: got 1, want 2\n"}
{"Action":"output","Package":"m/c","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"m/c","Test":"TestBad"}
{"Action":"output","Package":"m/c","Output":"FAIL\n"}
{"Action":"output","Package":"m/c","Output":"FAIL\tm/c\t0.01s\n"}
{"Action":"fail","Package":"m/c"}
`
		build = `{"ImportPath":"m/d [m/d.test]","Action":"build-output","Output":"# m/d [m/d.test]\n"}
{"ImportPath":"m/d [m/d.test]","Action":"build-output","Output":"./d_test.go:3:2: undefined: x\n"}
{"ImportPath":"m/d [m/d.test]","Action":"build-fail"}
{"Action":"output","Package":"m/d","Output":"FAIL\tm/d [build failed]\n"}
{"Action":"fail","Package":"m/d","FailedBuild":"m/d [m/d.test]"}
`
		panicked = `{"Action":"run","Package":"m/e","Test":"TestHang"}
{"Action":"output","Package":"m/e","Test":"TestHang","Output":"=== RUN   TestHang\n"}
{"Action":"output","Package":"m/e","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"m/e","Output":"FAIL\tm/e\t1.01s\n"}
{"Action":"fail","Package":"m/e"}
`
	)
	for _, tc := range []struct {
		name       string
		in         string
		wantFailed bool
		want       []string // substrings, in order
		notWant    []string
	}{
		{"pass", pass, false, []string{"ok  \tm/a\t0.01s\n", "x: 1 passed, 0 failed, 0 skipped\n"}, []string{"chatter", "PASS\n", "=== RUN"}},
		{"skip shows its reason", pass + skip, false,
			[]string{"SKIP m/b TestDB\n    db_test.go:20: PostgreSQL not installed: run make test-deps\n", "ok  \tm/b", "x: 1 passed, 0 failed, 1 skipped\n"},
			[]string{"--- SKIP"}},
		{"failure in full", pass + fail, true,
			[]string{"FAIL m/c TestBad\n", "c_test.go:7: got 1, want 2", "--- FAIL: TestBad", "FAIL\tm/c\t0.01s\n", "x: 1 passed, 1 failed, 0 skipped (1 package(s) failed)\n"},
			nil},
		{"build failure", build, true,
			[]string{"./d_test.go:3:2: undefined: x\n", "FAIL\tm/d [build failed]\n", "x: 0 passed, 0 failed, 0 skipped (1 package(s) failed)\n"},
			nil},
		{"timeout leaves a test unfinished", panicked, true,
			[]string{"UNFINISHED m/e TestHang (its package failed)\n", "panic: test timed out after 1s", "(1 package(s) failed)"},
			nil},
		{"text that is not JSON passes through", "go: cannot find main module\n", false,
			[]string{"go: cannot find main module\n", "x: 0 passed, 0 failed, 0 skipped\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			failed, err := summarise(strings.NewReader(tc.in), &out, "x")
			if err != nil {
				t.Fatal(err)
			}
			if failed != tc.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tc.wantFailed)
			}
			got := out.String()
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("output lacks %q (in order); output:\n%s", w, got)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, nw := range tc.notWant {
				if strings.Contains(got, nw) {
					t.Errorf("output holds %q; output:\n%s", nw, got)
				}
			}
		})
	}
}

// TestRealGoTest runs `go test -json` on a small module with a passing, a
// skipped and a failing test, through the summariser, so a change in go
// test's JSON cannot go unnoticed.
func TestRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a test binary; skipped under -short")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/sample\n\ngo 1.26\n",
		"s_test.go": `package sample

import "testing"

func TestPass(t *testing.T) {}
func TestSkip(t *testing.T) { t.Skip("needs a database: none here") }
func TestFail(t *testing.T) { t.Error("two plus two is not five") }
func TestSub(t *testing.T) {
	t.Run("inner", func(t *testing.T) {})
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), "go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	raw, err := cmd.Output()
	if err == nil {
		t.Fatal("go test passed; the sample's failing test should fail it")
	}
	var out strings.Builder
	failed, err := summarise(strings.NewReader(string(raw)), &out, "sample")
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !failed {
		t.Errorf("failed = false, want true; output:\n%s", got)
	}
	for _, w := range []string{
		"SKIP example.com/sample TestSkip\n    s_test.go:6: needs a database: none here\n",
		"FAIL example.com/sample TestFail\n",
		"two plus two is not five",
		"FAIL\texample.com/sample\t",
		"sample: 3 passed, 1 failed, 1 skipped (1 package(s) failed)\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q; output:\n%s", w, got)
		}
	}
}
