package chartcheck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestWriteFileAtomic checks the cache writes of the generated schemas: many
// writers of one path at once (two checkouts generating the same schemas)
// all succeed, a reader only ever sees one writer's whole content, and no
// temporary file is left behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deployment-apps-v1.json")
	contents := make([][]byte, 8)
	for i := range contents {
		// Large enough that a plain write is not one syscall's worth.
		contents[i] = bytes.Repeat([]byte(fmt.Sprintf("%d", i)), 1<<20)
	}
	if err := writeFileAtomic(path, contents[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(contents)*4)
	done := make(chan struct{})
	var torn []int
	go func() {
		defer close(done)
		for range 200 {
			got, err := os.ReadFile(path)
			if err != nil {
				errs <- err
				return
			}
			if len(got) != 1<<20 || !bytes.Equal(got, bytes.Repeat(got[:1], 1<<20)) {
				torn = append(torn, len(got))
			}
		}
	}()
	for round := range 4 {
		for i, c := range contents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := writeFileAtomic(path, c, 0o644); err != nil {
					errs <- fmt.Errorf("round %d writer %d: %w", round, i, err)
				}
			}()
		}
	}
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(torn) > 0 {
		t.Errorf("a reader saw %d partial or mixed files (first size %d bytes, want %d)", len(torn), torn[0], 1<<20)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "deployment-apps-v1.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only the schema (no temporary files)", names)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}
