package chartcheck

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// rendered is one ci values file rendered and decoded.
type rendered struct {
	values    map[string]any
	manifests []Manifest
	objects   []runtime.Object
}

func (r rendered) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var found []*appsv1.Deployment
	for _, o := range r.objects {
		if d, ok := o.(*appsv1.Deployment); ok {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one Deployment, got %d", len(found))
	}
	return found[0]
}

// pods are the rendered Pod objects (the helm test hook).
func (r rendered) pods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, o := range r.objects {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

func (r rendered) kinds() []string {
	var kinds []string
	for _, o := range r.objects {
		kinds = append(kinds, o.GetObjectKind().GroupVersionKind().Kind)
	}
	slices.Sort(kinds)
	return kinds
}

// orderappChart loads charts/orderapp.
func orderappChart(t *testing.T) *chart.Chart {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := LoadChart(filepath.Join(charts, "orderapp"))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// renderOrderapp renders charts/orderapp with one values file; it returns the
// values read and the manifests.
func renderOrderapp(t *testing.T, valuesFile string) (map[string]any, []Manifest) {
	t.Helper()
	vals, err := ReadValues(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Render(orderappChart(t), vals)
	if err != nil {
		t.Fatal(err)
	}
	return vals, ms
}

// renderChartDir renders the chart in dir with no values. With wantErr set
// the render must fail with an error containing it, and ok is false: the
// caller's case is over.
func renderChartDir(t *testing.T, dir, wantErr string) (ms []Manifest, ok bool) {
	t.Helper()
	ch, err := LoadChart(dir)
	if err != nil {
		t.Fatal(err)
	}
	ms, err = Render(ch, map[string]any{})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("render error = %v, want one containing %q", err, wantErr)
		}
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return ms, true
}

// renderCI renders charts/orderapp with one ci values file and strictly decodes every object.
func renderCI(t *testing.T, valuesFile string) rendered {
	t.Helper()
	vals, ms := renderOrderapp(t, valuesFile)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{values: vals, manifests: ms}
	for _, m := range ms {
		obj, err := dec.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		r.objects = append(r.objects, obj)
	}
	return r
}

func ciFiles(t *testing.T) map[string]string {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := CIValuesFiles(charts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return out
}

// dig reads a nested value of a values map.
func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// TestRenderKinds pins which objects each ci values file produces.
func TestRenderKinds(t *testing.T) {
	want := map[string][]string{
		// Pod and the second Service: the helm test hook (templates/tests), rendered by default.
		"default":           {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		"workload-identity": {"ConfigMap", "Deployment", "Pod", "Service", "Service", "ServiceAccount"},
		"managed-identity":  {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		"unix-socket":       {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		"podmonitor":        {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "PodMonitor", "Service", "Service", "ServiceAccount"},
		"networkpolicy":     {"ConfigMap", "Deployment", "NetworkPolicy", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		"legacy-sidecar":    {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		"entra":             {"ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		// The migration Job and its sidecar's ConfigMap, both post-install/post-upgrade hooks.
		"migrations": {"ConfigMap", "ConfigMap", "Deployment", "Job", "Pod", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
	}
	files := ciFiles(t)
	for name := range files {
		if _, ok := want[name]; !ok {
			t.Errorf("ci/%s-values.yaml has no expectation in TestRenderKinds: add one", name)
		}
	}
	for name, kinds := range want {
		t.Run(name, func(t *testing.T) {
			file, ok := files[name]
			if !ok {
				t.Fatalf("ci/%s-values.yaml is missing", name)
			}
			r := renderCI(t, file)
			if diff := cmp.Diff(kinds, r.kinds()); diff != "" {
				t.Errorf("rendered kinds (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSidecar checks the pod wiring that makes the sidecar work, for every ci values file.
func TestSidecar(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			d := r.deployment(t)
			spec := d.Spec.Template.Spec
			native := dig(r.values, "secretProxy", "nativeSidecar") != false

			var sidecar *corev1.Container
			pool := spec.Containers
			if native {
				pool = spec.InitContainers
			}
			for i := range pool {
				if pool[i].Name == "secret-proxy" {
					sidecar = &pool[i]
				}
			}
			if sidecar == nil {
				t.Fatalf("no secret-proxy container in %s (native=%v)", map[bool]string{true: "initContainers", false: "containers"}[native], native)
			}
			if native {
				if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("native sidecar restartPolicy = %v, want Always", sidecar.RestartPolicy)
				}
				if len(spec.Containers) != 1 {
					t.Errorf("native mode: want only the app in containers, got %d", len(spec.Containers))
				}
			} else {
				if len(spec.InitContainers) != 0 {
					t.Errorf("legacy mode: want no init containers, got %d", len(spec.InitContainers))
				}
				if sidecar.RestartPolicy != nil {
					t.Errorf("legacy sidecar must not set restartPolicy, got %v", *sidecar.RestartPolicy)
				}
			}
			probes := map[string]*corev1.Probe{"startup": sidecar.StartupProbe, "liveness": sidecar.LivenessProbe, "readiness": sidecar.ReadinessProbe}
			wantPath := map[string]string{"startup": "/readyz", "liveness": "/livez", "readiness": "/readyz"}
			for kind, p := range probes {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("sidecar has no HTTP %s probe", kind)
					continue
				}
				if p.HTTPGet.Path != wantPath[kind] || p.HTTPGet.Port.String() != "sp-ops" {
					t.Errorf("sidecar %s probe = %s on %s, want %s on sp-ops", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), wantPath[kind])
				}
			}
			if diff := cmp.Diff([]string{"--config", "/etc/secret-proxy/config.yaml"}, sidecar.Args); diff != "" {
				t.Errorf("sidecar args (-want +got):\n%s", diff)
			}

			// The socket directory: a memory emptyDir mounted by both containers.
			socketDir := "/var/run/secret-proxy"
			if s, ok := dig(r.values, "secretProxy", "socketDir").(string); ok {
				socketDir = s
			}
			var vol *corev1.Volume
			for i := range spec.Volumes {
				if spec.Volumes[i].Name == "secret-proxy-socket" {
					vol = &spec.Volumes[i]
				}
			}
			if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Fatalf("socket volume = %+v, want an emptyDir with medium Memory", vol)
			}
			var app *corev1.Container
			for i := range spec.Containers {
				if spec.Containers[i].Name == "orderapp" {
					app = &spec.Containers[i]
				}
			}
			if app == nil {
				t.Fatal("no orderapp container")
			}
			for _, c := range []*corev1.Container{sidecar, app} {
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return m.Name == "secret-proxy-socket" && m.MountPath == socketDir
				}) {
					t.Errorf("container %s does not mount the socket volume at %s", c.Name, socketDir)
				}
				if len(c.Env) != 0 || len(c.EnvFrom) != 0 {
					t.Errorf("container %s has environment variables; configuration comes from the file and flags only", c.Name)
				}
			}
			if !slices.Contains(app.Args, "unix://"+socketDir+"/grpc.sock") {
				t.Errorf("app args %q do not point --sidecar at unix://%s/grpc.sock", app.Args, socketDir)
			}
			if spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil {
				t.Errorf("pod has no fsGroup: the app could not open the sidecar's 0660 socket")
			}
		})
	}
}

// TestIdentity checks the Azure Workload Identity label and annotation, which must be present
// exactly when the sidecar may use workload identity.
func TestIdentity(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			mode, _ := dig(r.values, "secretProxy", "auth", "mode").(string)
			if mode == "" {
				mode = "workload-identity"
			}
			clientID, _ := dig(r.values, "secretProxy", "auth", "clientId").(string)
			wantWI := mode != "managed-identity"

			d := r.deployment(t)
			gotLabel, hasLabel := d.Spec.Template.Labels["azure.workload.identity/use"]
			if wantWI != hasLabel || (hasLabel && gotLabel != "true") {
				t.Errorf("mode %s: pod label azure.workload.identity/use = %q (present %v), want present=%v with \"true\"", mode, gotLabel, hasLabel, wantWI)
			}
			if _, inSelector := d.Spec.Selector.MatchLabels["azure.workload.identity/use"]; inSelector {
				t.Error("the Workload Identity label must not be in the selector (selectors are immutable)")
			}
			var sa *corev1.ServiceAccount
			for _, o := range r.objects {
				if s, ok := o.(*corev1.ServiceAccount); ok {
					sa = s
				}
			}
			if sa == nil {
				t.Fatal("no ServiceAccount")
			}
			if d.Spec.Template.Spec.ServiceAccountName != sa.Name {
				t.Errorf("pod uses service account %q, chart renders %q", d.Spec.Template.Spec.ServiceAccountName, sa.Name)
			}
			got, has := sa.Annotations["azure.workload.identity/client-id"]
			if wantWI != has || (has && got != clientID) {
				t.Errorf("mode %s: service account client-id annotation = %q (present %v), want present=%v with %q", mode, got, has, wantWI, clientID)
			}
		})
	}
}

// TestSecurityDefaults runs the Pod Security "restricted" checks of the Kubernetes version the
// charts target, and checks the read-only root file system and resources the profile leaves out.
func TestSecurityDefaults(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			d := r.deployment(t)
			pods := map[string]podUnderTest{"deployment " + d.Name: {&d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec}}
			for _, p := range r.pods() {
				pods["pod "+p.Name] = podUnderTest{&p.ObjectMeta, &p.Spec}
			}
			for _, o := range r.objects {
				if j, ok := o.(*batchv1.Job); ok {
					pods["job "+j.Name] = podUnderTest{&j.Spec.Template.ObjectMeta, &j.Spec.Template.Spec}
				}
			}
			for what, p := range pods {
				t.Run(what, func(t *testing.T) { checkRestricted(t, eval, lv, p) })
			}
		})
	}
}

// podUnderTest is a pod's metadata and spec, from a Deployment's template or a Pod.
type podUnderTest struct {
	meta *metav1.ObjectMeta
	spec *corev1.PodSpec
}

func checkRestricted(t *testing.T, eval policy.Evaluator, lv api.LevelVersion, p podUnderTest) {
	t.Helper()
	for _, res := range eval.EvaluatePod(lv, p.meta, p.spec) {
		if !res.Allowed {
			t.Errorf("Pod Security restricted: %s: %s", res.ForbiddenReason, res.ForbiddenDetail)
		}
	}
	spec := *p.spec
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: root file system is not read-only", c.Name)
		}
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("container %s: no numeric non-root runAsUser", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: resources %v lack cpu/memory requests or a memory limit", c.Name, c.Resources)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a Kubernetes API token it never uses")
	}
}

