// Package check verifies a deployed order application from the outside, the way
// the chart's `helm test` pod runs it (`orderapp check`): the application is
// ready and serves a client's orders through its Service, and every sidecar
// behind it has loaded the secrets it declares. The images are distroless (no
// shell, no curl), so the check is a subcommand of the application's own binary.
//
// It reads no secret value: the sidecar's ops endpoint serves only readiness and
// metrics, and the orders it fetches are the demo API's public JSON.
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names read from the sidecar (docs/sidecar.md lists them).
const (
	metricLastSuccess = "secretproxy_secret_last_success_timestamp_seconds"
	metricStale       = "secretproxy_secret_stale"
)

// Config says what to check.
type Config struct {
	// AppURL is the application's base URL through its Service, e.g.
	// http://orders-orderapp.shop.svc:80.
	AppURL string
	// ClientID is a client whose orders must be served.
	ClientID int64
	// SidecarOps is host:port of the sidecars' ops listeners: a headless
	// Service name resolving to every ready pod. Empty skips the sidecar check.
	SidecarOps string
	// Secrets are the declared names each sidecar must have loaded (and not stale).
	Secrets []string
	// Timeout bounds the whole check; it polls until every part passes or the
	// time is up, because a pod that was just rolled may still be warming up.
	Timeout time.Duration
	// Interval between two attempts (default 2 s).
	Interval time.Duration
	// HTTPClient defaults to a client with a 5 s timeout per request.
	HTTPClient *http.Client
	// LookupHost resolves the SidecarOps host (default net.DefaultResolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Out receives one line per passed part.
	Out io.Writer
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var probs []string
	u, err := url.Parse(c.AppURL)
	if c.AppURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		probs = append(probs, "--url must be the application's base URL, e.g. http://orders-orderapp.shop.svc:80")
	}
	if c.ClientID <= 0 {
		probs = append(probs, "--client must be a positive client id")
	}
	if c.SidecarOps != "" {
		if _, port, err := net.SplitHostPort(c.SidecarOps); err != nil || port == "" {
			probs = append(probs, "--sidecar-ops must be host:port, e.g. orders-orderapp-ops.shop.svc:9090")
		}
	}
	for _, s := range c.Secrets {
		if strings.TrimSpace(s) == "" {
			probs = append(probs, "--secret must not be empty")
			break
		}
	}
	if c.Timeout <= 0 {
		probs = append(probs, "--timeout must be positive")
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// Run polls every part of the check until all pass (nil) or the timeout ends
// (the last failure, wrapped). Parts that passed are not repeated.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.LookupHost == nil {
		cfg.LookupHost = net.DefaultResolver.LookupHost
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	// Each attempt runs on ctx (bounded by the HTTP client's timeout), not on
	// the deadline: every part gets at least one whole attempt, and a failure
	// reports what the application answered rather than "deadline exceeded".
	deadline, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	parts := []struct {
		name string
		run  func(context.Context, Config) (string, error)
	}{
		{"application ready", appReady},
		{"client orders served", clientOrders},
	}
	if cfg.SidecarOps != "" {
		parts = append(parts, struct {
			name string
			run  func(context.Context, Config) (string, error)
		}{"sidecars loaded", sidecars})
	}
	for _, p := range parts {
		if err := poll(deadline, cfg.Interval, func() (string, error) { return p.run(ctx, cfg) }, cfg.Out, p.name); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// poll runs try until it succeeds or deadline ends; it returns the last failure.
func poll(deadline context.Context, interval time.Duration, try func() (string, error), out io.Writer, name string) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		detail, err := try()
		if err == nil {
			fmt.Fprintf(out, "ok: %s: %s\n", name, detail)
			return nil
		}
		select {
		case <-deadline.Done():
			return fmt.Errorf("still failing when the check timed out: %w", err)
		case <-t.C:
		}
	}
}

