package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	log      *slog.Logger
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderapp",
			Name:      "http_requests_total",
			Help:      "HTTP requests answered, by handler (route name), method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orderapp",
			Name:      "http_request_duration_seconds",
			Help:      "Time to answer an HTTP request, by handler (route name) and method.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"handler", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// method keeps the label set closed: anything unusual is "other".
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument counts and times each request under a fixed handler name.
func (m *metrics) instrument(handler string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			meth := method(r.Method)
			m.requests.WithLabelValues(handler, meth, strconv.Itoa(sw.code)).Inc()
			m.duration.WithLabelValues(handler, meth).Observe(time.Since(start).Seconds())
		}()
		defer func() {
			// A panic becomes a plain 500 in the API's error shape: no stack
			// trace reaches the client. http.ErrAbortHandler keeps its meaning.
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, compared as net/http does
					panic(p)
				}
				m.log.Error("handler panicked", "handler", handler, "panic", fmt.Sprint(p))
				if sw.code == 0 {
					writeError(sw, http.StatusInternalServerError, "internal", "internal error; the details are in the application's log")
				}
			}
		}()
		h.ServeHTTP(sw, r)
	})
}
