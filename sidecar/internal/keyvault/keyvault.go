// Package keyvault is the Azure Key Vault backend: a source.Source that reads
// secrets with the real azidentity and azsecrets clients, classifies the
// vault's answers into the source package's neutral errors, and counts every
// HTTP try and token request in the metrics. Its configuration sections and
// naming rule are in kvconfig, which imports no Azure SDK.
package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/secretproxy/secretproxy/sidecar/internal/keyvault/kvconfig"
	"github.com/secretproxy/secretproxy/sidecar/internal/metrics"
	"github.com/secretproxy/secretproxy/sidecar/internal/source"
)

// TransientError is the vault's side of a failed read that may succeed later:
// what it answered, in Azure's terms. Classify wraps it in a
// *source.TransientError, which is what the core sees. It never holds a value.
type TransientError struct {
	// Status is the HTTP status, 0 when no response came.
	Status int
	// Code is the vault's error code, e.g. Throttled or Forbidden.
	Code string
	// RetryAfter is the vault's Retry-After, 0 when absent.
	RetryAfter time.Duration
	Err        error
}

func (e *TransientError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("vault unreachable: %v", e.Err)
	case e.RetryAfter > 0:
		return fmt.Sprintf("vault answered %d %s (retry after %s)", e.Status, e.Code, e.RetryAfter)
	default:
		return fmt.Sprintf("vault answered %d %s", e.Status, e.Code)
	}
}

func (e *TransientError) Unwrap() error { return e.Err }

// Options are the parts tests and the binary inject.
type Options struct {
	// Transport sends every HTTP request (vault and token endpoints). nil: azcore's
	// default, whose TLS roots honour SSL_CERT_FILE on Linux.
	Transport policy.Transporter
	// Metrics counts requests and tokens; nil counts nothing.
	Metrics *metrics.Metrics
	// Getenv reads the AKS Workload Identity environment; nil: os.Getenv.
	Getenv func(string) string
}

// Client reads secrets. Build one per process.
type Client struct {
	c *azsecrets.Client
}

var _ source.Source = (*Client)(nil)

// New builds the credential and the vault client from the backend's sections.
func New(v kvconfig.Vault, a kvconfig.Auth, o Options) (*Client, error) {
	cred, err := NewCredential(a, o)
	if err != nil {
		return nil, err
	}
	return NewWithCredential(v, cred, o)
}

// NewWithCredential builds the vault client over a credential.
func NewWithCredential(v kvconfig.Vault, cred azcore.TokenCredential, o Options) (*Client, error) {
	copts := clientOptions(o)
	copts.PerRetryPolicies = append(copts.PerRetryPolicies, &tryPolicy{m: o.Metrics})
	c, err := azsecrets.NewClient(v.URL, countingCredential{cred: cred, m: o.Metrics}, &azsecrets.ClientOptions{
		ClientOptions:                        copts,
		DisableChallengeResourceVerification: v.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("create key vault client: %w", err)
	}
	return &Client{c: c}, nil
}

// clientOptions are the vault client's: the refresher owns retries and
// back-off, so azcore keeps one quick retry (0 would mean its default of 3)
// for 408 and 5xx, and none for 429: every 429 comes straight back so that
// the refresher honours its Retry-After for the whole vault and adds its
// spread (azcore would sleep exactly Retry-After inside one read and send the
// retry in the same second as every other pod of the fleet). Two tries of at
// most 2 s with 0.5 s between them keep a failed read under 5 s, so a failed
// pass marks values stale within interval + 5 s.
func clientOptions(o Options) azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: o.Transport,
		Retry: policy.RetryOptions{
			MaxRetries:    1,
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: 2 * time.Second,
			TryTimeout:    2 * time.Second,
			StatusCodes:   retryStatusCodes,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "secret-proxy"},
	}
}

// retryStatusCodes are azcore's defaults (runtime.StatusCodesForRetry) without
// 429.
var retryStatusCodes = []int{
	http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
	http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// credentialOptions are the token endpoints': the same single retry, with a
// longer try timeout because a node's IMDS can take seconds to answer the
// first token request. Tokens are cached for about an hour, so this is rare.
func credentialOptions(o Options) azcore.ClientOptions {
	co := clientOptions(o)
	co.Retry.TryTimeout = 10 * time.Second
	co.Retry.StatusCodes = nil // azcore's defaults: the vault's throttling is not the token endpoint's
	return co
}

// NewCredential builds the one credential of the process.
func NewCredential(a kvconfig.Auth, o Options) (azcore.TokenCredential, error) {
	copts := credentialOptions(o)
	switch kvconfig.Mode(a, o.Getenv) {
	case kvconfig.AuthWorkloadIdentity:
		getenv := o.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		clientID := a.ClientID
		if clientID == "" {
			clientID = getenv(kvconfig.EnvClientID)
		}
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions:            copts,
			ClientID:                 clientID,
			TenantID:                 getenv(kvconfig.EnvTenantID),
			TokenFilePath:            getenv(kvconfig.EnvFederatedTokenFile),
			DisableInstanceDiscovery: a.DisableInstanceDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("create workload identity credential: %w", err)
		}
		return cred, nil
	default:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: copts}
		if a.ClientID != "" {
			mo.ID = azidentity.ClientID(a.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("create managed identity credential: %w", err)
		}
		return cred, nil
	}
}

