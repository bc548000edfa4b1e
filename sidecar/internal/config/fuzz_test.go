package config

import (
	"testing"
)

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
