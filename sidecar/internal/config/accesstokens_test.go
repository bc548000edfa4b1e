package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidScope(t *testing.T) {
	for _, tc := range []struct {
		scope string
		want  bool
	}{
		{"https://database.windows.net/.default", true},
		{"https://ossrdbms-aad.database.windows.net/.default", true},
		{"https://vault.azure.net/.default", true},
		{"api://11111111-2222-3333-4444-555555555555/.default", true},
		{"api://orders-api/.default", true},
		{"https://database.windows.net/", false},        // no /.default
		{"https://database.windows.net", false},         // no /.default
		{"http://database.windows.net/.default", false}, // not https
		{"database.windows.net/.default", false},        // no scheme
		{"https:///.default", false},                    // no host
		{"https://user@db.example/.default", false},     // user info
		{"https://db.example/.default?x=1", false},      // query
		{"https://db.example/a b/.default", false},      // space
		{"https://db.example/\t/.default", false},       // control
		{"https://db.example/é/.default", false},        // not ASCII
		{"", false},
		{"/.default", false},
		{"https://" + strings.Repeat("a", 250) + "/.default", false}, // too long
	} {
		t.Run(tc.scope, func(t *testing.T) {
			if got := ValidScope(tc.scope); got != tc.want {
				t.Errorf("ValidScope(%q) = %v, want %v", tc.scope, got, tc.want)
			}
		})
	}
}

func TestAccessTokensValidation(t *testing.T) {
	tooMany := "  scopes:\n"
	for i := range maxScopes + 1 {
		tooMany += "    - https://db" + string(rune('a'+i)) + ".example/.default\n"
	}
	for _, tc := range []struct {
		name  string
		yaml  string
		paths []string
	}{
		{"off by default", "", nil},
		{"two scopes", "  scopes: [https://database.windows.net/.default, api://orders/.default]\n", nil},
		{"bounds allowed", "  refreshBefore: 2m\n", nil},
		{"upper bound allowed", "  refreshBefore: 1h\n", nil},
		{"malformed scope", "  scopes: [https://database.windows.net/]\n", []string{"accessTokens.scopes[0]"}},
		{"duplicate", "  scopes: [https://a.example/.default, https://a.example/.default]\n", []string{"accessTokens.scopes[1]"}},
		{"refreshBefore too short", "  refreshBefore: 1m\n", []string{"accessTokens.refreshBefore"}},
		{"refreshBefore zero", "  refreshBefore: 0s\n", []string{"accessTokens.refreshBefore"}},
		{"refreshBefore too long", "  refreshBefore: 2h\n", []string{"accessTokens.refreshBefore"}},
		{"too many", tooMany, []string{"accessTokens.scopes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := minimal
			if tc.yaml != "" {
				doc += "accessTokens:\n" + tc.yaml
			}
			c, err := Parse([]byte(doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.Validate()
			if tc.paths == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if diff := cmp.Diff(tc.paths, paths(t, err)); diff != "" {
				t.Errorf("problem paths (-want +got):\n%s\n%v", diff, err)
			}
		})
	}
}

func TestAccessTokensMessageSaysWhatToDo(t *testing.T) {
	c, err := Parse([]byte(minimal + "accessTokens:\n  scopes: [database.windows.net]\n  refreshBefore: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg := c.Validate().Error()
	for _, want := range []string{"https://database.windows.net/.default", "/.default", "from 2m0s to 1h0m0s", "got 30s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if d := c.AccessTokens.RefreshBefore.D(); d != 30*time.Second {
		t.Errorf("refreshBefore parsed as %s", d)
	}
}
