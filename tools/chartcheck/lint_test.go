package chartcheck

import (
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestHelmLintStrict runs Helm's own lint (what `helm lint --strict` runs) on both charts with
// every ci values file; strict means a warning fails like an error.
func TestHelmLintStrict(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := CIValuesFiles(charts)
	if err != nil {
		t.Fatal(err)
	}
	type run struct{ chart, values string }
	runs := []run{{chart: "secret-proxy"}}
	for _, f := range files {
		runs = append(runs, run{chart: "orderapp", values: f})
	}
	for _, r := range runs {
		t.Run(r.chart+"/"+strings.TrimSuffix(filepath.Base(r.values), "-values.yaml"), func(t *testing.T) {
			vals, err := ReadValues(r.values)
			if err != nil {
				t.Fatal(err)
			}
			kv := kubeVersion
			linter := lint.AllWithKubeVersion(filepath.Join(charts, r.chart), vals, Release.Namespace, &kv)
			for _, m := range linter.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint --strict: %s", m)
				}
			}
		})
	}
}

// TestHelmLintCatches shows the lint above can fail: a chart with an unbalanced template.
func TestHelmLintCatches(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: broken\nversion: 0.1.0\n")
	writeFile(t, filepath.Join(dir, "values.yaml"), "{}\n")
	writeFile(t, filepath.Join(dir, "templates", "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name\n")
	kv := kubeVersion
	linter := lint.AllWithKubeVersion(dir, map[string]any{}, "default", &kv)
	if linter.HighestSeverity < support.ErrorSev {
		t.Errorf("lint of a broken template found nothing worse than severity %d", linter.HighestSeverity)
	}
}
