package chartcheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

const skipAnnotation = "azure.workload.identity/skip-containers"

// webhookReach returns the containers and init containers of a pod that the
// Azure Workload Identity webhook would give the federated token: all of them
// when the pod carries the label, less those its skip-containers annotation
// names (semicolon-separated), as the webhook reads it.
func webhookReach(pod corev1.PodTemplateSpec) []string {
	if pod.Labels["azure.workload.identity/use"] != "true" {
		return nil
	}
	skip := map[string]bool{}
	for _, n := range strings.Split(pod.Annotations[skipAnnotation], ";") {
		skip[strings.TrimSpace(n)] = true
	}
	var got []string
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		if !skip[c.Name] {
			got = append(got, c.Name)
		}
	}
	return got
}

// TestOnlySidecarGetsIdentity: in every ci values file, every pod the chart
// renders (the Deployment's, the migration Job's) that the webhook mutates
// gives the token to the secret-proxy container and no other; the application
// cannot get a Key Vault token itself.
func TestOnlySidecarGetsIdentity(t *testing.T) {
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			pods := 0
			for _, o := range renderCI(t, file).objects {
				var pod corev1.PodTemplateSpec
				switch w := o.(type) {
				case *appsv1.Deployment:
					pod = w.Spec.Template
				case *batchv1.Job:
					pod = w.Spec.Template
				default:
					continue
				}
				pods++
				want := []string{"secret-proxy"}
				if pod.Labels["azure.workload.identity/use"] != "true" {
					want = nil
				}
				if diff := cmp.Diff(want, webhookReach(pod)); diff != "" {
					t.Errorf("%T: containers the webhook gives the token (-want +got):\n%s\nannotation %q", o, diff, pod.Annotations[skipAnnotation])
				}
			}
			if pods == 0 {
				t.Error("no pod template rendered")
			}
		})
	}
}

// TestLibraryUserContainersSkipped: a user's own chart that includes the
// library keeps every container it adds (regular and init) away from the
// webhook, and one that does not name its containers fails to render.
func TestLibraryUserContainersSkipped(t *testing.T) {
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	const pod = `{{- $sp := dict "values" .Values.secretProxy "context" $ }}
{{- $containers := list (dict "name" "web" "image" "web") (dict "name" "worker" "image" "worker") }}
{{- $init := list (dict "name" "migrate" "image" "migrate") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: author
spec:
  selector: {matchLabels: {app: author}}
  template:
    metadata:
      labels:
        app: author
        {{- include "secret-proxy.podLabels" $sp | nindent 8 }}
      annotations:
        {{- include "secret-proxy.podAnnotations" ARG | nindent 8 }}
    spec:
      initContainers:
        {{- toYaml $init | nindent 8 }}
        {{- include "secret-proxy.initContainers" $sp | nindent 8 }}
      containers:
        {{- toYaml $containers | nindent 8 }}
      volumes:
        {{- include "secret-proxy.volumes" $sp | nindent 8 }}
`
	tests := []struct {
		name, arg, wantErr string
		want               []string
	}{
		{"containers as objects", `(merge (dict "containers" (concat $containers $init)) $sp)`, "", []string{"secret-proxy"}},
		{"containers as names", `(merge (dict "containers" (list "web" "worker" "migrate" "secret-proxy")) $sp)`, "", []string{"secret-proxy"}},
		{"a container left out", `(merge (dict "containers" (list "web" "migrate")) $sp)`, "", []string{"secret-proxy", "worker"}},
		{"containers not passed", `$sp`, `needs the pod's other containers`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(filepath.Join(dir, "charts", "secret-proxy"), os.DirFS(filepath.Join(charts, "secret-proxy"))); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: author\nversion: 0.1.0\ndependencies:\n  - name: secret-proxy\n    version: 0.1.0\n    alias: secretProxy\n")
			writeFile(t, filepath.Join(dir, "values.yaml"), "secretProxy:\n  vault:\n    url: https://test-vault.vault.azure.net/\n  auth:\n    clientId: 00000000-0000-0000-0000-000000000001\n  secrets:\n    - name: db-user\n")
			writeFile(t, filepath.Join(dir, "templates", "deployment.yaml"), strings.Replace(pod, "ARG", tt.arg, 1))
			ms, ok := renderChartDir(t, dir, tt.wantErr)
			if !ok {
				return
			}
			dec, err := NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			obj, err := dec.Decode(ms[0])
			if err != nil {
				t.Fatal(err)
			}
			d, ok := obj.(*appsv1.Deployment)
			if !ok {
				t.Fatalf("rendered %T, want a Deployment", obj)
			}
			if diff := cmp.Diff(tt.want, webhookReach(d.Spec.Template)); diff != "" {
				t.Errorf("containers the webhook gives the token (-want +got):\n%s", diff)
			}
		})
	}
}
