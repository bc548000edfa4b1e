package source_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/secretproxy/secretproxy/sidecar"

// pkg is the part of `go list -json` this test reads.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T, paths ...string) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Deps"}, paths...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	got := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		got[p.ImportPath] = p
	}
	return got
}

// TestCoreNamesNoBackend asserts the import graph of the seam: the core (the
// cache and the gRPC API) imports no backend package and depends on no
// backend SDK, even through another package; the seam itself imports the
// standard library only. A backend's configuration section (kvconfig) may
// reach the core only through the configuration package, which names every
// section of the file.
func TestCoreNamesNoBackend(t *testing.T) {
	core := []string{module + "/internal/cache", module + "/internal/grpcapi"}
	pkgs := list(t, append(core, module+"/internal/source")...)
	for _, path := range core {
		p, ok := pkgs[path]
		if !ok {
			t.Fatalf("go list did not report %s", path)
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/internal/keyvault") {
				t.Errorf("%s imports the backend package %s: speak package source instead", path, imp)
			}
		}
		for _, dep := range p.Deps {
			if dep == module+"/internal/keyvault" || strings.HasPrefix(dep, "github.com/Azure/") {
				t.Errorf("%s depends on %s: the core must not reach a backend or its SDK", path, dep)
			}
		}
	}
	for _, imp := range pkgs[module+"/internal/source"].Imports {
		if strings.Contains(imp, ".") {
			t.Errorf("package source imports %s: the seam stays on the standard library", imp)
		}
	}
}
