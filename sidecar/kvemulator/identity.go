package kvemulator

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// appServicePath is where IDENTITY_ENDPOINT points. App Service uses a
	// path of its own choosing; clients take the whole URL from the
	// environment, so any path works.
	appServicePath = "/msi/token"
	// imdsPath is hard-coded in MSAL (managedidentity.go, imdsDefaultEndpoint).
	imdsPath = "/metadata/identity/oauth2/token"
	// systemAssignedClientID stands for the identity a request without
	// client_id gets.
	systemAssignedClientID = "00000000-0000-0000-0000-0000000000aa"
	// federatedAssertionType is the only client_assertion_type Entra accepts
	// for a federated credential.
	federatedAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// issuedToken is what the emulator remembers about an access token it issued;
// the vault accepts only tokens found here.
type issuedToken struct {
	resource string // normalized: no trailing slash, no "/.default"
	clientID string
	expires  time.Time
}

// issueToken mints an opaque access token for resource. Tokens are random, not
// JWTs: no client parses an access token, and a random string cannot be forged.
//
// A token queued with IssueNext for the resource is issued instead of a
// random one, so that a test can make a real database accept exactly it.
func (e *Emulator) issueToken(resource, clientID string) (string, time.Time, error) {
	rnd, err := randomHex(32)
	if err != nil {
		return "", time.Time{}, err
	}
	tok := "kvemu." + rnd
	now := e.tokenTime()
	res := normalizeResource(resource)
	e.mu.Lock()
	defer e.mu.Unlock()
	exp := now.Add(e.tokenLifetime).Truncate(time.Second)
	if q := e.nextTokens[res]; len(q) > 0 {
		tok = q[0]
		if len(q) == 1 {
			delete(e.nextTokens, res)
		} else {
			e.nextTokens[res] = q[1:]
		}
	}
	// Forget expired tokens so a long-running demo does not grow the map.
	if len(e.tokens) > 1000 {
		for k, t := range e.tokens {
			if now.After(t.expires) {
				delete(e.tokens, k)
			}
		}
	}
	e.tokens[tok] = issuedToken{resource: res, clientID: clientID, expires: exp}
	return tok, exp, nil
}

// Bounds of the admin-settable token settings.
const (
	MinTokenLifetime = time.Second
	MaxTokenLifetime = 24 * time.Hour
	maxNextTokenLen  = 4096
)

// SetTokenLifetime sets the lifetime of the access tokens issued from now on
// (MinTokenLifetime to MaxTokenLifetime).
func (e *Emulator) SetTokenLifetime(d time.Duration) error {
	if d < MinTokenLifetime || d > MaxTokenLifetime {
		return fmt.Errorf("token lifetime %s is out of range: use %s to %s", d, MinTokenLifetime, MaxTokenLifetime)
	}
	e.mu.Lock()
	e.tokenLifetime = d
	e.mu.Unlock()
	e.log.Info("token lifetime set", "lifetime", d)
	return nil
}

// TokenLifetime is the lifetime of the access tokens issued now.
func (e *Emulator) TokenLifetime() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokenLifetime
}

// IssueNext queues tokens to issue, in order, for the next token requests for
// resource (with or without "/.default" and a trailing slash), by any of the
// identity endpoints. A test sets a database role's password to a queued
// token so that the database accepts exactly the token the sidecar will get.
// Tokens are 1 to 4096 bytes of printable ASCII without spaces.
func (e *Emulator) IssueNext(resource string, tokens ...string) error {
	res := normalizeResource(resource)
	if res == "" {
		return errors.New("resource is empty: name the resource, e.g. https://ossrdbms-aad.database.windows.net")
	}
	for i, t := range tokens {
		if !validNextToken(t) {
			return fmt.Errorf("token %d is not 1 to %d bytes of printable ASCII without spaces", i, maxNextTokenLen)
		}
	}
	e.mu.Lock()
	if e.nextTokens == nil {
		e.nextTokens = map[string][]string{}
	}
	e.nextTokens[res] = append(e.nextTokens[res], tokens...)
	e.mu.Unlock()
	e.log.Info("tokens queued", "resource", res, "count", len(tokens))
	return nil
}