func get(ctx context.Context, c *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	// Bounded: an answer of the size the check expects is far below 4 MiB.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	return resp.StatusCode, body, nil
}

// apiError is the application's error body; its message is written for users.
func apiError(body []byte) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return e.Error.Code + ": " + e.Error.Message
	}
	return "no API error body"
}

func appReady(ctx context.Context, cfg Config) (string, error) {
	u := strings.TrimSuffix(cfg.AppURL, "/") + "/readyz"
	code, body, err := get(ctx, cfg.HTTPClient, u)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d (%s); the application reaches the database only with the sidecar's credentials: see its log", u, code, apiError(body))
	}
	return "GET " + u + " 200", nil
}

func clientOrders(ctx context.Context, cfg Config) (string, error) {
	u := fmt.Sprintf("%s/api/v1/clients/%d/orders?limit=5", strings.TrimSuffix(cfg.AppURL, "/"), cfg.ClientID)
	code, body, err := get(ctx, cfg.HTTPClient, u)
	if err != nil {
		return "", err
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return "", fmt.Errorf("GET %s: 404 (%s): client %d does not exist; were the migrations and the data loaded? (tests.clientId picks the client)", u, apiError(body), cfg.ClientID)
	default:
		return "", fmt.Errorf("GET %s: status %d (%s)", u, code, apiError(body))
	}
	var page struct {
		Orders *[]struct {
			OrderID  int64 `json:"orderId"`
			ClientID int64 `json:"clientId"`
		} `json:"orders"`
	}
	if err := json.Unmarshal(body, &page); err != nil || page.Orders == nil {
		return "", fmt.Errorf("GET %s: 200 but the body is not an orders page (want {\"orders\": [...]})", u)
	}
	for _, o := range *page.Orders {
		if o.ClientID != cfg.ClientID {
			return "", fmt.Errorf("GET %s: order %d belongs to client %d, not %d", u, o.OrderID, o.ClientID, cfg.ClientID)
		}
	}
	return fmt.Sprintf("GET %s 200, %d orders", u, len(*page.Orders)), nil
}

// sidecars checks every address the ops host resolves to: /readyz is 200 and
// each named secret has a successful load and is not stale.
func sidecars(ctx context.Context, cfg Config) (string, error) {
	host, port, _ := net.SplitHostPort(cfg.SidecarOps)
	addrs, err := cfg.LookupHost(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve %s (the headless Service of the sidecars' ops ports): %w", host, err)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("resolve %s: no ready pod behind it", host)
	}
	for _, a := range addrs {
		base := "http://" + net.JoinHostPort(a, port)
		code, body, err := get(ctx, cfg.HTTPClient, base+"/readyz")
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("sidecar %s: /readyz status %d: %s", a, code, strings.TrimSpace(string(body)))
		}
		code, body, err = get(ctx, cfg.HTTPClient, base+"/metrics")
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("sidecar %s: /metrics status %d", a, code)
		}
		if err := secretsLoaded(string(body), cfg.Secrets); err != nil {
			return "", fmt.Errorf("sidecar %s: %w", a, err)
		}
	}
	return fmt.Sprintf("%d pods: /readyz 200, %d secrets loaded and fresh", len(addrs), len(cfg.Secrets)), nil
}

func secretsLoaded(exposition string, names []string) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		return fmt.Errorf("parse /metrics: %w", err)
	}
	bySecret := func(family string) map[string]float64 {
		out := map[string]float64{}
		f, ok := families[family]
		if !ok {
			return out
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "secret" && m.GetGauge() != nil {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	last, stale := bySecret(metricLastSuccess), bySecret(metricStale)
	var probs []string
	for _, n := range names {
		ts, ok := last[n]
		switch {
		case !ok || ts <= 0:
			probs = append(probs, n+" never loaded (no "+metricLastSuccess+")")
		case stale[n] != 0:
			probs = append(probs, n+" is stale (the last vault read failed; see the sidecar's log)")
		}
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}
