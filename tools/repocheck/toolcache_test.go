package repocheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sampleTool writes a tiny Go program module and returns its directory.
func sampleTool(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":  "module example.com/sampletool\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"sampletool ok\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// toolcacheGet runs toolcache_get from tools/scripts/toolcache.sh, the
// function build-tool.sh uses, with the cache under cacheHome.
func toolcacheGet(t *testing.T, cacheHome, modDir string) *exec.Cmd {
	t.Helper()
	lib := filepath.Join(repoRoot(t), "tools", "scripts", "toolcache.sh")
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c",
		`. "$1"; toolcache_get sampletool-v1 sampletool "$2" "-s -w" .`, "bash", lib, modDir)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheHome)
	return cmd
}

// TestToolCacheConcurrentBuilds runs two builds of one cache entry at once, as
// two checkouts running `make test` do: both succeed and print the same path,
// the binary works, the second build waited for the first and reused its
// binary (one "building" line in all), and no temporary file is left behind.
func TestToolCacheConcurrentBuilds(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock (util-linux) is not installed: the lock is skipped, only the atomic rename is in force")
	}
	cacheHome := t.TempDir()
	mod := sampleTool(t)
	// A leftover of the old fixed temporary name must not matter.
	entry := filepath.Join(cacheHome, "secret-proxy", "sampletool-v1")
	if err := os.MkdirAll(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, "sampletool.tmp"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}

	type result struct {
		stdout, stderr string
		err            error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := toolcacheGet(t, cacheHome, mod)
			var so, se strings.Builder
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			results[i] = result{so.String(), se.String(), err}
		}()
	}
	wg.Wait()
	want := filepath.Join(entry, "sampletool") + "\n"
	builds := 0
	for i, r := range results {
		if r.err != nil {
			t.Errorf("build %d: %v\n%s", i, r.err, r.stderr)
		}
		if r.stdout != want {
			t.Errorf("build %d printed %q, want %q", i, r.stdout, want)
		}
		builds += strings.Count(r.stderr, "toolcache: building")
	}
	if builds != 1 {
		t.Errorf("%d builds ran, want 1 (the second waits for the lock and reuses the binary)", builds)
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(entry, "sampletool")).Output()
	if err != nil || string(out) != "sampletool ok\n" {
		t.Errorf("cached binary: %q, %v; want it to run", out, err)
	}
	entries, err := os.ReadDir(entry)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".build.") {
			t.Errorf("temporary directory %s left behind", e.Name())
		}
	}

	// A third run finds the entry cached and builds nothing.
	cmd := toolcacheGet(t, cacheHome, mod)
	var se strings.Builder
	cmd.Stderr = &se
	if out, err := cmd.Output(); err != nil || string(out) != want {
		t.Errorf("cached run: %q, %v\n%s", out, err, se.String())
	}
	if !strings.Contains(se.String(), "cached in") {
		t.Errorf("cached run said %q, want it to report the cache", se.String())
	}
}

// TestToolCacheFailedBuildLeavesNothing checks that a build that fails leaves
// neither a binary nor a temporary directory, and fails the caller.
func TestToolCacheFailedBuildLeavesNothing(t *testing.T) {
	t.Parallel()
	cacheHome := t.TempDir()
	mod := sampleTool(t)
	if err := os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := toolcacheGet(t, cacheHome, mod)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a build that does not compile succeeded:\n%s", out)
	}
	entry := filepath.Join(cacheHome, "secret-proxy", "sampletool-v1")
	entries, err := os.ReadDir(entry)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Errorf("a failed build left %s in the cache", e.Name())
		}
	}
}

// TestScriptsWriteTheCacheThroughToolcache guards against a script writing a
// cache entry through a fixed temporary name again: every script that
// builds into the cache uses toolcache.sh.
func TestScriptsWriteTheCacheThroughToolcache(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "tools", "scripts")
	for _, name := range []string{"build-tool.sh", "build-kube-apiserver.sh"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		if !strings.Contains(s, "toolcache.sh") {
			t.Errorf("%s does not use toolcache.sh", name)
		}
		for _, bad := range []string{".tmp\"", "go build -o"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s writes the cache directly (%s): use toolcache_go_build", name, fmt.Sprintf("%q", bad))
			}
		}
	}
}
