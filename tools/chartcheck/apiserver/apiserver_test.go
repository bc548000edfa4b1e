// Package apiserver is the slow tier of the chart checks: it starts a real etcd and
// kube-apiserver v1.37.2 on 127.0.0.1 and creates every rendered object with a server-side
// dry run in a namespace that enforces Pod Security "restricted", with warnings as errors.
// It catches what offline checks cannot: the API server's own validation (native sidecar
// rules, immutable fields, defaults) and the PodSecurity admission plugin.
//
// Run it with `make test-slow`, or:
//
//	cd tools/chartcheck && CHARTCHECK_APISERVER=1 GOWORK=off go test -count=1 -v ./apiserver
package apiserver

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretproxy/secretproxy/tools/chartcheck"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) {
	// Helm's loader logs each time it follows the charts/orderapp/charts/secret-proxy link.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// cluster is a running etcd and kube-apiserver, and a kubectl configured for them.
type cluster struct {
	kubectl    string
	kubeconfig string
}

func (c *cluster) run(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start launches a process that t.Cleanup stops, with its output in a log file that is
// printed when the test fails.
func start(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				tail := b
				if len(tail) > 4000 {
					tail = tail[len(tail)-4000:]
				}
				t.Logf("last lines of %s:\n%s", name, tail)
			}
		}
	})
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("CHARTCHECK_APISERVER") != "1" {
		msg := "slow tier not requested: set CHARTCHECK_APISERVER=1 (make test-slow) to build kube-apiserver v1.37.2 (about 8 min cold) and run it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed: apt-get install -y etcd-server (Debian 12 ships 3.4), or put an etcd 3.4+ binary on PATH: %v", err)
	}
	charts, err := chartcheck.ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Log("building (or reusing the cached) kube-apiserver and kubectl v1.37.2")
	build := exec.CommandContext(t.Context(), filepath.Join(filepath.Dir(charts), "tools", "scripts", "build-kube-apiserver.sh"))
	build.Stderr = os.Stderr
	out, err := build.Output()
	if err != nil {
		t.Fatalf("build kube-apiserver: %v", err)
	}
	bin := strings.TrimSpace(string(out))

	dir := t.TempDir()
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	start(t, dir, "etcd", etcd, "--name", "chartcheck", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("chartcheck=http://127.0.0.1:%d", peerPort))

	// Service account signing key and an admin token (group system:masters) for kubectl.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "sa.key")
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	tokenBytes := make([]byte, 16)
	if _, err := rand.Read(tokenBytes); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(tokenBytes)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, token+`,chartcheck-admin,1,"system:masters"`+"\n")

	start(t, dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort), "--cert-dir="+filepath.Join(dir, "certs"),
		"--endpoint-reconciler-type=none", "--service-cluster-ip-range=10.96.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+keyPath,
		"--service-account-signing-key-file="+keyPath, "--token-auth-file="+tokens,
		"--authorization-mode=RBAC")

	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
`, apiPort, token))
	c := &cluster{kubectl: filepath.Join(bin, "kubectl"), kubeconfig: kubeconfig}

	t.Log("waiting for /readyz (at most 60 s)")
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		out, err := c.run(t, nil, "get", "--raw", "/readyz")
		if err == nil && strings.TrimSpace(out) == "ok" {
			break
		}
		if time.Now().After(deadline) || attempt > 240 {
			t.Fatalf("kube-apiserver not ready after 60 s: %v %s", err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	version, err := c.run(t, nil, "version")
	if err != nil || !strings.Contains(version, "Server Version: v1.37.2") {
		t.Fatalf("server version: %v\n%s", err, version)
	}
	t.Log("kube-apiserver v1.37.2 ready")
	return c
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// restrictedNamespace creates a namespace that enforces, audits and warns Pod Security restricted.
func (c *cluster) restrictedNamespace(t *testing.T, name string) {
	t.Helper()
	ns := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
`, name)
	if out, err := c.run(t, []byte(ns), "create", "-f", "-"); err != nil {
		t.Fatalf("create namespace %s: %v\n%s", name, err, out)
	}
}

// podFrom turns the Deployment's pod template into a Pod, so that PodSecurity enforces (on
// workloads it only warns) and the pod validation runs exactly as the ReplicaSet's would.
func podFrom(d *appsv1.Deployment) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-probe", Namespace: d.Namespace, Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
		Spec:       d.Spec.Template.Spec,
	}
}

