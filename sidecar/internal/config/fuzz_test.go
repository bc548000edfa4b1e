package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that the parser never panics, and that whatever it accepts
// either validates or is refused with located problems; a file that is not
// YAML is the one error reported alone. Every refusal is ErrInvalid (exit 2).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a, optional: true}]\nrefresh: {interval: 1m}\n"))
	f.Add([]byte("secrets: {name: a}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			var ps Problems
			if !isSyntaxError(err) && (!errors.As(err, &ps) || len(ps) == 0) {
				t.Fatalf("Parse error %v is neither a syntax error nor a non-empty Problems", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v is not ErrInvalid", err)
			}
			return
		}
		if verr := cfg.Validate(); verr != nil {
			var ps Problems
			if !errors.As(verr, &ps) || len(ps) == 0 || !errors.Is(verr, ErrInvalid) {
				t.Fatalf("Validate error %v is not a non-empty Problems", verr)
			}
		}
	})
}
