package chartcheck

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestValuesDocumented: every key of each chart's values.yaml is declared in its
// values.schema.json with a description (values.yaml documents them in comments too): the
// library chart's own for the secretProxy block, orderapp's for the rest.
func TestValuesDocumented(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, chart := range []string{"orderapp", "secret-proxy"} {
		t.Run(chart, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(charts, chart, "values.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var values map[string]any
			if err := yaml.Unmarshal(raw, &values); err != nil {
				t.Fatal(err)
			}
			schemaRaw, err := os.ReadFile(filepath.Join(charts, chart, "values.schema.json"))
			if err != nil {
				t.Fatal(err)
			}
			var schema map[string]any
			if err := json.Unmarshal(schemaRaw, &schema); err != nil {
				t.Fatal(err)
			}
			var missing []string
			var walk func(path string, v any, s map[string]any)
			walk = func(path string, v any, s map[string]any) {
				m, ok := v.(map[string]any)
				if !ok {
					return
				}
				props, _ := s["properties"].(map[string]any)
				if props == nil {
					return // a free-form map (annotations, resources): its keys are the user's
				}
				for k, child := range m {
					p := strings.TrimPrefix(path+"."+k, ".")
					cs, ok := props[k].(map[string]any)
					if !ok {
						missing = append(missing, p+": not in values.schema.json")
						continue
					}
					if d, _ := cs["description"].(string); d == "" {
						missing = append(missing, p+": no description in values.schema.json")
					}
					walk(p, child, cs)
				}
			}
			walk("", values, schema)
			sort.Strings(missing)
			for _, m := range missing {
				t.Error(m)
			}
			if s, _ := schema["additionalProperties"].(bool); s {
				t.Error("the schema's root allows additional properties")
			}
		})
	}
}

// TestNotes renders NOTES.txt for every ci values file: it names the release's objects and,
// with Workload Identity, the federated credential subject to create.
func TestNotes(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			vals, err := ReadValues(file)
			if err != nil {
				t.Fatal(err)
			}
			notes, err := renderNotes(orderappChart(t), vals)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"rollout status deployment/orders-orderapp", "logs deployment/orders-orderapp -c secret-proxy"} {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES.txt lacks %q:\n%s", want, notes)
				}
			}
			mode, _ := dig(vals, "secretProxy", "auth", "mode").(string)
			subject := "system:serviceaccount:shop:orders-orderapp"
			if wi := mode == "" || mode == "workload-identity"; wi != strings.Contains(notes, subject) {
				t.Errorf("mode %q: NOTES.txt names the federated subject %v, want %v:\n%s", mode, !wi, wi, notes)
			}
		})
	}
}
