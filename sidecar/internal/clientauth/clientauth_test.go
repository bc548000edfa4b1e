package clientauth

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/clientauth/kubeletvolume"
)

func bearer(tok string) string { return "Bearer " + tok }

// The tests run in testing/synctest bubbles: time.Sleep moves the bubble's
// clock (no real sleep) and synctest.Wait returns once the poll waits again.

// TestRotationBySymlinkSwap: the poll picks up a swapped token by itself; the
// previous one is accepted for the overlap and refused after it.
func TestRotationBySymlinkSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path, swap := kubeletvolume.New(t, "test-token-1\n")
		var logs bytes.Buffer
		tk, err := New(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
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
		synctest.Wait() // the poll waits on its timer
		if g := tk.Generation(); g != 0 {
			t.Fatalf("generation %d before the poll, want 0", g)
		}
		time.Sleep(pollInterval)
		synctest.Wait()
		if g := tk.Generation(); g != 1 {
			t.Fatalf("generation %d after one poll, want 1", g)
		}

		tests := []struct {
			name  string
			after time.Duration
			token string
			want  bool
		}{
			{"new token", 0, "test-token-2", true},
			{"previous token within the overlap", 0, "test-token-1", true},
			{"previous token at the end of the overlap", overlap - time.Second, "test-token-1", true},
			{"previous token after the overlap", 2 * time.Second, "test-token-1", false},
			{"new token after the overlap", 0, "test-token-2", true},
			{"unknown token", 0, "test-token-3", false},
		}
		for _, tt := range tests {
			time.Sleep(tt.after)
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
	})
}

// TestNewTokenAcceptedBeforeThePoll: a caller that already sends the new
// token (its container saw the swap first) is not refused while the poll has
// yet to run: a mismatch re-reads the file first.
func TestNewTokenAcceptedBeforeThePoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path, swap := kubeletvolume.New(t, "test-token-1")
		tk, err := New(path, Options{})
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
		time.Sleep(time.Second)
		before := tk.reads.Load()
		for range 50 {
			tk.Allow(bearer("wrong"))
		}
		if got := tk.reads.Load() - before; got > 1 {
			t.Errorf("50 wrong tokens read the file %d times, want at most 1", got)
		}
	})
}

// TestBadFileKeepsToken: a token file that turns empty or vanishes keeps the
// token in force rather than locking every caller out.
func TestBadFileKeepsToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path, swap := kubeletvolume.New(t, "test-token-1")
		tk, err := New(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		swap("  \n")
		time.Sleep(time.Second)
		if err := tk.Reload(); err == nil {
			t.Error("Reload of an empty file: no error")
		}
		if !tk.Allow(bearer("test-token-1")) {
			t.Error("an empty file replaced the token")
		}
		if _, err := New(filepath.Join(t.TempDir(), "absent"), Options{}); err == nil {
			t.Error("New with a missing file: no error")
		}
	})
}
