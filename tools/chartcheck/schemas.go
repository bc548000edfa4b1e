package chartcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Kubernetes JSON schemas for kubeconform, generated offline: nothing is downloaded at run time
// except Go modules on a cold module cache (through the Go module proxy).

// The modules that hold the sources of the schemas.
const (
	kubernetesModule         = "k8s.io/kubernetes@v1.37.2"
	PrometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// ModuleDir returns the module cache directory of module@version, downloading it through the
// Go module proxy when the cache does not hold it yet.
func ModuleDir(modVersion string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-modcacherw")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", modVersion, info.Error)
	}
	return info.Dir, nil
}

// schemaKind names one kind to generate, as kubeconform looks it up.
type schemaKind struct{ Group, Version, Kind string }

// FileName is kubeconform's file name for the kind: {{ .ResourceKind }}{{ .KindSuffix }}.json.
func (k schemaKind) FileName() string {
	suffix := ""
	if k.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.Group, ".")[0])
	}
	return strings.ToLower(k.Kind) + suffix + "-" + strings.ToLower(k.Version) + ".json"
}

// schemaLocation is the kubeconform schema location template for a generated directory.
func schemaLocation(dir string) string {
	return filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
}

// generateKubernetesSchemas writes strict, self-contained JSON schemas for kinds from
// Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json) into dir.
func generateKubernetesSchemas(swaggerPath, dir string, kinds []schemaKind) error {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return fmt.Errorf("read openapi document: %w", err)
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("parse openapi document: %w", err)
	}
	for _, k := range kinds {
		name, err := findDefinition(doc.Definitions, k)
		if err != nil {
			return err
		}
		schema := inline(doc.Definitions, map[string]any{"$ref": "#/definitions/" + name}, nil)
		if err := writeSchema(filepath.Join(dir, k.FileName()), schema); err != nil {
			return err
		}
	}
	return nil
}

// generateCRDSchema writes the strict schema of one version of a CustomResourceDefinition.
func generateCRDSchema(crdPath, version, dir string) error {
	raw, err := os.ReadFile(crdPath)
	if err != nil {
		return fmt.Errorf("read crd: %w", err)
	}
	var crd struct {
		Spec struct {
			Group    string                `json:"group"`
			Names    struct{ Kind string } `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return fmt.Errorf("parse crd %s: %w", crdPath, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != version {
			continue
		}
		k := schemaKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		return writeSchema(filepath.Join(dir, k.FileName()), inline(nil, v.Schema.OpenAPIV3Schema, nil))
	}
	return fmt.Errorf("crd %s has no version %s", crdPath, version)
}

func findDefinition(defs map[string]map[string]any, k schemaKind) (string, error) {
	for name, def := range defs {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			if m["group"] == k.Group && m["version"] == k.Version && m["kind"] == k.Kind {
				return name, nil
			}
		}
	}
	return "", fmt.Errorf("openapi document has no definition for %s/%s %s", k.Group, k.Version, k.Kind)
}

// inline resolves every $ref (a definition already being inlined becomes {} so recursive
// types end), makes int-or-string and quantities accept both JSON types, and sets
// additionalProperties: false on every object with declared properties (kubeconform's strict
// mode), so an unknown or misspelt field is an error.
func inline(defs map[string]map[string]any, node any, stack []string) any {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			for _, s := range stack {
				if s == name {
					return map[string]any{}
				}
			}
			def, ok := defs[name]
			if !ok {
				return map[string]any{}
			}
			return inline(defs, def, append(stack, name))
		}
		if n["format"] == "int-or-string" || n["x-kubernetes-int-or-string"] == true {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		if len(stack) > 0 && stack[len(stack)-1] == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
		}
		out := make(map[string]any, len(n))
		for k, v := range n {
			switch k {
			case "x-kubernetes-group-version-kind", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
				"x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy", "x-kubernetes-map-type",
				"x-kubernetes-unions", "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields",
				"x-kubernetes-embedded-resource", "description":
				continue
			case "properties":
				props := map[string]any{}
				for pk, pv := range v.(map[string]any) {
					props[pk] = inline(defs, pv, stack)
				}
				out[k] = props
			default:
				out[k] = inline(defs, v, stack)
			}
		}
		if _, has := out["properties"]; has && n["x-kubernetes-preserve-unknown-fields"] != true {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = inline(defs, v, stack)
		}
		return out
	default:
		return node
	}
}

func writeSchema(path string, schema any) error {
	b, err := json.Marshal(schema)
	if err != nil {
		return fmt.Errorf("encode schema %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write schema: %w", err)
	}
	// Each test run writes its own t.TempDir(): no other process reads these files.
	return os.WriteFile(path, b, 0o644)
}

// chartKinds are the kinds the charts render.
var chartKinds = []schemaKind{
	{"", "v1", "ConfigMap"}, {"", "v1", "Service"}, {"", "v1", "ServiceAccount"},
	{"", "v1", "Pod"}, // the helm test hook
	{"apps", "v1", "Deployment"}, {"batch", "v1", "Job"}, {"policy", "v1", "PodDisruptionBudget"},
	{"networking.k8s.io", "v1", "NetworkPolicy"},
}

// generateAllSchemas writes the schemas of chartKinds and of the PodMonitor CRD into dir.
func generateAllSchemas(dir string) error {
	k8s, err := ModuleDir(kubernetesModule)
	if err != nil {
		return err
	}
	if err := generateKubernetesSchemas(filepath.Join(k8s, "api", "openapi-spec", "swagger.json"), dir, chartKinds); err != nil {
		return err
	}
	po, err := ModuleDir(PrometheusOperatorModule)
	if err != nil {
		return err
	}
	return generateCRDSchema(filepath.Join(po, "example", "prometheus-operator-crd", "monitoring.coreos.com_podmonitors.yaml"), "v1", dir)
}
