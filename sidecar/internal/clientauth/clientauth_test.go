package clientauth

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/clientauth/kubeletvolume"
	"github.com/secretproxy/secretproxy/sidecar/internal/clock"
)

func bearer(tok string) string { return "Bearer " + tok }

// waitGeneration polls (bounded) until the tokens have rotated n times.
func waitGeneration(t *testing.T, tk *Tokens, n int64) {
	t.Helper()
	for range 1000 {
		if tk.Generation() >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("generation %d after 5 s, want %d", tk.Generation(), n)
}

// TestRotationBySymlinkSwap: the poll picks up a swapped token by itself; the
// previous one is accepted for the overlap and refused after it.
func TestRotationBySymlinkSwap(t *testing.T) {
	path, swap := kubeletvolume.New(t, "test-token-1\n")
	clk := clock.NewFake(time.Date(2026, 11, 29, 21, 0, 0, 0, time.UTC))
	var logs bytes.Buffer
	tk, err := New(path, Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() { tk.Run(stop); close(done) }()
	defer func() { close(stop); <-done }()

	if !tk.Allow(bearer("test-token-1")) || tk.Allow(bearer("test-token-2")) || tk.Allow("test-token-1") {
		t.Fatal("before the swap: want only Bearer test-token-1")
	}
	swap("test-token-2\n")
	for i := 0; clk.Pending() == 0; i++ {
		if i == 1000 {
			t.Fatal("the poll never armed its timer")
		}
		time.Sleep(5 * time.Millisecond)
	}
	clk.Advance(PollInterval)
	waitGeneration(t, tk, 1)

	tests := []struct {
		name  string
		after time.Duration
		token string
		want  bool
	}{
		{"new token", 0, "test-token-2", true},
		{"previous token within the overlap", 0, "test-token-1", true},
		{"previous token at the end of the overlap", Overlap - time.Second, "test-token-1", true},
		{"previous token after the overlap", 2 * time.Second, "test-token-1", false},
		{"new token after the overlap", 0, "test-token-2", true},
		{"unknown token", 0, "test-token-3", false},
	}
	for _, tt := range tests {
		clk.Advance(tt.after)
		if got := tk.Allow(bearer(tt.token)); got != tt.want {
			t.Errorf("%s: Allow = %v, want %v", tt.name, got, tt.want)
		}
	}
	if strings.Contains(logs.String(), "test-token") {
		t.Errorf("a token reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "bearer token changed") {
		t.Errorf("no log line for the rotation:\n%s", logs.String())
	}
}

// TestNewTokenAcceptedBeforeThePoll: a caller that already sends the new
// token (its container saw the swap first) is not refused while the poll has
// yet to run: a mismatch re-reads the file first.
func TestNewTokenAcceptedBeforeThePoll(t *testing.T) {
	path, swap := kubeletvolume.New(t, "test-token-1")
	clk := clock.NewFake(time.Date(2026, 11, 29, 21, 0, 0, 0, time.UTC))
	tk, err := New(path, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	swap("test-token-2")
	if !tk.Allow(bearer("test-token-2")) {
		t.Error("the new token was refused before the poll")
	}
	if !tk.Allow(bearer("test-token-1")) {
		t.Error("the previous token was refused within the overlap")
	}
	// Wrong tokens re-read the file at most every reloadOnMismatch.
	clk.Advance(time.Second)
	before := tk.reads.Load()
	for range 50 {
		tk.Allow(bearer("wrong"))
	}
	if got := tk.reads.Load() - before; got > 1 {
		t.Errorf("50 wrong tokens read the file %d times, want at most 1", got)
	}
}

// TestBadFileKeepsToken: a token file that turns empty or vanishes keeps the
// token in force rather than locking every caller out.
func TestBadFileKeepsToken(t *testing.T) {
	path, swap := kubeletvolume.New(t, "test-token-1")
	clk := clock.NewFake(time.Date(2026, 11, 29, 21, 0, 0, 0, time.UTC))
	tk, err := New(path, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	swap("  \n")
	clk.Advance(time.Second)
	if err := tk.Reload(); err == nil {
		t.Error("Reload of an empty file: no error")
	}
	if !tk.Allow(bearer("test-token-1")) {
		t.Error("an empty file replaced the token")
	}
	if _, err := New(filepath.Join(t.TempDir(), "absent"), Options{}); err == nil {
		t.Error("New with a missing file: no error")
	}
}
