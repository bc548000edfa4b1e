package problem_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

func TestList(t *testing.T) {
	var l problem.List
	l.Add("vault.url", "required: %s", "the Key Vault URL")
	l = append(l, problem.Problem{Message: "more than one YAML document"})
	want := []string{"vault.url: required: the Key Vault URL", "more than one YAML document"}
	for i, p := range l {
		if p.String() != want[i] {
			t.Errorf("problem %d = %q, want %q", i, p.String(), want[i])
		}
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
