package config

import (
	"strings"
	"testing"
)

// FuzzValidName checks the name rule against a plain restatement of it.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"db-password", "", "bad name!", strings.Repeat("x", 127), strings.Repeat("x", 128), "a\x00b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= 127 && strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") == ""
		if got := ValidName(s); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", s, got, want)
		}
	})
}

// FuzzParse checks that the parser never panics, and that whatever it accepts
// either validates or is refused with located problems.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a, optional: true}]\nrefresh: {interval: 1m}\n"))
	f.Add([]byte("secrets: {name: a}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 {
				t.Fatalf("Parse error %v is not a non-empty Problems", err)
			}
			return
		}
		if verr := cfg.Validate(); verr != nil {
			if ps, ok := verr.(Problems); !ok || len(ps) == 0 {
				t.Fatalf("Validate error %v is not a non-empty Problems", verr)
			}
		}
	})
}
