package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDefaultsPinned pins every default of docs/reference/config.md, written
// out here rather than taken from Default(), so that a changed default fails.
func TestDefaultsPinned(t *testing.T) {
	want := Config{
		Vault: Vault{URL: "", DisableChallengeResourceVerification: false},
		Auth:  Auth{Mode: "default", ClientID: "", DisableInstanceDiscovery: false},
		Refresh: Refresh{
			Interval:      Duration(5 * time.Minute),
			Jitter:        0.1,
			MinInterval:   Duration(10 * time.Second),
			MaxStale:      0,
			RefuseExpired: false,
		},
		Listen: Listen{
			GRPC:             "127.0.0.1:50051",
			Reflection:       false,
			AllowNonLoopback: false,
			Unix:             "",
			Ops:              "0.0.0.0:9090",
			// Added with the connection bounds (issue 9).
			MaxConnections:    256,
			OpsMaxConnections: 32,
		},
		ClientAuth: ClientAuth{TokenFile: "", AllowedUIDs: nil},
		Log:        Log{Level: "info", Format: "json"},
		// Issue 11: GetAccessToken is off until scopes are declared.
		AccessTokens: AccessTokens{Scopes: nil, RefreshBefore: Duration(5 * time.Minute)},
	}
	got, err := Parse([]byte("vault: {url: https://x.vault.azure.net/}\nsecrets: [{name: a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Secrets[0]; s.VaultName() != "a" || s.Version != "" || s.Optional {
		t.Errorf("secret defaults: vaultSecret %q version %q optional %v, want the name, latest, false", s.VaultName(), s.Version, s.Optional)
	}
	got.Vault.URL, got.Secrets = "", nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}
