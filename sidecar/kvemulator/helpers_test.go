package kvemulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

// start starts an emulator that stops when the test ends.
func start(t *testing.T, opts kvemulator.Options) *kvemulator.Emulator {
	t.Helper()
	e, err := kvemulator.Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

var clientSeq atomic.Int64

// uniqueClientID returns a managed identity client id no other test uses:
// MSAL's managed identity token cache is global to the process, so a shared
// id would hand one test's token (from another emulator) to the next.
func uniqueClientID(t *testing.T) string {
	return fmt.Sprintf("client-%d-%s", clientSeq.Add(1), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
}

// clientOptions is what the sidecar uses against the emulator: the emulator's
// CA, no challenge resource verification (127.0.0.1 is not *.vault.azure.net)
// and one quick retry, so 429 and 503 come back to the caller.
func clientOptions(e *kvemulator.Emulator) *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: e.HTTPClient(),
			Retry: policy.RetryOptions{
				MaxRetries:    1,
				RetryDelay:    time.Millisecond,
				MaxRetryDelay: 10 * time.Millisecond,
			},
		},
		DisableChallengeResourceVerification: true,
	}
}

func newSecretsClient(t *testing.T, e *kvemulator.Emulator, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(e.VaultURL(), cred, clientOptions(e))
	if err != nil {
		t.Fatalf("azsecrets.NewClient: %v", err)
	}
	return c
}

// respErr returns err as *azcore.ResponseError or fails the test.
func respErr(t *testing.T, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not an *azcore.ResponseError", err, err)
	}
	return re
}

// kvErrorBody is Key Vault's error body.
type kvErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

func decodeKVError(t *testing.T, resp *http.Response) kvErrorBody {
	t.Helper()
	b, err := runtime.Payload(resp)
	if err != nil {
		t.Fatalf("read error body: %v", err)
	}
	var body kvErrorBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("error body %q is not Key Vault's JSON: %v", b, err)
	}
	return body
}

func innerCode(b kvErrorBody) string {
	if b.Error.InnerError == nil {
		return ""
	}
	return b.Error.InnerError.Code
}

// do sends a raw request and returns status, headers and body.
func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

// staticToken is a hand-written credential that presents a fixed token, to
// show the vault refuses tokens it did not issue.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// imdsClient dials the IMDS address (hard-coded in MSAL) to the emulator's
// identity listener and trusts the emulator's CA for the vault.
func imdsClient(e *kvemulator.Emulator) *http.Client {
	c := e.HTTPClient()
	tr := c.Transport.(*http.Transport)
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "169.254.169.254:80" {
			addr = e.IdentityAddr()
		}
		return d.DialContext(ctx, network, addr)
	}
	tr.Proxy = nil
	return c
}

// captureHandler records every log record as text, attributes included, so a
// test can search it for values that must never be logged.
type captureHandler struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newCapture() *captureHandler {
	return &captureHandler{mu: &sync.Mutex{}, lines: &[]string{}}
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

func (h *captureHandler) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.lines, "\n")
}
