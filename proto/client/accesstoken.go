package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	secretproxyv1 "github.com/secretproxy/secretproxy/proto/secretproxy/v1"
)

// Scopes of the Microsoft Entra resources an application most often logs in
// to with GetAccessToken.
const (
	// ScopeAzureSQL is Azure SQL Database's (and SQL Managed Instance's) scope.
	ScopeAzureSQL = "https://database.windows.net/.default"
	// ScopeAzurePostgres is Azure Database for PostgreSQL's scope.
	ScopeAzurePostgres = "https://ossrdbms-aad.database.windows.net/.default"
)

// AccessToken is a Microsoft Entra access token from the sidecar. It prints
// without its value, so that a stray %v cannot log it.
type AccessToken struct {
	Token   string
	Expires time.Time
}

// String hides the token.
func (t AccessToken) String() string {
	return "access token (redacted), expires " + t.Expires.UTC().Format(time.RFC3339)
}

// GoString hides the token from %#v too.
func (t AccessToken) GoString() string { return t.String() }

// AccessToken asks the sidecar for an access token of its identity for scope,
// one of the sidecar's accessTokens.scopes. The sidecar caches and refreshes
// tokens, and serves each one at least a minute before it expires: call this
// for every new database connection rather than keeping a token.
func (c *Client) AccessToken(ctx context.Context, scope string) (AccessToken, error) {
	resp, err := c.api.GetAccessToken(ctx, &secretproxyv1.GetAccessTokenRequest{Scope: scope})
	if err != nil {
		return AccessToken{}, fmt.Errorf("get access token for %q: %w", scope, err)
	}
	if resp.GetToken() == "" || !resp.GetExpireTime().IsValid() {
		return AccessToken{}, errors.New("get access token: the sidecar answered without a token or expiry")
	}
	return AccessToken{Token: resp.GetToken(), Expires: resp.GetExpireTime().AsTime()}, nil
}
