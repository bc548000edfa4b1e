package app_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
	"github.com/secretproxy/secretproxy/sidecar/internal/config"
	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

const (
	sqlScope = "https://database.windows.net/.default"
	pgScope  = "https://ossrdbms-aad.database.windows.net/.default"
)

// TestGetAccessTokenEndToEnd runs GetAccessToken through the whole sidecar:
// the real azidentity managed identity credential (the vault client's) gets
// the token the emulator was told to issue, the API serves it from the cache,
// metrics count it, and the token is in no log or metric; an identity outage
// with no valid token is UNAVAILABLE with the endpoint's answer.
func TestGetAccessTokenEndToEnd(t *testing.T) {
	const dbToken = "test-token-DB-ENTRA-0001"
	e := startEmulator(t, map[string]string{"db-name": "orders"})
	if err := e.IssueNext(pgScope, dbToken); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(e, config.Secret{Name: "db-name"})
	cfg.AccessTokens.Scopes = []string{pgScope, sqlScope}
	v := startApp(t, e, cfg)
	waitReady(t, v)
	c := client(t, v)

	start := time.Now()
	for range 3 {
		resp, err := c.GetAccessToken(callCtx(t), &secretproxyv1.GetAccessTokenRequest{Scope: pgScope})
		if err != nil {
			t.Fatalf("GetAccessToken: %v\n%s", err, v.logs)
		}
		if resp.GetToken() != dbToken {
			t.Fatalf("token is not the one the emulator was told to issue")
		}
		if life := resp.GetExpireTime().AsTime().Sub(start); life < 59*time.Minute || life > time.Hour+time.Second {
			t.Errorf("expire_time %s from now, want about the emulator's 1 h", life)
		}
	}
	_, err := c.GetAccessToken(callCtx(t), &secretproxyv1.GetAccessTokenRequest{Scope: "https://management.azure.com/.default"})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "accessTokens.scopes") {
		t.Errorf("undeclared scope: %v", err)
	}

	// One fetch per scope (the prefetch), whatever the number of calls.
	_, metrics := get(t, "http://"+v.a.OpsAddr()+"/metrics")
	for _, want := range []string{
		`secretproxy_access_token_fetches_total{result="success",scope="` + pgScope + `"} 1`,
		`secretproxy_access_token_fetches_total{result="error",scope="` + pgScope + `"} 0`,
		`secretproxy_access_token_expiry_timestamp_seconds{scope="` + pgScope + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if err := v.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v.logs.String(), dbToken) || strings.Contains(metrics, dbToken) {
		t.Error("the access token appears in the logs or the metrics")
	}
}

// TestGetAccessTokenIdentityOutage: with the identity endpoint refusing from
// the start, GetAccessToken answers UNAVAILABLE with the endpoint's answer (the
// sidecar is not ready either, but tokens do not wait for readiness).
func TestGetAccessTokenIdentityOutage(t *testing.T) {
	e := startEmulator(t, map[string]string{"db-name": "orders"})
	e.SetIdentityFault(kvemulator.Fault{Mode: kvemulator.FaultForbidden})
	cfg := baseConfig(e, config.Secret{Name: "db-name"})
	cfg.AccessTokens.Scopes = []string{sqlScope}
	v := startApp(t, e, cfg)
	c := client(t, v)
	_, err := c.GetAccessToken(callCtx(t), &secretproxyv1.GetAccessTokenRequest{Scope: sqlScope})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "HTTP 400 invalid_request") || !strings.Contains(st.Message(), "retry") {
		t.Errorf("with the identity endpoint failing: %s %q, want UNAVAILABLE with the endpoint's answer", st.Code(), st.Message())
	}
}
