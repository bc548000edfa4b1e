package chartcheck

import (
	"testing"

	"github.com/yannh/kubeconform/pkg/resource"
	"github.com/yannh/kubeconform/pkg/validator"
)

func newKubeconform(t *testing.T) validator.Validator {
	t.Helper()
	dir := t.TempDir()
	if err := generateAllSchemas(dir); err != nil {
		t.Fatal(err)
	}
	v, err := validator.New([]string{schemaLocation(dir)}, validator.Opts{
		Strict:            true,
		KubernetesVersion: kubeVersion.Version[1:],
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKubeconform validates every rendered object against strict schemas generated from the
// Kubernetes v1.37.2 OpenAPI document and the PodMonitor CRD, with no missing schema allowed.
func TestKubeconform(t *testing.T) {
	v := newKubeconform(t)
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			for _, m := range renderCI(t, file).manifests {
				res := v.ValidateResource(resource.Resource{Path: m.Template, Bytes: []byte(m.YAML)})
				if res.Status != validator.Valid {
					t.Errorf("%s: kubeconform status %d: %v %v", m.Template, res.Status, res.Err, res.ValidationErrors)
				}
			}
		})
	}
}

// TestKubeconformCatches shows the schemas are strict: an unknown field, a native-sidecar
// field misspelt, and a wrong type are each refused.
func TestKubeconformCatches(t *testing.T) {
	v := newKubeconform(t)
	tests := map[string]string{
		"unknown pod field": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i}]
      hostnetwork: true
`,
		"misspelt targetPort": `apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{port: 80, targetport: 8080}]
`,
		"wrong type": `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  minAvailable: [1]
`,
		"unknown PodMonitor field": `apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  podMetricsEndpoints: [{port: http, pathh: /metrics}]
`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			res := v.ValidateResource(resource.Resource{Path: name, Bytes: []byte(doc)})
			if res.Status != validator.Invalid {
				t.Errorf("status %d (err %v), want Invalid", res.Status, res.Err)
			}
		})
	}
}
