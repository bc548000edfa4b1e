package chartcheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// chartDecides are the sidecar settings the chart writes on purpose, with why; every
// other key of the rendered config.yaml must be absent (the sidecar's own default applies)
// unless the values set it.
var chartDecides = map[string]string{
	"vault.url":   "the vault the values name (required)",
	"auth.mode":   "workload-identity, the chart's choice for AKS (the binary's is default)",
	"secrets":     "the secrets the values declare",
	"listen.grpc": `"": TCP off, the application uses the socket`,
	"listen.unix": "the socket in the shared emptyDir (socketDir)",
	// listen.ops is written because the chart's probes and containerPort use the same
	// port (opsPort); it must still equal the binary's default, so it is not listed here.
}

// chartWrites are the keys the chart writes with the values left at their defaults:
// chartDecides and listen.ops.
var chartWrites = []string{"auth.mode", "listen.grpc", "listen.ops", "listen.unix", "secrets", "vault.url"}

// TestChartDefaultsAreTheBinarys renders charts/orderapp with only the required values
// (ci/default-values.yaml), so that every library default is in play, loads the sidecar's
// config.yaml with the sidecar's own loader (sidecar/internal/config, through
// `go run ./internal/config/effective`), and compares every setting with config.Default():
// a setting the chart does not decide must be the binary's default, and the file must not
// restate a default either, so that the sidecar's defaults stay written in one place.
func TestChartDefaultsAreTheBinarys(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	config := renderedSidecarConfig(t, filepath.Join(charts, "orderapp", "ci", "default-values.yaml"))

	var file map[string]any
	if err := yaml.Unmarshal([]byte(config), &file); err != nil {
		t.Fatalf("rendered config.yaml: %v\n%s", err, config)
	}
	if got := leafPaths(file, ""); strings.Join(got, " ") != strings.Join(chartWrites, " ") {
		t.Errorf("the chart's config.yaml writes %v, want only %v: a key the values leave unset must be left to the sidecar's default\n%s", got, chartWrites, config)
	}

	eff := effectiveConfig(t, filepath.Dir(charts), config)
	if len(eff.Default) < 20 {
		t.Fatalf("the loader reported only %d settings: the flattening is broken", len(eff.Default))
	}
	for path, def := range eff.Default {
		got, ok := eff.Loaded[path]
		switch {
		case !ok:
			t.Errorf("%s: missing from the loaded configuration", path)
		case chartDecides[path] != "":
			// The chart's own choice, whatever the binary's default.
		case got != def:
			t.Errorf("%s: the chart's configuration loads as %s, the binary's default is %s; leave it to the binary (or, like listen.ops, make the chart's default equal the binary's)", path, got, def)
		}
	}
}

// renderedSidecarConfig renders charts/orderapp with one values file and returns the
// config.yaml of the sidecar's ConfigMap.
func renderedSidecarConfig(t *testing.T, valuesFile string) string {
	t.Helper()
	_, ms := renderOrderapp(t, valuesFile)
	for _, m := range ms {
		var obj struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		if err := yaml.Unmarshal([]byte(m.YAML), &obj); err != nil {
			t.Fatalf("%s: %v", m.Template, err)
		}
		if obj.Kind == "ConfigMap" && strings.HasSuffix(obj.Metadata.Name, "-secret-proxy") && !strings.Contains(obj.Metadata.Name, "migrate") {
			return obj.Data["config.yaml"]
		}
	}
	t.Fatal("no secret-proxy ConfigMap rendered")
	return ""
}

// effective is what sidecar/internal/config/effective prints: YAML path -> value.
type effective struct {
	Default map[string]string `json:"default"`
	Loaded  map[string]string `json:"loaded"`
}

// effectiveConfig loads config with the sidecar's loader, in the repository's workspace.
func effectiveConfig(t *testing.T, root, config string) effective {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "run", "./internal/config/effective", file)
	cmd.Dir = filepath.Join(root, "sidecar")
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"), "CGO_ENABLED=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./internal/config/effective: %v\n%s\nconfig.yaml:\n%s", err, stderr.String(), config)
	}
	var eff effective
	if err := json.Unmarshal(out, &eff); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return eff
}

// leafPaths returns the sorted paths of m's leaves; a list is one leaf.
func leafPaths(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			out = append(out, leafPaths(sub, p)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestLibraryOwnsItsValues: a chart that includes the library with alias: secretProxy gets
// the library's defaults and schema for its secretProxy block without copying either; one
// that includes it without the alias fails to render with the line to add, instead of
// rendering a sidecar without image or probes.
func TestLibraryOwnsItsValues(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	const values = "secretProxy:\n  vault:\n    url: https://test-vault.vault.azure.net/\n  auth:\n    clientId: 00000000-0000-0000-0000-000000000001\n  secrets:\n    - name: db-user\n"
	tests := []struct {
		name, alias, values, want, wantErr string
	}{
		{"alias: defaults from the library", "    alias: secretProxy\n", values, "ghcr.io/secretproxy/secret-proxy:", ""},
		{"alias: the library's schema refuses a misspelt key", "    alias: secretProxy\n", values + "  refresh:\n    intervall: 1m\n", "", "additional properties 'intervall' not allowed"},
		{"no alias", "", values, "", "declare the dependency with alias: secretProxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(filepath.Join(dir, "charts", "secret-proxy"), os.DirFS(filepath.Join(charts, "secret-proxy"))); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string]string{
				"Chart.yaml":  "apiVersion: v2\nname: author\nversion: 0.1.0\ndependencies:\n  - name: secret-proxy\n    version: 0.1.0\n" + tt.alias,
				"values.yaml": tt.values,
				"templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  initContainers:\n" +
					"    {{- include \"secret-proxy.initContainers\" (dict \"values\" .Values.secretProxy \"context\" $) | nindent 4 }}\n  containers: [{name: app, image: app}]\n",
			} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ms, ok := renderChartDir(t, dir, tt.wantErr)
			if !ok {
				return
			}
			if len(ms) != 1 || !strings.Contains(ms[0].YAML, tt.want) || !strings.Contains(ms[0].YAML, "periodSeconds: 2") {
				t.Errorf("rendered %v, want the sidecar with the library's image and probes", ms)
			}
		})
	}
}
