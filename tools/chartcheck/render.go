package chartcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// kubeVersion is the cluster version the charts are rendered for: the version of the
// kube-apiserver the slow tier builds, so both tiers check the same thing.
var kubeVersion = chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

// Release is the release every render uses.
var Release = chartutil.ReleaseOptions{Name: "orders", Namespace: "shop", Revision: 1, IsInstall: true}

// Manifest is one rendered object with the template it came from.
type Manifest struct {
	Template string // e.g. orderapp/templates/deployment.yaml
	YAML     string
}

// ChartsDir finds charts/ from the module directory (tools/chartcheck or below).
func ChartsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the charts directory: %w", err)
	}
	for range 5 {
		c := filepath.Join(dir, "charts")
		if st, err := os.Stat(filepath.Join(c, "orderapp", "Chart.yaml")); err == nil && !st.IsDir() {
			return c, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", fmt.Errorf("no charts/orderapp/Chart.yaml above the working directory")
}

// LoadChart loads a chart directory with its dependencies (charts/orderapp/charts/secret-proxy
// is a link to the library, so the repository holds it once).
func LoadChart(dir string) (*chart.Chart, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	return ch, nil
}

// ReadValues reads a values file, or returns empty values for "".
func ReadValues(path string) (map[string]any, error) {
	if path == "" {
		return map[string]any{}, nil
	}
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		return nil, fmt.Errorf("read values %s: %w", path, err)
	}
	return v, nil
}

// Render renders a chart the way `helm install` would for kubeVersion, including the
// values.schema.json check, and returns every object (NOTES.txt and empty files left out)
// sorted by template and position.
func Render(ch *chart.Chart, values map[string]any) ([]Manifest, error) {
	return RenderIn(ch, values, Release)
}

// RenderIn is Render with other release options (the slow tier uses a namespace per case).
func RenderIn(ch *chart.Chart, values map[string]any, release chartutil.ReleaseOptions) ([]Manifest, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	if err := chartutil.ProcessDependenciesWithMerge(ch, values); err != nil {
		return nil, fmt.Errorf("process dependencies: %w", err)
	}
	rv, err := chartutil.ToRenderValues(ch, values, release, caps)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []Manifest
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		docs := releaseutil.SplitManifests(files[name])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			if strings.TrimSpace(docs[k]) == "" {
				continue
			}
			out = append(out, Manifest{Template: name, YAML: docs[k]})
		}
	}
	return out, nil
}

// renderNotes renders the chart and returns NOTES.txt.
func renderNotes(ch *chart.Chart, values map[string]any) (string, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	// As helm install does: a dependency's alias (secretProxy) applies before the values
	// are checked against the schemas.
	if err := chartutil.ProcessDependenciesWithMerge(ch, values); err != nil {
		return "", fmt.Errorf("process dependencies: %w", err)
	}
	rv, err := chartutil.ToRenderValues(ch, values, Release, caps)
	if err != nil {
		return "", fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return "", fmt.Errorf("render: %w", err)
	}
	return files[ch.Name()+"/templates/NOTES.txt"], nil
}

// CIValuesFiles lists charts/orderapp/ci/*-values.yaml.
func CIValuesFiles(chartsDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(chartsDir, "orderapp", "ci", "*-values.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list ci values: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no ci/*-values.yaml in %s/orderapp", chartsDir)
	}
	return files, nil
}
