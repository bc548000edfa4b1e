package chartcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLibraryWrongCall: a chart author's wrong call fails the render with the call to write,
// instead of rendering a broken pod.
func TestLibraryWrongCall(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	const good = `(dict "values" .Values.secretProxy "context" $)`
	tests := []struct {
		name, call, wantMsg string
	}{
		{"values block instead of the dict", `include "secret-proxy.initContainers" .Values.secretProxy`, `the argument has no "context" key`},
		{"root context instead of the dict", `include "secret-proxy.volumes" .`, `the argument has no "context" key`},
		{"string argument", `include "secret-proxy.configMap" "x"`, "got a string argument"},
		{"context is not the root", `include "secret-proxy.volumes" (dict "values" .Values.secretProxy "context" .Values)`, `"context" must be the root context`},
		{"values missing", `include "secret-proxy.podLabels" (dict "context" $)`, `the argument has no "values" key`},
		{"values not a map", `include "secret-proxy.podLabels" (dict "values" "x" "context" $)`, `"values" must be a map`},
		{"good call", `include "secret-proxy.initContainers" ` + good, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(filepath.Join(dir, "charts", "secret-proxy"), os.DirFS(filepath.Join(charts, "secret-proxy"))); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: author\nversion: 0.1.0\ndependencies:\n  - name: secret-proxy\n    version: 0.1.0\n    alias: secretProxy\n")
			writeFile(t, filepath.Join(dir, "values.yaml"), "secretProxy:\n  vault:\n    url: https://test-vault.vault.azure.net/\n  auth:\n    clientId: 00000000-0000-0000-0000-000000000001\n  secrets:\n    - name: db-user\n")
			writeFile(t, filepath.Join(dir, "templates", "pod.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  initContainers:\n    {{- "+tt.call+" | nindent 4 }}\n  containers: [{name: app, image: app}]\n")
			ch, err := LoadChart(dir)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := Render(ch, map[string]any{})
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("the documented call failed: %v", err)
				}
				if len(ms) != 1 || !strings.Contains(ms[0].YAML, "restartPolicy: Always") {
					t.Errorf("the documented call rendered %v, want the native sidecar", ms)
				}
				return
			}
			if err == nil {
				t.Fatalf("render succeeded, want an error containing %q", tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), good) && tt.wantMsg != `"values" must be a map` {
				t.Errorf("error %q: want it to contain %q and the call to write", err, tt.wantMsg)
			}
		})
	}
}