// QueuedTokens says how many queued tokens each resource has left.
func (e *Emulator) QueuedTokens() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.nextTokens))
	for r, q := range e.nextTokens {
		out[r] = len(q)
	}
	return out
}

func validNextToken(t string) bool {
	if len(t) == 0 || len(t) > maxNextTokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkToken reports whether tok is a live token this emulator issued for
// the vault resource.
func (e *Emulator) checkToken(tok string) bool {
	e.mu.Lock()
	t, ok := e.tokens[tok]
	e.mu.Unlock()
	return ok && e.tokenTime().Before(t.expires) && t.resource == VaultResource
}

// normalizeResource maps "https://vault.azure.net/", ".../.default" and the
// bare resource to one spelling.
func normalizeResource(r string) string {
	r = strings.TrimSuffix(r, "/.default")
	return strings.TrimSuffix(r, "/")
}

// serveAppService speaks the App Service managed identity protocol, version
// 2019-08-01, as MSAL's createAppServiceAuthRequest sends it.
func (e *Emulator) serveAppService(w http.ResponseWriter, r *http.Request) int {
	if status, faulted := e.identityFault(w); faulted {
		return status
	}
	got := r.Header.Get("X-IDENTITY-HEADER")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(e.identityHeader)) != 1 {
		return writeOAuthError(w, http.StatusUnauthorized, "invalid_request",
			"missing or wrong X-IDENTITY-HEADER: send the value of IDENTITY_HEADER")
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("unsupported api-version %q: this endpoint speaks 2019-08-01", v))
	}
	resource := q.Get("resource")
	if resource == "" {
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the resource query parameter is required")
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		if q.Get("mi_res_id") != "" || q.Get("object_id") != "" || q.Get("principal_id") != "" {
			// Selecting an identity by resource or object id works the
			// same; report a fixed client id for it.
			clientID = "00000000-0000-0000-0000-0000000000ab"
		} else {
			clientID = systemAssignedClientID
		}
	}
	tok, exp, err := e.issueToken(resource, clientID)
	if err != nil {
		return writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not mint a token")
	}
	// expires_on is a string of Unix seconds, as App Service sends it; MSAL's
	// TokenResponse.UnmarshalJSON parses that form first.
	return writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    clientID,
	})
}

// serveIMDS speaks the Azure Instance Metadata Service token protocol
// (api-version 2018-02-01, header "Metadata: true").
func (e *Emulator) serveIMDS(w http.ResponseWriter, r *http.Request) int {
	if status, faulted := e.identityFault(w); faulted {
		return status
	}
	if r.Header.Get("Metadata") != "true" {
		// IMDS's own answer to a request without the header (azidentity's
		// DefaultAzureCredential probe relies on getting a response at all).
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
	}
	q := r.URL.Query()
	if q.Get("api-version") == "" {
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'api-version' is missing")
	}
	resource := q.Get("resource")
	if resource == "" {
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = systemAssignedClientID
	}
	tok, exp, err := e.issueToken(resource, clientID)
	if err != nil {
		return writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not mint a token")
	}
	now := e.tokenTime()
	return writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"refresh_token":  "",
		"expires_in":     strconv.FormatInt(int64(exp.Sub(now)/time.Second), 10),
		"expires_on":     strconv.FormatInt(exp.Unix(), 10),
		"ext_expires_in": strconv.FormatInt(int64(exp.Sub(now)/time.Second), 10),
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"token_type":     "Bearer",
		"client_id":      clientID,
	})
}

