// Command kube-schemas writes kubeconform's strict JSON schemas for the kinds the charts render,
// generated offline from k8s.io/kubernetes@v1.37.2's OpenAPI document and the PodMonitor CRD,
// into the directory -out. Use them with
//
//	kubeconform -strict -schema-location '<out>/{{ .ResourceKind }}{{ .KindSuffix }}.json' FILE...
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/secretproxy/secretproxy/tools/chartcheck"
)

func main() {
	out := flag.String("out", "", "directory to write the schemas into (created if missing)")
	flag.Parse()
	if err := run(*out); err != nil {
		slog.Error("kube-schemas failed", "err", err)
		os.Exit(1)
	}
}

func run(out string) error {
	if out == "" {
		return fmt.Errorf("-out is required: the directory to write the schemas into")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	if err := chartcheck.GenerateAllSchemas(out); err != nil {
		return fmt.Errorf("generate schemas: %w", err)
	}
	fmt.Println(chartcheck.SchemaLocation(out))
	return nil
}