// Get reads one secret; version "" means the latest. Errors are
// source.ErrNotFound, source.ErrDisabled (both wrapped), or a
// *source.TransientError around a *TransientError.
func (c *Client) Get(ctx context.Context, name, version string) (source.Secret, error) {
	resp, err := c.c.GetSecret(ctx, name, version, nil)
	if err != nil {
		return source.Secret{}, Classify(err)
	}
	s := source.Secret{}
	if resp.Value != nil {
		s.Value = *resp.Value
	}
	if resp.ID != nil {
		s.Version = resp.ID.Version()
	}
	if resp.ContentType != nil {
		s.ContentType = *resp.ContentType
	}
	if len(resp.Tags) > 0 {
		s.Tags = make(map[string]string, len(resp.Tags))
		for k, v := range resp.Tags {
			if v != nil {
				s.Tags[k] = *v
			}
		}
	}
	if a := resp.Attributes; a != nil {
		if a.Updated != nil {
			s.Updated = *a.Updated
		}
		if a.Expires != nil {
			s.Expires = *a.Expires
		}
		if a.NotBefore != nil {
			s.NotBefore = *a.NotBefore
		}
	}
	return s, nil
}

// Classify turns an azsecrets error into the neutral errors of package
// source: source.ErrNotFound or source.ErrDisabled (wrapped with the vault's
// status and code), else a *source.TransientError around a *TransientError,
// carrying the vault's Retry-After, and Denied for an identity the vault or
// the token endpoint refused. The messages hold status codes and vault error
// codes only.
func Classify(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// No response: network errors, timeouts and token failures. The
		// cause is kept for errors.As; it never holds a secret value.
		return &source.TransientError{Err: &TransientError{Err: err}, Denied: identityRefused(err)}
	}
	te := &TransientError{Status: re.StatusCode, Code: re.ErrorCode, Err: errors.New(re.ErrorCode)}
	switch {
	case re.StatusCode == http.StatusNotFound && re.ErrorCode == "SecretNotFound":
		return fmt.Errorf("%w in the vault (%d %s)", source.ErrNotFound, re.StatusCode, re.ErrorCode)
	case re.StatusCode == http.StatusForbidden && innerCode(re.RawResponse) == "SecretDisabled":
		return fmt.Errorf("%w in the vault (%d SecretDisabled)", source.ErrDisabled, re.StatusCode)
	}
	if re.RawResponse != nil {
		te.RetryAfter = parseRetryAfter(re.RawResponse.Header, time.Now())
	}
	denied := re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden
	return &source.TransientError{Err: te, RetryAfter: te.RetryAfter, Denied: denied}
}

// identityRefused reports whether the token endpoint refused the identity (it
// answered 400, 401 or 403), as opposed to being down or throttling.
func identityRefused(err error) bool {
	var af *azidentity.AuthenticationFailedError
	if !errors.As(err, &af) || af.RawResponse == nil {
		return false
	}
	switch af.RawResponse.StatusCode {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// innerCode reads error.innererror.code from a vault error body. azcore has
// already read the body into a buffer, so reading it again is safe.
func innerCode(resp *http.Response) string {
	if resp == nil || resp.Body == nil {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Code       string `json:"code"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.InnerError == nil {
		return ""
	}
	return e.Error.InnerError.Code
}

// parseRetryAfter reads retry-after-ms, x-ms-retry-after-ms or Retry-After
// (seconds or an HTTP date).
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// tryPolicy counts every HTTP try: it sits among the per-retry policies, so
// the 401 challenge and each retry are each one request.
type tryPolicy struct{ m *metrics.Metrics }

func (p *tryPolicy) Do(req *policy.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := req.Next()
	if p.m != nil {
		code := "error"
		if resp != nil {
			code = metrics.StatusCode(resp.StatusCode)
		}
		p.m.VaultRequests.WithLabelValues("get", code).Inc()
		p.m.VaultDuration.WithLabelValues("get").Observe(time.Since(start).Seconds())
	}
	return resp, err
}

// countingCredential counts the vault client's token requests.
type countingCredential struct {
	cred azcore.TokenCredential
	m    *metrics.Metrics
}

func (c countingCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cred.GetToken(ctx, o)
	if c.m != nil {
		result := "success"
		if err != nil {
			result = "error"
		}
		c.m.TokenRequests.WithLabelValues(result).Inc()
	}
	return tok, err
}