// identityFault writes the active identity fault's answer, if any.
func (e *Emulator) identityFault(w http.ResponseWriter) (int, bool) {
	f, ok := e.takeIdentityFault()
	if !ok {
		return 0, false
	}
	switch f.Mode {
	case FaultThrottle:
		secs := retryAfterSeconds(f)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable",
			"Too many requests: retry after "+strconv.FormatInt(secs, 10)+" seconds (kv-emulator identity fault: throttle)"), true
	case FaultForbidden:
		return writeOAuthError(w, http.StatusBadRequest, "invalid_request",
			"Identity not found (kv-emulator identity fault: forbidden)"), true
	}
	return writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable",
		"The token service is unavailable (kv-emulator identity fault: outage)"), true
}

// newFederatedToken makes a JWT-shaped service account token. Nothing verifies
// its signature: the authority accepts exactly this string, which is what a
// federated identity credential amounts to from the client's side.
func newFederatedToken(tenant string) (string, error) {
	sig, err := randomHex(32)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kv-emulator"})
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://kv-emulator.invalid/" + tenant,
		"sub": "system:serviceaccount:default:secret-proxy",
		"aud": []string{"api://AzureADTokenExchange"},
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	})
	return enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte(sig)), nil
}

// handleOpenIDConfig serves {authority}/{tenant}/v2.0/.well-known/openid-configuration.
// MSAL requires authorization_endpoint, token_endpoint and issuer, and the
// issuer's host must equal the authority's (authority.go,
// ValidateIssuerMatchesAuthority).
func (e *Emulator) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) int {
	tenant := r.PathValue("tenant")
	if tenant != e.tenantID {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	base := strings.TrimSuffix(e.vaultURL, "/") + "/" + tenant
	return writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "WW",
	})
}

// handleEntraToken serves POST {tenant}/oauth2/v2.0/token for the
// client-credentials grant with a federated client assertion, as MSAL's
// accesstokens.Client.FromAssertion sends it.
func (e *Emulator) handleEntraToken(w http.ResponseWriter, r *http.Request) int {
	tenant := r.PathValue("tenant")
	if tenant != e.tenantID {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	if status, faulted := e.identityFault(w); faulted {
		return status
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded and under 64 KiB.")
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		return e.writeAADSTS(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. This emulator supports client_credentials with a federated client assertion.", gt))
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	assertion := f.Get("client_assertion")
	if assertion == "" {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	}
	if f.Get("client_assertion_type") != federatedAssertionType {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_request", 50027,
			"Invalid client_assertion_type: expected "+federatedAssertionType+".")
	}
	if subtle.ConstantTimeCompare([]byte(assertion), []byte(e.federatedToken)) != 1 {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_request", 70021,
			"No matching federated identity record found for presented assertion. Check that AZURE_FEDERATED_TOKEN_FILE holds the emulator's FederatedToken().")
	}
	var resource string
	for _, s := range strings.Fields(f.Get("scope")) {
		if strings.HasSuffix(s, "/.default") {
			resource = strings.TrimSuffix(s, "/.default")
			break
		}
	}
	if resource == "" {
		return e.writeAADSTS(w, http.StatusBadRequest, "invalid_scope", 1002012,
			"The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
	}
	tok, exp, err := e.issueToken(resource, clientID)
	if err != nil {
		return writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not mint a token")
	}
	secs := int64(exp.Sub(e.tokenTime()) / time.Second)
	return writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// writeAADSTS writes an Entra ID error body: error, error_description
// starting "AADSTSnnnn:", error_codes, timestamp, trace and correlation ids.
func (e *Emulator) writeAADSTS(w http.ResponseWriter, status int, code string, aadsts int, msg string) int {
	trace, _ := randomHex(16)
	corr, _ := randomHex(16)
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	return writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, msg, trace, corr, ts),
		"error_codes":    []int{aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

// writeOAuthError writes the {"error","error_description"} body token
// endpoints use.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) int {
	return writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"InternalError","message":"could not encode the answer"}}`, http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

// tokenTime reads the token clock; e.mu must not be held.
func (e *Emulator) tokenTime() time.Time {
	e.mu.Lock()
	f := e.tokenNow
	e.mu.Unlock()
	return f()
}
