package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the top of the repository this module sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// trackedFiles lists the files git tracks, relative to root.
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v (this test needs a git checkout)", root, err)
	}
	var files []string
	for f := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// outsidePointers are the ways a text can point at documents that live
// outside the repository (the design brief and tooling notes kept next to
// the first checkout). Written split so that this file does not match itself.
var outsidePointers = []string{
	"../" + "shared",
	"shared/" + "DESIGN",
	"DESIGN" + ".md",
	"TOOLING" + ".md",
	"STYLE" + ".md",
	"/work/" + "shared",
}

// pointersIn returns the outside pointers a line holds.
func pointersIn(line string) []string {
	var found []string
	for _, p := range outsidePointers {
		if strings.Contains(line, p) {
			found = append(found, p)
		}
	}
	return found
}

// markdownLink finds a Markdown link's target.
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// linkProblem says what is wrong with a relative link from file (relative to
// root) to target, or "" when it names a path inside the repository that
// exists. URLs and in-page anchors are not checked.
func linkProblem(root, file, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	target, _, _ = strings.Cut(target, "#")
	abs := filepath.Clean(filepath.Join(root, filepath.Dir(file), target))
	if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "is outside the repository"
	}
	if _, err := os.Stat(abs); err != nil {
		return "does not exist in the repository"
	}
	return ""
}

// TestNoLinkLeavesTheRepository fails when a tracked file names a document
// outside the repository, or when a relative Markdown link points at a path
// that is not a file or directory inside it. A fresh clone must hold every
// contract it cites (docs/reference/).
func TestNoLinkLeavesTheRepository(t *testing.T) {
	root := repoRoot(t)
	files := trackedFiles(t, root)
	if len(files) < 50 {
		t.Fatalf("git ls-files listed %d files; want the whole repository", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "go.sum") || strings.HasSuffix(f, ".pb.go") {
			continue
		}
		path := filepath.Join(root, f)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			continue // a symlink (the chart's dependency link) or a file deleted in the work tree
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		if bytes.IndexByte(data, 0) >= 0 {
			continue // binary
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, p := range pointersIn(line) {
				t.Errorf("%s:%d points outside the repository (%q): point at docs/reference/ instead", f, i+1, p)
			}
		}
		if !strings.HasSuffix(f, ".md") {
			continue
		}
		for _, m := range markdownLink.FindAllStringSubmatch(string(data), -1) {
			if msg := linkProblem(root, f, m[1]); msg != "" {
				t.Errorf("%s links to %s, which %s", f, m[1], msg)
			}
		}
	}
}

// TestCheckersCatchOutsidePointers keeps the check honest on made-up input:
// every pattern is caught, and links out of the repository or to missing
// files are reported while links inside it are not.
func TestCheckersCatchOutsidePointers(t *testing.T) {
	for _, p := range outsidePointers {
		if got := pointersIn("see " + p + " for the contract"); len(got) == 0 {
			t.Errorf("pointersIn misses %q", p)
		}
	}
	if got := pointersIn("see docs/reference/api.md"); len(got) != 0 {
		t.Errorf("pointersIn(docs/reference/api.md) = %q, want none", got)
	}
	root := t.TempDir()
	for _, f := range []string{"README.md", "docs/a.md", "docs/reference/api.md"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file, target string
		want         string
	}{
		{"docs/a.md", "../README.md", ""},
		{"docs/a.md", "reference/api.md#status-codes", ""},
		{"docs/a.md", "reference/", ""},
		{"docs/a.md", "https://learn.microsoft.com/azure/", ""},
		{"docs/a.md", "../../outside/x.md", "is outside the repository"},
		{"README.md", "../x.md", "is outside the repository"},
		{"docs/a.md", "reference/gone.md", "does not exist in the repository"},
	} {
		if got := linkProblem(root, tc.file, tc.target); got != tc.want {
			t.Errorf("linkProblem(%s -> %s) = %q, want %q", tc.file, tc.target, got, tc.want)
		}
	}
	lines := markdownLink.FindAllStringSubmatch("a [b](c.md) and [d](../e.md#f)", -1)
	if len(lines) != 2 || lines[0][1] != "c.md" || lines[1][1] != "../e.md#f" {
		t.Errorf("markdownLink found %q", lines)
	}
}
