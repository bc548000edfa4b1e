package kvemulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/secretproxy/secretproxy/sidecar/kvemulator"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    kvemulator.RateLimit
		wantErr bool
	}{
		{in: "", want: kvemulator.RateLimit{}},
		{in: "off", want: kvemulator.RateLimit{}},
		{in: "4000/10s", want: kvemulator.RateLimit{Reads: 4000, Window: 10 * time.Second}},
		{in: "5/1s", want: kvemulator.RateLimit{Reads: 5, Window: time.Second}},
		{in: "4000", wantErr: true},
		{in: "0/10s", wantErr: true},
		{in: "-1/10s", wantErr: true},
		{in: "x/10s", wantErr: true},
		{in: "10/ten", wantErr: true},
		{in: "10/1ms", wantErr: true},
		{in: "10/2h", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := kvemulator.ParseRateLimit(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRateLimit(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseRateLimit(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	if s := (kvemulator.RateLimit{Reads: 160}).String(); s != "160/10s" {
		t.Errorf("String() = %q, want 160/10s (the default window)", s)
	}
}

// fakeNow is a clock the test moves by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time  { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Set(t time.Time) { f.mu.Lock(); f.t = t; f.mu.Unlock() }

// vaultToken gets an access token for the vault from the App Service
// endpoint as the identity clientID: the rate limit tells callers apart by it.
func vaultToken(t *testing.T, e *kvemulator.Emulator, clientID string) string {
	t.Helper()
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {kvemulator.VaultResource}, "client_id": {clientID}}
	status, _, body := do(t, http.DefaultClient, http.MethodGet, e.IdentityEndpoint()+"?"+q.Encode(),
		map[string]string{"X-IDENTITY-HEADER": e.IdentityHeader()}, "")
	if status != http.StatusOK {
		t.Fatalf("token for %s: status %d", clientID, status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response is not a token: %v", err)
	}
	return tok.AccessToken
}

// TestRateLimit walks a 3-per-10s budget shared by two callers through a
// fake clock: the window slides, Retry-After counts down to the moment the
// oldest served read leaves the window, and reads a caller sends before its
// Retry-After passed are counted (apart from those it had already sent).
func TestRateLimit(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeNow{t: t0}
	e := start(t, kvemulator.Options{
		Secrets:   map[string]string{"db-user": "test-user-1"},
		Now:       clk.Now,
		RateLimit: kvemulator.RateLimit{Reads: 3, Window: 10 * time.Second},
	})
	hc := e.HTTPClient()
	tokens := map[string]string{"A": vaultToken(t, e, "client-a"), "B": vaultToken(t, e, "client-b")}

	steps := []struct {
		at        time.Duration // since t0
		caller    string
		wantCode  int
		wantRetry string
	}{
		{at: 0, caller: "A", wantCode: 200},
		{at: 1 * time.Second, caller: "A", wantCode: 200},
		{at: 2 * time.Second, caller: "B", wantCode: 200},
		{at: 3 * time.Second, caller: "B", wantCode: 429, wantRetry: "7"},         // the read at 0 leaves at 10
		{at: 3100 * time.Millisecond, caller: "B", wantCode: 429, wantRetry: "7"}, // 6.9 s rounded up; within the grace: in flight
		{at: 5 * time.Second, caller: "B", wantCode: 429, wantRetry: "5"},         // inside Retry-After
		{at: 10 * time.Second, caller: "A", wantCode: 200},                        // the read at 0 has left
		{at: 10 * time.Second, caller: "B", wantCode: 429, wantRetry: "1"},        // B waited its 5 s: not inside
		{at: 11 * time.Second, caller: "B", wantCode: 200},
	}
	for i, s := range steps {
		clk.Set(t0.Add(s.at))
		code, hdr, body := do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01",
			map[string]string{"Authorization": "Bearer " + tokens[s.caller]}, "")
		if code != s.wantCode || hdr.Get("Retry-After") != s.wantRetry {
			t.Fatalf("step %d (%s at %s): %d Retry-After %q, want %d %q; body %s", i, s.caller, s.at, code, hdr.Get("Retry-After"), s.wantCode, s.wantRetry, body)
		}
		if code == 429 {
			var kv kvErrorBody
			if err := json.Unmarshal(body, &kv); err != nil || kv.Error.Code != "Throttled" || kv.Error.InnerError != nil {
				t.Fatalf("step %d: 429 body %s, want Key Vault's {\"error\":{\"code\":\"Throttled\"}}", i, body)
			}
		}
	}

	got := e.RateStats()
	want := kvemulator.RateStats{
		Limit:                           "3/10s",
		Reads:                           5,
		Throttled:                       4,
		PeakWindowReads:                 3,
		PeakWindowRequests:              7, // seconds 1-10: 3 served, 4 throttled
		FirstThrottle:                   t0.Add(3 * time.Second),
		PeakWindowRequestsAfterThrottle: 6, // seconds 3-12
		InsideRetryAfter:                1,
		InFlightAtThrottle:              1,
		Callers:                         2,
		Start:                           t0,
		Seconds: []kvemulator.RateSecond{
			{Second: 0, Reads: 1}, {Second: 1, Reads: 1}, {Second: 2, Reads: 1}, {Second: 3, Throttled: 2},
			{Second: 4}, {Second: 5, Throttled: 1}, {Second: 6}, {Second: 7}, {Second: 8}, {Second: 9},
			{Second: 10, Reads: 1, Throttled: 1}, {Second: 11, Reads: 1},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("RateStats (-want +got):\n%s", d)
	}

	// The admin API reports the same, and DELETE starts the statistics
	// again without handing out budget: the window still holds 10 and 11.
	var viaAdmin kvemulator.RateStats
	_, _, raw := do(t, hc, http.MethodGet, e.VaultURL()+"admin/rate-limit", nil, "")
	if err := json.Unmarshal(raw, &viaAdmin); err != nil {
		t.Fatalf("GET /admin/rate-limit: %v: %s", err, raw)
	}
	if d := cmp.Diff(want, viaAdmin, cmpopts.EquateApproxTime(0)); d != "" {
		t.Errorf("GET /admin/rate-limit (-want +got):\n%s", d)
	}
	clk.Set(t0.Add(12 * time.Second))
	if code, _, _ := do(t, hc, http.MethodDelete, e.VaultURL()+"admin/rate-limit", nil, ""); code != 200 {
		t.Fatalf("DELETE /admin/rate-limit: %d", code)
	}
	do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01", map[string]string{"Authorization": "Bearer " + tokens["A"]}, "")
	code, hdr, _ := do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01", map[string]string{"Authorization": "Bearer " + tokens["A"]}, "")
	if code != 429 || hdr.Get("Retry-After") != "8" {
		t.Errorf("after reset, the 4th read in the window: %d Retry-After %q, want 429 \"8\"", code, hdr.Get("Retry-After"))
	}
	after := e.RateStats()
	if after.Reads != 1 || after.Throttled != 1 || after.Start != t0.Add(12*time.Second) {
		t.Errorf("after reset: reads %d throttled %d start %s, want 1, 1, t0+12s", after.Reads, after.Throttled, after.Start)
	}
}

// TestRateLimitOffCountsOnly: without a limit nothing is throttled, but the
// load is still counted, challenges and admin calls excluded.
func TestRateLimitOffCountsOnly(t *testing.T) {
	e := start(t, kvemulator.Options{Secrets: map[string]string{"db-user": "test-user-1"}})
	hc := e.HTTPClient()
	tok := vaultToken(t, e, "client-a")
	do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01", nil, "") // the 401 challenge
	for range 20 {
		if code, _, _ := do(t, hc, http.MethodGet, e.VaultURL()+"secrets/db-user?api-version=2026-04-01", map[string]string{"Authorization": "Bearer " + tok}, ""); code != 200 {
			t.Fatalf("read without a limit: %d", code)
		}
	}
	do(t, hc, http.MethodGet, e.VaultURL()+"admin/faults", nil, "")
	s := e.RateStats()
	if s.Limit != "off" || s.Reads != 20 || s.Throttled != 0 || s.PeakWindowReads != 20 || s.Callers != 1 {
		t.Errorf("stats without a limit: %+v, want off, 20 reads, none throttled, peak 20, 1 caller", s)
	}
}

func TestStartRefusesNegativeRateLimit(t *testing.T) {
	if e, err := kvemulator.Start(kvemulator.Options{RateLimit: kvemulator.RateLimit{Reads: -1}}); err == nil {
		e.Close()
		t.Fatal("Start accepted a negative rate limit")
	}
}
