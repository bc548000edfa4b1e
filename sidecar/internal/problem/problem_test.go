package problem_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

func TestListError(t *testing.T) {
	var l problem.List
	l.Add("vault.url", "required: %s", "the Key Vault URL")
	l = append(l, problem.Problem{Message: "more than one YAML document"})
	want := "invalid configuration:\n  vault.url: required: the Key Vault URL\n  more than one YAML document"
	if got := l.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !l.Has("vault.url") || l.Has("auth.mode") {
		t.Errorf("Has: vault.url %v (want true), auth.mode %v (want false)", l.Has("vault.url"), l.Has("auth.mode"))
	}
}

func TestPathErr(t *testing.T) {
	_, err := os.Stat(filepath.Join(t.TempDir(), "absent"))
	got := problem.PathErr(err)
	if !errors.Is(got, fs.ErrNotExist) || got.Error() != "no such file or directory" {
		t.Errorf("PathErr = %q, want the cause without the path", got)
	}
	other := errors.New("other")
	if problem.PathErr(other) != other {
		t.Error("PathErr must return other errors unchanged")
	}
}
