package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// describingRegisterer records the name of every metric registered through
// it, from each collector's descriptions: a vector with no series yet is
// described, though a Gather would not show it.
type describingRegisterer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqNameRe.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

func (d *describingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestMetricsReferenceCoversRegistry fails when a metric the sidecar
// registers is missing from docs/reference/metrics.md (the standard go_* and
// process_* collectors are covered by their prefix rows), or when the page
// documents a secretproxy_* or grpc_server_* metric the sidecar does not have.
func TestMetricsReferenceCoversRegistry(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "reference", "metrics.md"))
	if err != nil {
		t.Fatalf("read the metrics reference: %v", err)
	}
	doc := string(raw)
	reg := &describingRegisterer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	New(reg, []string{"a"}, "v1.2.3")
	if len(reg.names) < 12 {
		t.Fatalf("recorded only %d metric names: the describing registerer is broken", len(reg.names))
	}
	for name := range reg.names {
		switch {
		case strings.HasPrefix(name, "go_"):
			name = "go_*"
		case strings.HasPrefix(name, "process_"):
			name = "process_*"
		}
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("metric %s is not documented: add a row \"| `%s` | type | labels | meaning |\" to docs/reference/metrics.md", name, name)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `((?:secretproxy|grpc_server)_[a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
		if !reg.names[m[1]] {
			t.Errorf("docs/reference/metrics.md documents %s, which the sidecar does not register", m[1])
		}
	}
}
