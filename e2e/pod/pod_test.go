package pod

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStartReady: a server that answers its ready URL is returned running; a
// program that exits first is reported at once with its output, not after the
// context's deadline.
func TestStartReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	p, err := StartReady(t.Context(), Spec{Name: "sleeper", Path: "sleep", Args: []string{"60"}}, srv.URL)
	if err != nil {
		t.Fatalf("StartReady: %v", err)
	}
	select {
	case <-p.Done():
		t.Fatalf("the program exited: %v", p.ExitErr())
	default:
	}
	p.Stop(5 * time.Second)

	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	start := time.Now()
	_, err = StartReady(t.Context(), Spec{Name: "quitter", Path: "sh", Args: []string{"-c", "echo giving up; exit 3"}}, unready.URL)
	if err == nil || !strings.Contains(err.Error(), "quitter not ready") || !strings.Contains(err.Error(), "giving up") ||
		!strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("StartReady of a program that exits: %v; want its name, exit status and output", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("StartReady took %s to notice the exit", took)
	}
}

// TestStdoutApart: a program's standard output given its own writer is not
// kept with its log lines (stderr), which stay searchable.
func TestStdoutApart(t *testing.T) {
	var out strings.Builder
	p, err := Start(Spec{Name: "export", Path: "sh", Args: []string{"-c", "echo data-line; echo log-line >&2"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ExitErr(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "data-line" {
		t.Errorf("stdout = %q, want data-line", got)
	}
	if got := p.Output(); got != "log-line" {
		t.Errorf("Output() = %q, want only the log line", got)
	}
	if p.PeakRSS() <= 0 {
		t.Errorf("PeakRSS() = %d after the exit, want the peak", p.PeakRSS())
	}
}

func TestMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP x_total a counter\n# TYPE x_total counter\n"+
			"x_total{result=\"success\"} 3\nx_total{result=\"failure\"} 1.5\nx_total_other 9\n")
	}))
	defer srv.Close()
	for series, want := range map[string]float64{
		`x_total{result="success"}`: 3,
		`x_total{result="failure"}`: 1.5,
		`x_total{result="absent"}`:  0,
		`x_total`:                   0, // a prefix of other series is not one of them
	} {
		got, err := Metric(t.Context(), srv.URL, series)
		if err != nil || got != want {
			t.Errorf("Metric(%s) = %v, %v; want %v", series, got, err, want)
		}
	}
}
