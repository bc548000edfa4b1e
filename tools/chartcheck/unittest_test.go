package chartcheck

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helmUnittest returns the pinned helm-unittest binary (tools/pins/helm-unittest), built into
// the shared tool cache by tools/scripts/build-tool.sh: seconds when cached, which
// tools/scripts/charts.sh makes sure of before go test runs (a cold build takes minutes).
func helmUnittest(t *testing.T) string {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(filepath.Dir(charts), "tools", "scripts", "build-tool.sh")
	cmd := exec.Command("bash", script, "helm-unittest")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build-tool.sh helm-unittest: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// runUnittest runs helm-unittest --strict on one chart directory.
func runUnittest(t *testing.T, bin, chart string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, "--strict", chart).CombinedOutput()
	return string(out), err
}

// TestHelmUnittest runs the helm-unittest suites of charts/orderapp (charts/orderapp/tests, one
// test per template branch), strict: an unknown key in a suite fails.
func TestHelmUnittest(t *testing.T) {
	bin := helmUnittest(t)
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runUnittest(t, bin, filepath.Join(charts, "orderapp"))
	if err != nil {
		t.Fatalf("helm-unittest --strict charts/orderapp: %v\n%s", err, out)
	}
	// A chart whose tests directory went missing would pass with nothing run.
	if !strings.Contains(out, "Test Suites:") || strings.Contains(out, "Test Suites: 0 passed") {
		t.Errorf("helm-unittest ran no suite:\n%s", out)
	}
}

// TestHelmUnittestCatches shows the run above can fail: a suite asserting a value the
// template does not render.
func TestHelmUnittestCatches(t *testing.T) {
	bin := helmUnittest(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: probe\nversion: 0.1.0\n")
	writeFile(t, filepath.Join(dir, "values.yaml"), "port: 8080\n")
	writeFile(t, filepath.Join(dir, "templates", "cm.yaml"),
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  port: {{ .Values.port | quote }}\n")
	writeFile(t, filepath.Join(dir, "tests", "cm_test.yaml"), `suite: probe
templates:
  - templates/cm.yaml
tests:
  - it: renders the port
    asserts:
      - equal:
          path: data.port
          value: "9090"
`)
	out, err := runUnittest(t, bin, dir)
	if err == nil {
		t.Fatalf("helm-unittest passed a suite that asserts a wrong value:\n%s", out)
	}
	if !strings.Contains(out, "renders the port") {
		t.Errorf("the failure does not name the failing test:\n%s", out)
	}
}
