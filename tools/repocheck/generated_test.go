package repocheck

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// generatedTree copies what tools/scripts/check-generated.sh reads (the same list as its
// inputs) into a fresh directory shaped like the repository, so a test can dirty it.
func generatedTree(t *testing.T) string {
	t.Helper()
	src := repoRoot(t)
	dst := t.TempDir()
	for _, dir := range []string{"proto", "clients/python/secretproxy/v1", "tools/pins/buf", "tools/pins/protoc-gen", "tools/scripts"} {
		if err := os.CopyFS(filepath.Join(dst, dir), os.DirFS(filepath.Join(src, dir))); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tree returns the sha256 of every file under root, by path relative to root.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		sums[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// treeChanges lists the paths added, removed or changed between two tree sums.
func treeChanges(before, after map[string]string) []string {
	var changed []string
	for p := range maps.Keys(before) {
		if after[p] != before[p] {
			changed = append(changed, p)
		}
	}
	for p := range maps.Keys(after) {
		if _, ok := before[p]; !ok {
			changed = append(changed, p+" (new)")
		}
	}
	slices.Sort(changed)
	return changed
}

// checkGenerated runs the tree's own check-generated.sh and returns its output and exit code.
func checkGenerated(t *testing.T, root string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "tools", "scripts", "check-generated.sh"))
	// CI=true would turn missing Python generators into a failure of the clean run; the
	// case that needs them says so itself.
	cmd.Env = append(os.Environ(), "CI=", "GOFLAGS=-modcacherw")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("run check-generated.sh: %v\n%s", err, out)
		return "", -1
	}
}

func writeRepoFile(t *testing.T, root, rel, content string, appendTo bool) {
	t.Helper()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(root, rel), flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckGenerated: `make check-generated` passes on the committed code and writes nothing in
// the tree; a generated file edited by hand, a stale generated file and a missing one are each
// reported with the file, the diff and what to do, and the tree is left exactly as it was (the
// check generates in a temporary copy; `make generate` stays the only writer).
func TestCheckGenerated(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		root := generatedTree(t)
		before := tree(t, root)
		out, code := checkGenerated(t, root)
		if code != 0 || !strings.Contains(out, "generated code matches a fresh 'make generate'") {
			t.Fatalf("exit %d on the committed generated code, want 0:\n%s", code, out)
		}
		if changed := treeChanges(before, tree(t, root)); len(changed) > 0 {
			t.Errorf("check-generated.sh changed the tree: %v", changed)
		}
	})
	_, pythonErr := os.Stat("/usr/bin/grpc_python_plugin")
	tests := []struct {
		name   string
		python bool // needs Debian's Python generators (without them the Python code is not regenerated)
		dirty  func(t *testing.T, root string)
		want   []string
	}{
		{
			name: "edited Go file",
			dirty: func(t *testing.T, root string) {
				writeRepoFile(t, root, "proto/secretproxy/v1/secret_service.pb.go", "// edited by hand\n", true)
			},
			want: []string{"  proto/secretproxy/v1/secret_service.pb.go\n", "-// edited by hand"},
		},
		{
			name: "stale generated file",
			dirty: func(t *testing.T, root string) {
				writeRepoFile(t, root, "proto/secretproxy/v1/removed.pb.go", "package secretproxyv1\n", false)
			},
			want: []string{"proto/secretproxy/v1/removed.pb.go (not generated: stale)", "-package secretproxyv1"},
		},
		{
			name:   "missing Python file",
			python: true,
			dirty: func(t *testing.T, root string) {
				if err := os.Remove(filepath.Join(root, "clients/python/secretproxy/v1/secret_service_pb2_grpc.py")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"clients/python/secretproxy/v1/secret_service_pb2_grpc.py (missing from the working tree)", "+class SecretServiceStub"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.python && pythonErr != nil {
				t.Skip("Debian's grpc_python_plugin is not installed (tools/scripts/install-test-deps.sh python): the Python code is not regenerated")
			}
			t.Parallel()
			root := generatedTree(t)
			tt.dirty(t, root)
			before := tree(t, root)
			out, code := checkGenerated(t, root)
			if code != 1 {
				t.Fatalf("exit %d with a dirty generated file, want 1:\n%s", code, out)
			}
			for _, w := range append(tt.want, "GENERATED CODE IS OUT OF DATE", "run 'make generate' and commit the result") {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			if changed := treeChanges(before, tree(t, root)); len(changed) > 0 {
				t.Errorf("check-generated.sh changed the tree: %v", changed)
			}
		})
	}
}
