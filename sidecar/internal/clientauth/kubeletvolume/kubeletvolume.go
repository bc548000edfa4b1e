// Package kubeletvolume lays out a file the way the kubelet mounts a Secret
// or ConfigMap key, and swaps its content the way the kubelet updates it, for
// tests of code that follows such a file.
package kubeletvolume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// New lays out a Secret volume as the kubelet does: the data in a
// timestamped directory, "..data" a symlink to it, and each key a symlink
// through "..data". It returns the key's path and a function that swaps in a
// new content atomically, the way the kubelet updates a mounted Secret.
func New(t testing.TB, token string) (path string, swap func(token string)) {
	t.Helper()
	dir := t.TempDir()
	gen := 0
	write := func(token string) string {
		gen++
		ts := filepath.Join(dir, "..2026_11_29_21_00_00."+strings.Repeat("1", gen))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ts, "token"), []byte(token), 0o400); err != nil {
			t.Fatal(err)
		}
		return filepath.Base(ts)
	}
	first := write(token)
	if err := os.Symlink(first, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	old := first
	swap = func(token string) {
		next := write(token)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(next, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
		old = next
	}
	return filepath.Join(dir, "token"), swap
}
