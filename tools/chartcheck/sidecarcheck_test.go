package chartcheck

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// buildSidecar builds ../../sidecar/cmd/secret-proxy in the repository's workspace (go.work),
// so this test checks the configuration against the real parser.
func buildSidecar(t *testing.T) string {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	moduleDir := filepath.Join(filepath.Dir(charts), "sidecar")
	if _, err := os.Stat(filepath.Join(moduleDir, "cmd", "secret-proxy")); err != nil {
		t.Fatalf("the sidecar command %s/cmd/secret-proxy does not exist yet (%v): the rendered configuration cannot be checked with `secret-proxy --check` until it lands", moduleDir, err)
	}
	bin := filepath.Join(t.TempDir(), "secret-proxy")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/secret-proxy")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(filepath.Dir(charts), "go.work"), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build secret-proxy from %s: %v\n%s", moduleDir, err, out)
	}
	return bin
}

// TestConfigPassesSidecarCheck runs `secret-proxy --config FILE --check --config-only` on the config.yaml of
// the ConfigMap rendered for every ci values file.
func TestConfigPassesSidecarCheck(t *testing.T) {
	bin := buildSidecar(t)
	t.Run("check refuses an unknown key", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		writeFile(t, cfg, "vault:\n  url: https://test-vault.vault.azure.net/\n  urll: x\nsecrets:\n  - name: a\nlisten:\n  grpc: \"\"\n  unix: /tmp/x.sock\n")
		out, err := exec.CommandContext(t.Context(), bin, "--config", cfg, "--check").CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("--check on a config with an unknown key: err = %v, want a non-zero exit\n%s", err, out)
		}
	})
	for name, file := range ciFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderCI(t, file)
			var data string
			for _, o := range r.objects {
				if cm, ok := o.(*corev1.ConfigMap); ok && strings.HasSuffix(cm.Name, "-secret-proxy") {
					data = cm.Data["config.yaml"]
				}
			}
			if data == "" {
				t.Fatal("no secret-proxy ConfigMap with config.yaml")
			}
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, cfg, data)
			// --config-only: the socket directory, the token file and the
			// workload identity environment exist only in the pod.
			out, err := exec.CommandContext(t.Context(), bin, "--config", cfg, "--check", "--config-only").CombinedOutput()
			if err != nil {
				t.Errorf("secret-proxy --check refused the rendered configuration: %v\n%s\nconfig.yaml:\n%s", err, out, data)
			}
		})
	}
}
