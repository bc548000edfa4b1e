// Command effective prints, as JSON, the sidecar's defaults and the
// configuration a file loads to, each flattened to YAML path -> value, so
// that a check outside this module can compare them with the real loader
// (tools/chartcheck's TestChartDefaultsAreTheBinarys: the chart's rendered
// configuration may not restate or change a default). It reads the file alone
// (Load with FileOnly), as `secret-proxy --check --config-only` does.
//
//	go run ./internal/config/effective FILE
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/secretproxy/secretproxy/sidecar/internal/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: effective FILE")
		os.Exit(2)
	}
	cfg, err := config.Load(config.Source{Path: os.Args[1], FileOnly: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "effective: %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	out := map[string]map[string]string{
		"default": flatten(reflect.ValueOf(config.Default()), ""),
		"loaded":  flatten(reflect.ValueOf(cfg), ""),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "effective: %v\n", err)
		os.Exit(1)
	}
}

var durationType = reflect.TypeFor[config.Duration]()

// flatten maps every leaf of v to its YAML path ("refresh.interval"); a list
// is one leaf, written as JSON.
func flatten(v reflect.Value, prefix string) map[string]string {
	out := map[string]string{}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		f := v.Field(i)
		switch {
		case f.Type() == durationType:
			out[path] = time.Duration(f.Int()).String()
		case f.Kind() == reflect.Struct:
			for k, s := range flatten(f, path) {
				out[k] = s
			}
		case f.Kind() == reflect.Slice:
			b, err := json.Marshal(f.Interface())
			if err != nil {
				panic(err) // plain strings, ints and structs of them always marshal
			}
			out[path] = string(b)
		default:
			out[path] = fmt.Sprint(f.Interface())
		}
	}
	return out
}
