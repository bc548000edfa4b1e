// Package metrics defines every secret-proxy metric on a private registry.
//
// Label values come only from closed sets (operation, result, HTTP status code,
// gRPC code and method, declared secret name): never error strings, URLs or values.
package metrics

import (
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
)

// Namespace prefixes every secret-proxy metric.
const Namespace = "secretproxy"

// Cache read results.
const (
	readHit       = "hit"
	readWait      = "wait"
	readCoalesced = "coalesced"
)

// Refresh results.
const (
	RefreshChanged   = "changed"
	RefreshUnchanged = "unchanged"
	RefreshError     = "error"
)

// Phases of secretproxy_vault_throttled_total.
const (
	PhaseStartup = "startup" // some declared secret has never been loaded
	PhaseSteady  = "steady"  // every declared secret is loaded: a refresh was throttled
)

// Access token fetch results.
const (
	FetchSuccess = "success"
	FetchError   = "error"
)

// Metrics holds every instrument. Build it once with New.
type Metrics struct {
	VaultRequests *prometheus.CounterVec
	VaultDuration *prometheus.HistogramVec
	Refresh       *prometheus.CounterVec
	LastSuccess   *prometheus.GaugeVec
	Expiry        *prometheus.GaugeVec
	Stale         *prometheus.GaugeVec
	CacheReads    *prometheus.CounterVec
	Watchers      prometheus.Gauge
	TokenRequests *prometheus.CounterVec
	BuildInfo     *prometheus.GaugeVec
	// VaultThrottled counts 429 answers that reached the refresher.
	VaultThrottled *prometheus.CounterVec

	// Access tokens served by GetAccessToken, by scope of accessTokens.scopes.
	AccessTokenFetches *prometheus.CounterVec
	AccessTokenExpiry  *prometheus.GaugeVec

	GRPCHandled  *prometheus.CounterVec
	GRPCHandling *prometheus.HistogramVec

	// Resolved children, so the hot read path does no label lookups.
	ReadHitCounter       prometheus.Counter
	ReadWaitCounter      prometheus.Counter
	ReadCoalescedCounter prometheus.Counter

	methods map[string]*Method
}

// Method holds the resolved gRPC series of one method.
type Method struct {
	handled  [codes.Unauthenticated + 1]prometheus.Counter
	handling prometheus.Observer
}

// Done records one finished call.
func (m *Method) Done(code codes.Code, seconds float64) {
	if int(code) < len(m.handled) {
		m.handled[code].Inc()
	}
	m.handling.Observe(seconds)
}

// New registers every metric on reg, with the series of every declared secret
// pre-initialised. version and the Go version go into secretproxy_build_info.
func New(reg prometheus.Registerer, declared []string, version string) *Metrics {
	m := &Metrics{methods: map[string]*Method{}}
	m.defineVaultMetrics()
	m.defineSecretMetrics()
	m.defineAccessTokenMetrics()
	m.defineGRPCMetrics()
	m.BuildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help: "Always 1; version is the secret-proxy build, goversion the Go toolchain.",
	}, []string{"version", "goversion"})
	m.register(reg)
	m.initSeries(declared, version)
	return m
}

// defineVaultMetrics defines what the sidecar asks of Key Vault and its
// credential: requests, their durations, 429s and token calls.
func (m *Metrics) defineVaultMetrics() {
	m.VaultRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "vault_requests_total",
		Help: "Key Vault HTTP requests, one per try (the 401 challenge and each retry included); operation is the vault call (get), code the HTTP status or 'error' when no response came.",
	}, []string{"operation", "code"})
	m.VaultDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "vault_request_duration_seconds",
		Help:    "Duration of each Key Vault HTTP try, by operation (get).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"operation"})
	m.TokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "token_requests_total",
		Help: "Calls to the credential's GetToken by the Key Vault client, by result (success, error).",
	}, []string{"result"})
	m.VaultThrottled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "vault_throttled_total",
		Help: "Vault reads answered 429 (throttled), by phase: startup (a declared secret not loaded yet) or steady (every secret loaded; a refresh was throttled, so the fleet reads more than the vault allows).",
	}, []string{"phase"})
}

// defineSecretMetrics defines the per-secret freshness of the cache and how
// the API reads it.
func (m *Metrics) defineSecretMetrics() {
	m.Refresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "refresh_total",
		Help: "Vault reads of a declared secret, by secret (declared name) and result (changed, unchanged, error).",
	}, []string{"secret", "result"})
	m.LastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "secret_last_success_timestamp_seconds",
		Help: "Unix time the vault last confirmed the secret's value, by secret (declared name).",
	}, []string{"secret"})
	m.Expiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "secret_expiry_timestamp_seconds",
		Help: "Unix time the cached version expires (the vault's exp), by secret (declared name); absent when the vault sets no exp.",
	}, []string{"secret"})
	m.Stale = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "secret_stale",
		Help: "1 when the last refresh of the secret failed and the last good value is served, else 0, by secret (declared name).",
	}, []string{"secret"})
	m.CacheReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "cache_reads_total",
		Help: "Secret reads by the API, by result: hit (served from the cache at once), wait (waited for a first load), coalesced (joined a vault read already in flight).",
	}, []string{"result"})
	m.Watchers = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "watchers",
		Help: "Open WatchSecrets streams.",
	})
}