// TestSecurityCheckCatches shows the restricted check above can fail: the same pod with
// privilege escalation allowed on the sidecar is refused.
func TestSecurityCheckCatches(t *testing.T) {
	d := renderCI(t, ciFiles(t)["default"]).deployment(t)
	allow := true
	d.Spec.Template.Spec.InitContainers[0].SecurityContext.AllowPrivilegeEscalation = &allow
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	refused := false
	for _, res := range eval.EvaluatePod(lv, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		refused = refused || !res.Allowed
	}
	if !refused {
		t.Error("allowPrivilegeEscalation: true passed the restricted profile; the check is not running")
	}
}

// TestNoSecretValues: the chart renders no Secret object and no value a secret could hide in;
// the only secret material is a Secret the user names (clientAuth.existingSecret).
func TestNoSecretValues(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			for _, o := range r.objects {
				if _, ok := o.(*corev1.Secret); ok {
					t.Error("the chart rendered a Secret")
				}
			}
			for _, m := range r.manifests {
				if strings.Contains(strings.ToLower(m.YAML), "password:") {
					t.Errorf("%s carries a password field", m.Template)
				}
			}
		})
	}
}

// TestValuesRefused: values.schema.json refuses unknown keys (a misspelt key or a secret value
// pasted where a name belongs) and the chart's own checks refuse missing required values, with
// a message that says what to set and never echoes a value.
func TestValuesRefused(t *testing.T) {
	const canary = "test-password-1"
	base := func() map[string]any {
		return map[string]any{"secretProxy": map[string]any{
			"vault": map[string]any{"url": "https://test-vault.vault.azure.net/"},
			"auth":  map[string]any{"clientId": "00000000-0000-0000-0000-000000000001"},
		}}
	}
	tests := []struct {
		name    string
		mutate  func(v map[string]any)
		wantMsg string
	}{
		{"secret value pasted into a secret entry", func(v map[string]any) {
			sp := v["secretProxy"].(map[string]any)
			sp["secrets"] = []any{map[string]any{"name": "db-password", "value": canary}}
		}, "additional properties 'value' not allowed"},
		{"misspelt top-level key", func(v map[string]any) { v["replicas"] = 3 }, "additional properties 'replicas' not allowed"},
		{"vault url missing", func(v map[string]any) {
			delete(v["secretProxy"].(map[string]any), "vault")
		}, "secretProxy.vault.url is required"},
		{"vault url over http", func(v map[string]any) {
			v["secretProxy"].(map[string]any)["vault"] = map[string]any{"url": "http://test-vault.vault.azure.net/"}
		}, "vault/url"},
		{"client id missing", func(v map[string]any) {
			delete(v["secretProxy"].(map[string]any), "auth")
		}, "secretProxy.auth.clientId is required"},
		{"app asks for an undeclared secret", func(v map[string]any) {
			v["app"] = map[string]any{"secretNames": map[string]any{"server": "db-server", "user": "db-user", "password": "db-pass", "name": "db-name"}}
		}, "app.secretNames.password is \"db-pass\" but secretProxy.secrets does not declare it"},
		{"malformed secret name", func(v map[string]any) {
			v["secretProxy"].(map[string]any)["secrets"] = []any{map[string]any{"name": "db password"}}
		}, "secrets"},
		{"allowedUIDs with pod-local TCP and no token", func(v map[string]any) {
			sp := v["secretProxy"].(map[string]any)
			sp["debugLoopbackPort"] = 50051
			sp["clientAuth"] = map[string]any{"allowedUIDs": []any{10001}}
		}, "set secretProxy.clientAuth.existingSecret"},
		{"entra without the database's scope", func(v map[string]any) {
			v["app"] = map[string]any{"dbAuth": "entra"}
		}, "app.dbAuth is entra but secretProxy.accessTokens.scopes does not list https://database.windows.net/.default"},
		{"malformed access token scope", func(v map[string]any) {
			v["secretProxy"].(map[string]any)["accessTokens"] = map[string]any{"scopes": []any{"https://database.windows.net/"}}
		}, "accessTokens/scopes/0"},
		{"unknown db auth", func(v map[string]any) {
			v["app"] = map[string]any{"dbAuth": "kerberos"}
		}, "dbAuth"},
		{"no secrets", func(v map[string]any) {
			v["secretProxy"].(map[string]any)["secrets"] = []any{}
		}, "secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := base()
			tt.mutate(v)
			_, err := Render(orderappChart(t), v)
			if err == nil {
				t.Fatalf("render succeeded, want an error containing %q", tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error echoes the secret value: %q", err)
			}
		})
	}
}
