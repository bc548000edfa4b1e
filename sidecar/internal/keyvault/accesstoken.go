package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/secretproxy/secretproxy/sidecar/internal/accesstoken"
)

// AccessTokenSource fetches GetAccessToken's tokens with the process's one
// credential (the one the vault client uses), one scope per request as
// azidentity's managed identity credential requires.
func AccessTokenSource(cred azcore.TokenCredential) accesstoken.Source {
	return accesstoken.SourceFunc(func(ctx context.Context, scope string) (accesstoken.Token, error) {
		t, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			return accesstoken.Token{}, err
		}
		return accesstoken.Token{Value: t.Token, Expires: t.ExpiresOn}, nil
	})
}

// TokenFailureReason says why a token request failed in words a caller may
// see: the identity endpoint's HTTP status and OAuth error code when it
// answered, else the first line of the credential's message. azidentity's
// full message quotes the response body and request URL; a failed token
// response holds no token, but a caller has no use for it either.
func TokenFailureReason(err error) string {
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		code := ""
		if b, err := runtime.Payload(af.RawResponse); err == nil {
			code = oauthErrorCode(b)
		}
		if code == "" {
			return fmt.Sprintf("the identity endpoint answered HTTP %d", af.RawResponse.StatusCode)
		}
		return fmt.Sprintf("the identity endpoint answered HTTP %d %s", af.RawResponse.StatusCode, code)
	}
	return accesstoken.FirstLine(err)
}

// oauthErrorCode reads "error" from an OAuth error body. Only a short code of letters and
// underscores is kept.
func oauthErrorCode(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Error) > 64 {
		return ""
	}
	for _, c := range e.Error {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
			return ""
		}
	}
	return e.Error
}
