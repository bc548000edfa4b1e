package chartcheck

import (
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// Decoder decodes rendered YAML into typed objects and fails on an unknown or duplicate field,
// which is how a misspelt key in a template shows up (Helm itself renders it silently).
type Decoder struct {
	s *json.Serializer
}

// NewDecoder knows the kinds the charts may render; any other kind is an error.
func NewDecoder() (*Decoder, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	return &Decoder{s: s}, nil
}

// Decode decodes one manifest strictly.
func (d *Decoder) Decode(m Manifest) (runtime.Object, error) {
	obj, _, err := d.s.Decode([]byte(m.YAML), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: strict decode: %w", m.Template, err)
	}
	return obj, nil
}