// defineAccessTokenMetrics defines the GetAccessToken series, by scope.
func (m *Metrics) defineAccessTokenMetrics() {
	m.AccessTokenFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "access_token_fetches_total",
		Help: "Access token fetches for GetAccessToken from the sidecar's credential, by scope (one of accessTokens.scopes) and result (success, error).",
	}, []string{"scope", "result"})
	m.AccessTokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "access_token_expiry_timestamp_seconds",
		Help: "Unix time the cached access token of a scope (one of accessTokens.scopes) expires; absent until the first token is fetched.",
	}, []string{"scope"})
}

// defineGRPCMetrics defines the gRPC server series. They carry no namespace:
// grpc_server_* are the names gRPC server metrics usually have.
func (m *Metrics) defineGRPCMetrics() {
	m.GRPCHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total",
		Help: "RPCs completed on the server, by type, service, method and gRPC status code.",
	}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"})
	m.GRPCHandling = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grpc_server_handling_seconds",
		Help:    "Time to complete an RPC on the server, by type, service and method.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"grpc_type", "grpc_service", "grpc_method"})
}

// register registers every metric, plus the Go runtime and process
// collectors, on reg. A clash panics: it is a programming error (every
// Metrics needs a registry of its own).
func (m *Metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(
		m.VaultRequests, m.VaultDuration, m.Refresh, m.LastSuccess, m.Expiry, m.Stale,
		m.CacheReads, m.Watchers, m.TokenRequests, m.BuildInfo, m.VaultThrottled, m.GRPCHandled, m.GRPCHandling,
		m.AccessTokenFetches, m.AccessTokenExpiry,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

// initSeries sets the build info and creates the series of the closed label
// sets up front, so a scrape shows them (at 0) before the first event, and
// resolves the cache read counters for the hot read path.
func (m *Metrics) initSeries(declared []string, version string) {
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.ReadHitCounter = m.CacheReads.WithLabelValues(readHit)
	m.ReadWaitCounter = m.CacheReads.WithLabelValues(readWait)
	m.ReadCoalescedCounter = m.CacheReads.WithLabelValues(readCoalesced)
	m.VaultDuration.WithLabelValues("get")
	m.TokenRequests.WithLabelValues("success")
	m.TokenRequests.WithLabelValues("error")
	m.VaultThrottled.WithLabelValues(PhaseStartup)
	m.VaultThrottled.WithLabelValues(PhaseSteady)
	for _, name := range declared {
		for _, r := range []string{RefreshChanged, RefreshUnchanged, RefreshError} {
			m.Refresh.WithLabelValues(name, r)
		}
		m.Stale.WithLabelValues(name).Set(0)
	}
}

// InitScopes pre-initialises the fetch series of every declared scope. Scopes
// come from the configuration's allowlist only, so the series are bounded.
func (m *Metrics) InitScopes(scopes []string) {
	for _, s := range scopes {
		m.AccessTokenFetches.WithLabelValues(s, FetchSuccess)
		m.AccessTokenFetches.WithLabelValues(s, FetchError)
	}
}

// InitMethod pre-initialises the series of one gRPC method, named as in
// grpc.ServerInfo ("/pkg.Service/Method"); streaming says whether it streams
// from the server.
func (m *Metrics) InitMethod(fullMethod string, streaming bool) {
	service, method := splitMethod(fullMethod)
	typ := "unary"
	if streaming {
		typ = "server_stream"
	}
	mm := &Method{handling: m.GRPCHandling.WithLabelValues(typ, service, method)}
	for c := range mm.handled {
		mm.handled[c] = m.GRPCHandled.WithLabelValues(typ, service, method, codes.Code(c).String())
	}
	m.methods[fullMethod] = mm
}

// Method returns the resolved series of a method set up with InitMethod, or nil.
// Call InitMethod for every method before serving: the map is not locked.
func (m *Metrics) Method(fullMethod string) *Method { return m.methods[fullMethod] }

// splitMethod splits "/pkg.Service/Method" into service and method.
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// StatusCode is the code label of a vault response.
func StatusCode(code int) string {
	switch code {
	case 200:
		return "200"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 429:
		return "429"
	}
	return strconv.Itoa(code)
}