func TestChartAgainstAPIServer(t *testing.T) {
	c := startCluster(t)

	// The PodMonitor CRD, created for real so that the PodMonitor can be dry-run.
	crdPath, err := podMonitorCRD()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.run(t, nil, "create", "-f", crdPath); err != nil {
		t.Fatalf("create PodMonitor CRD: %v\n%s", err, out)
	}
	if out, err := c.run(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/podmonitors.monitoring.coreos.com"); err != nil {
		t.Fatalf("PodMonitor CRD not established: %v\n%s", err, out)
	}

	charts, err := chartcheck.ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := chartcheck.CIValuesFiles(charts)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := chartcheck.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := chartcheck.LoadChart(filepath.Join(charts, "orderapp"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("restricted namespace refuses a weak pod", func(t *testing.T) {
		c.restrictedNamespace(t, "control")
		// No controller manager runs, so the namespace has no default service account yet.
		if out, err := c.run(t, nil, "-n", "control", "create", "serviceaccount", "default"); err != nil {
			t.Fatalf("create service account: %v\n%s", err, out)
		}
		weak := `apiVersion: v1
kind: Pod
metadata: {name: weak, namespace: control}
spec:
  containers: [{name: c, image: registry.example/app:1}]
`
		out, err := c.run(t, []byte(weak), "create", "--dry-run=server", "--warnings-as-errors", "-f", "-")
		if err == nil || !strings.Contains(out, "violates PodSecurity") {
			t.Fatalf("a pod without a security context was not refused: err=%v\n%s", err, out)
		}
	})

	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), "-values.yaml")
		t.Run(name, func(t *testing.T) {
			ns := "ci-" + name
			c.restrictedNamespace(t, ns)
			vals, err := chartcheck.ReadValues(file)
			if err != nil {
				t.Fatal(err)
			}
			rel := chartcheck.Release
			rel.Namespace = ns
			ms, err := chartcheck.RenderIn(ch, vals, rel)
			if err != nil {
				t.Fatal(err)
			}
			// Pods (the helm test hook) go after the ServiceAccount exists: the ServiceAccount
			// admission plugin refuses a pod whose account is missing, and a dry run creates none.
			var all, pods bytes.Buffer
			var deployment *appsv1.Deployment
			var serviceAccount string
			for _, m := range ms {
				obj, err := dec.Decode(m)
				if err != nil {
					t.Fatal(err)
				}
				switch o := obj.(type) {
				case *appsv1.Deployment:
					deployment = o
				case *corev1.ServiceAccount:
					serviceAccount = m.YAML
				case *corev1.Pod:
					fmt.Fprintf(&pods, "---\n%s\n", m.YAML)
					continue
				}
				fmt.Fprintf(&all, "---\n%s\n", m.YAML)
			}
			t.Logf("%s: server-side dry run of %d objects in namespace %s (enforce restricted, warnings as errors)", name, len(ms), ns)
			if out, err := c.run(t, all.Bytes(), "create", "--dry-run=server", "--warnings-as-errors", "-f", "-"); err != nil {
				t.Fatalf("dry-run create refused the chart: %v\n%s", err, out)
			}
			if deployment == nil || serviceAccount == "" {
				t.Fatal("the chart rendered no Deployment or no ServiceAccount")
			}
			// The ServiceAccount admission plugin needs the account to exist for a Pod.
			if out, err := c.run(t, []byte(serviceAccount), "create", "-f", "-"); err != nil {
				t.Fatalf("create service account: %v\n%s", err, out)
			}
			if pods.Len() > 0 {
				t.Logf("%s: server-side dry run of the helm test pod", name)
				if out, err := c.run(t, pods.Bytes(), "create", "--dry-run=server", "--warnings-as-errors", "-f", "-"); err != nil {
					t.Fatalf("dry-run create refused the helm test pod: %v\n%s", err, out)
				}
			}
			pod, err := yaml.Marshal(podFrom(deployment))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: server-side dry run of the Deployment's pod (PodSecurity enforces on pods)", name)
			if out, err := c.run(t, pod, "create", "--dry-run=server", "--warnings-as-errors", "-f", "-"); err != nil {
				t.Fatalf("dry-run create refused the pod: %v\n%s", err, out)
			}
			// The same pod with the sidecar's restartPolicy removed must be refused: a startup
			// probe is only valid on a native sidecar. This shows the server validates the sidecar.
			if len(deployment.Spec.Template.Spec.InitContainers) > 0 {
				broken := podFrom(deployment.DeepCopy())
				broken.Spec.InitContainers[0].RestartPolicy = nil
				b, err := yaml.Marshal(broken)
				if err != nil {
					t.Fatal(err)
				}
				out, err := c.run(t, b, "create", "--dry-run=server", "--warnings-as-errors", "-f", "-")
				if err == nil || !strings.Contains(out, "startupProbe") {
					t.Errorf("a startup probe on a plain init container was not refused: err=%v\n%s", err, out)
				}
			}
		})
	}
}

func podMonitorCRD() (string, error) {
	dir, err := chartcheck.ModuleDir(chartcheck.PrometheusOperatorModule)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_podmonitors.yaml"), nil
}
