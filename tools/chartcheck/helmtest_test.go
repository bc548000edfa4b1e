package chartcheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestHelmTestHook checks the wiring of the `helm test` hook (templates/tests) for every ci
// values file: the pod and its headless Service are test hooks, the pod runs `orderapp check`
// against the chart's own Service and the headless Service's ops port, names every required
// secret, is selected by none of the chart's selectors, and the NetworkPolicy lets it in.
func TestHelmTestHook(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			d := r.deployment(t)
			var app, ops *corev1.Service
			var np *networkingv1.NetworkPolicy
			for _, o := range r.objects {
				switch v := o.(type) {
				case *corev1.Service:
					if v.Spec.ClusterIP == corev1.ClusterIPNone {
						ops = v
					} else {
						app = v
					}
				case *networkingv1.NetworkPolicy:
					np = v
				}
			}
			pods := r.pods()
			if len(pods) != 1 || app == nil || ops == nil {
				t.Fatalf("want one test Pod, the app Service and a headless Service; got %d pods, app %v, headless %v", len(pods), app != nil, ops != nil)
			}
			pod := pods[0]
			for _, meta := range []struct {
				kind        string
				annotations map[string]string
			}{{"Pod", pod.Annotations}, {"headless Service", ops.Annotations}} {
				if meta.annotations["helm.sh/hook"] != "test" {
					t.Errorf("%s: helm.sh/hook = %q, want test (it must exist only while helm test runs)", meta.kind, meta.annotations["helm.sh/hook"])
				}
				if meta.annotations["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
					t.Errorf("%s: hook-delete-policy = %q", meta.kind, meta.annotations["helm.sh/hook-delete-policy"])
				}
			}
			if ops.Annotations["helm.sh/hook-weight"] != "-1" || pod.Annotations["helm.sh/hook-weight"] != "" {
				t.Errorf("hook weights: headless Service %q, pod %q; want -1 and none (0), so the Service exists before the pod",
					ops.Annotations["helm.sh/hook-weight"], pod.Annotations["helm.sh/hook-weight"])
			}
			if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("test pod restartPolicy = %q, want Never (helm test reads the pod's phase)", pod.Spec.RestartPolicy)
			}

			// Selected by nothing of the chart: a test pod in the Service would get traffic.
			podLabels := labels.Set(pod.Labels)
			if labels.SelectorFromSet(app.Spec.Selector).Matches(podLabels) || labels.SelectorFromSet(ops.Spec.Selector).Matches(podLabels) {
				t.Error("the test pod's labels match a Service selector")
			}
			if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(podLabels) {
				t.Error("the test pod's labels match the Deployment's selector")
			}
			// The headless Service selects exactly the Deployment's pods, on the sidecar's port.
			if !labels.SelectorFromSet(ops.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Error("the headless Service does not select the Deployment's pods")
			}
			sidecarPorts := map[string]int32{}
			spec := d.Spec.Template.Spec
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if c.Name == "secret-proxy" {
					for _, p := range c.Ports {
						sidecarPorts[p.Name] = p.ContainerPort
					}
				}
			}
			if len(ops.Spec.Ports) != 1 || ops.Spec.Ports[0].TargetPort.String() != "sp-ops" || sidecarPorts["sp-ops"] != ops.Spec.Ports[0].Port {
				t.Errorf("headless Service ports %+v do not reach the sidecar's sp-ops port (%d)", ops.Spec.Ports, sidecarPorts["sp-ops"])
			}

			// The check's arguments name the chart's own objects.
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("test pod has %d containers, want 1", len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			if c.Image != appContainer(t, d).Image {
				t.Errorf("test image %q, want the application's image %q (distroless: the check is orderapp's subcommand)", c.Image, appContainer(t, d).Image)
			}
			args := flagValues(c.Args[1:])
			if c.Args[0] != "check" {
				t.Errorf("test pod runs %q, want orderapp check", c.Args[0])
			}
			wantURL := fmt.Sprintf("http://%s.%s.svc:%d", app.Name, app.Namespace, app.Spec.Ports[0].Port)
			if got := args["--url"]; len(got) != 1 || got[0] != wantURL {
				t.Errorf("--url = %q, want %q", got, wantURL)
			}
			wantOps := fmt.Sprintf("%s.%s.svc:%d", ops.Name, ops.Namespace, ops.Spec.Ports[0].Port)
			if got := args["--sidecar-ops"]; len(got) != 1 || got[0] != wantOps {
				t.Errorf("--sidecar-ops = %q, want %q", got, wantOps)
			}
			var required []string
			for _, s := range r.declaredSecrets(t) {
				if !s.optional {
					required = append(required, s.name)
				}
			}
			if !slices.Equal(args["--secret"], required) {
				t.Errorf("--secret %q, want every required declared secret %q", args["--secret"], required)
			}

			// With narrowed peers the NetworkPolicy must still admit the test pod on both ports.
			if np != nil {
				for _, rule := range np.Spec.Ingress {
					if len(rule.From) == 0 {
						continue // every source
					}
					if !slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool {
						return p.PodSelector != nil && p.NamespaceSelector == nil && labels.SelectorFromSet(p.PodSelector.MatchLabels).Matches(podLabels)
					}) {
						t.Errorf("ingress rule on ports %v does not admit the test pod", rule.Ports)
					}
				}
			}
		})
	}
}

func appContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "orderapp" {
			return c
		}
	}
	t.Fatal("the Deployment has no orderapp container")
	return corev1.Container{}
}

type declared struct {
	name     string
	optional bool
}

// declaredSecrets are secretProxy.secrets after the ci values are merged over the chart's defaults.
func (r rendered) declaredSecrets(t *testing.T) []declared {
	t.Helper()
	merged, err := chartutil.CoalesceValues(orderappChart(t), r.values)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := dig(merged, "secretProxy", "secrets").([]any)
	var out []declared
	for _, item := range list {
		m, _ := item.(map[string]any)
		name, _ := m["name"].(string)
		opt, _ := m["optional"].(bool)
		out = append(out, declared{name, opt})
	}
	if len(out) == 0 {
		t.Fatal("no declared secrets in the merged values")
	}
	return out
}

// flagValues groups "--flag value" pairs; a repeated flag keeps every value in order.
func flagValues(args []string) map[string][]string {
	out := map[string][]string{}
	for i := 0; i+1 < len(args); i += 2 {
		if strings.HasPrefix(args[i], "--") {
			out[args[i]] = append(out[args[i]], args[i+1])
		}
	}
	return out
}

// TestMigrationJob: with migrations.enabled the Job and its ConfigMap are post-install and
// post-upgrade hooks (ConfigMap first), the Job's sidecar declares the migration user's vault
// secrets under the names the app asks for, and the serving pods' sidecar never declares them.
func TestMigrationJob(t *testing.T) {
	r := renderCI(t, ciFiles(t)["migrations"])
	var job *batchv1.Job
	configs := map[string]*corev1.ConfigMap{}
	for _, o := range r.objects {
		switch v := o.(type) {
		case *batchv1.Job:
			job = v
		case *corev1.ConfigMap:
			configs[v.Name] = v
		}
	}
	if job == nil || len(configs) != 2 {
		t.Fatalf("want a Job and two ConfigMaps, got job %v and %d ConfigMaps", job != nil, len(configs))
	}
	if job.Annotations["helm.sh/hook"] != "post-install,post-upgrade" {
		t.Errorf("Job hook = %q, want post-install,post-upgrade", job.Annotations["helm.sh/hook"])
	}
	spec := job.Spec.Template.Spec
	var jobConfig string
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			jobConfig = v.ConfigMap.Name
		}
	}
	appConfig := ""
	for _, v := range r.deployment(t).Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			appConfig = v.ConfigMap.Name
		}
	}
	if jobConfig == "" || jobConfig == appConfig || configs[jobConfig] == nil || configs[appConfig] == nil {
		t.Fatalf("Job config %q and app config %q must be two rendered ConfigMaps", jobConfig, appConfig)
	}
	if got := configs[jobConfig].Annotations; got["helm.sh/hook"] != "post-install,post-upgrade" || got["helm.sh/hook-weight"] != "-1" {
		t.Errorf("the Job's ConfigMap annotations %v: want the same hook, weight -1 (created before the Job)", got)
	}
	if !strings.Contains(configs[jobConfig].Data["config.yaml"], "sql-migrator-password") {
		t.Errorf("the Job's sidecar does not read sql-migrator-password:\n%s", configs[jobConfig].Data["config.yaml"])
	}
	if strings.Contains(configs[appConfig].Data["config.yaml"], "sql-migrator") {
		t.Error("the application's sidecar declares the migration user's secrets")
	}
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].RestartPolicy == nil || *spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the Job's sidecar must be a native sidecar, or the Job never completes")
	}
	if len(spec.Containers) != 1 || len(spec.Containers[0].Args) == 0 || spec.Containers[0].Args[0] != "migrate" {
		t.Errorf("the Job runs %v, want orderapp migrate", spec.Containers)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever || spec.ServiceAccountName != r.deployment(t).Spec.Template.Spec.ServiceAccountName {
		t.Errorf("Job pod: restartPolicy %q, service account %q; want Never and the app's (the federated one)", spec.RestartPolicy, spec.ServiceAccountName)
	}
	if job.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Error("the Job's pod lacks the Workload Identity label: its sidecar would get no token")
	}
}
