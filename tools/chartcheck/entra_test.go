package chartcheck

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestEntraValues: with app.dbAuth entra the application is started with
// --db-auth entra, and the sidecar's configuration lists the scope and
// declares no password secret.
func TestEntraValues(t *testing.T) {
	r := renderCI(t, ciFiles(t)["entra"])
	var args []string
	var config string
	for _, o := range r.objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			for _, c := range v.Spec.Template.Spec.Containers {
				if c.Name == "orderapp" {
					args = c.Args
				}
			}
		case *corev1.ConfigMap:
			if strings.HasSuffix(v.Name, "-secret-proxy") {
				config = v.Data["config.yaml"]
			}
		}
	}
	i := slices.Index(args, "--db-auth")
	if i < 0 || i+1 >= len(args) || args[i+1] != "entra" {
		t.Errorf("orderapp args %q lack --db-auth entra", args)
	}
	for _, want := range []string{`scopes: ["https://database.windows.net/.default"]`, `refreshBefore: "10m"`} {
		if !strings.Contains(config, want) {
			t.Errorf("config.yaml lacks %s:\n%s", want, config)
		}
	}
	if strings.Contains(config, "db-password") {
		t.Errorf("config.yaml declares the password secret:\n%s", config)
	}
}
