package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoad: one load returns the file's problems, the overrides' and every
// section's validation together, and the environment's only for a
// configuration that stands; a syntax error and an unreadable file stand alone.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := write("valid.yaml", "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\n")
	absentToken := write("token.yaml", "vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\nclientAuth: {tokenFile: "+filepath.Join(dir, "absent")+"}\n")
	bad := write("bad.yaml", "vault: {url: http://x.vault.azure.net/, urll: x}\nsecrets: [{name: a, optinal: true}]\nrefresh: {jitter: 2}\nlisten: {maxConnections: -1}\nlog: {format: xml}\nclientAuth: {tokenFile: "+filepath.Join(dir, "absent")+"}\n")
	syntax := write("syntax.yaml", "vault: {url: https://x.vault.azure.net/\nsecrets: [\n")
	level, ops := "loud", "nope"
	tests := []struct {
		name  string
		src   Source
		want  []string // problem paths; nil: no error
		alone string   // an error that is not Problems, by its text
	}{
		{"valid", Source{Path: valid}, nil, ""},
		{"file and validation together, the environment not checked",
			Source{Path: bad}, []string{"vault.urll", "secrets[0].optinal", "vault.url", "refresh.jitter", "listen.maxConnections", "log.format"}, ""},
		{"overrides validated with the file", Source{Path: valid, Overrides: Overrides{LogLevel: &level, OpsListen: &ops}},
			[]string{"listen.ops", "log.level"}, ""},
		{"environment of a valid configuration", Source{Path: absentToken}, []string{"clientAuth.tokenFile"}, ""},
		{"file only skips the environment", Source{Path: absentToken, FileOnly: true}, nil, ""},
		{"syntax error alone", Source{Path: syntax}, nil, "not valid YAML"},
		{"unreadable file alone", Source{Path: filepath.Join(dir, "absent.yaml")}, nil, "read config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.Getenv = func(string) string { return "" }
			cfg, err := Load(tt.src)
			if tt.alone != "" {
				var ps Problems
				if err == nil || errors.As(err, &ps) || !strings.Contains(err.Error(), tt.alone) {
					t.Fatalf("Load = %v, want a lone error containing %q", err, tt.alone)
				}
				return
			}
			if !wantProblems(t, err, tt.want) {
				if len(cfg.Secrets) != 1 || cfg.Secrets[0].Name != "a" {
					t.Errorf("Load returned %+v, want the file's one secret", cfg.Secrets)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

// TestErrInvalid: the binary tells configuration errors (exit 2) from runtime
// ones by errors.Is, also through wrapping.
func TestErrInvalid(t *testing.T) {
	_, syntax := Parse([]byte("vault: [\n"))
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"problems", Problems{{Path: "listen", Message: "x"}}, true},
		{"wrapped problems", errors.Join(errors.New("start"), Problems{{Path: "listen", Message: "x"}}), true},
		{"syntax error", syntax, true},
		{"runtime error", errors.New("listen tcp 127.0.0.1:1: bind: address already in use"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, ErrInvalid); got != tt.want {
				t.Errorf("errors.Is(%v, ErrInvalid) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
