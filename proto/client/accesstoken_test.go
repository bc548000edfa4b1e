package client_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretproxy/secretproxy/proto/client"
	"github.com/secretproxy/secretproxy/proto/secretproxytest"
)

func TestAccessToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	f := secretproxytest.Start(t, nil)
	f.SetToken(client.ScopeAzureSQL, "test-token-abc", exp)
	f.FailNext("GetAccessToken", status.Error(codes.Unavailable, "identity endpoint down"))
	c := dial(t, f)

	tok, err := c.AccessToken(t.Context(), client.ScopeAzureSQL)
	if err != nil || tok.Token != "test-token-abc" || !tok.Expires.Equal(exp) {
		t.Fatalf("AccessToken = %v, %v; want the token and its expiry", tok, err)
	}
	if n := f.Calls("GetAccessToken"); n != 2 {
		t.Errorf("calls = %d, want 2 (UNAVAILABLE is retried)", n)
	}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v %#v", tok, tok)} {
		if strings.Contains(s, "test-token-abc") {
			t.Errorf("formatting shows the token: %s", s)
		}
	}
	_, err = c.AccessToken(t.Context(), client.ScopeAzurePostgres)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), client.ScopeAzurePostgres) {
		t.Errorf("undeclared scope: %v", err)
	}
}
