package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// referencePath is the configuration reference, docs/reference/config.md.
var referencePath = filepath.Join("..", "..", "..", "docs", "reference", "config.md")

// fieldPaths returns the YAML path of every field of t, depth first, with
// "[]" for a list's elements: "vault", "vault.url", "secrets", "secrets[].name".
func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		p := join(prefix, strings.Split(tag, ",")[0])
		out = append(out, p)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			if ft.Kind() == reflect.Struct {
				out = append(out, fieldPaths(ft, p+"[]")...)
			}
			continue
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, fieldPaths(ft, p)...)
		}
	}
	return out
}

// referenceRows returns the rows of config.md's field table: path -> cells
// after the path (type, default, meaning).
func referenceRows(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("read the configuration reference: %v", err)
	}
	rows := map[string][]string{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[strings.Trim(cells[0], "`")] = cells[1:]
	}
	return rows
}

// TestConfigReferenceCoversEveryField fails when a field of Config has no row
// in docs/reference/config.md, or a row names a field that does not exist: a
// new field is documented in the same change that adds it.
func TestConfigReferenceCoversEveryField(t *testing.T) {
	rows := referenceRows(t)
	paths := fieldPaths(reflect.TypeFor[Config](), "")
	if len(paths) < 30 {
		t.Fatalf("found only %d field paths: the reflection walk is broken", len(paths))
	}
	known := map[string]bool{}
	for _, p := range paths {
		known[p] = true
		if _, ok := rows[p]; !ok {
			t.Errorf("config field %s is not documented: add a row \"| `%s` | type | default | meaning |\" to docs/reference/config.md", p, p)
		}
	}
	for p, cells := range rows {
		// The field table has four columns; other tables (flags,
		// endpoints) have fewer and are not about fields.
		if len(cells) != 3 || strings.HasPrefix(p, "--") || strings.HasPrefix(p, "GET ") {
			continue
		}
		if !known[p] {
			t.Errorf("docs/reference/config.md documents %s, which Config does not have", p)
		}
	}
}

// TestDefaultsMatchReference checks every default the reference writes as a
// value (a default cell that starts with a backquoted value) against
// Default(), and a list element's fields against their zero value.
func TestDefaultsMatchReference(t *testing.T) {
	rows := referenceRows(t)
	def := reflect.ValueOf(Default())
	checked := 0
	for _, p := range fieldPaths(reflect.TypeFor[Config](), "") {
		cells, ok := rows[p]
		if !ok || len(cells) != 3 || !strings.HasPrefix(cells[1], "`") {
			continue // reported by TestConfigReferenceCoversEveryField, or not a literal default
		}
		doc := strings.SplitN(cells[1], "`", 3)[1]
		v, ok := valueAt(def, p)
		if !ok {
			t.Errorf("%s: no value in Default()", p)
			continue
		}
		checked++
		if msg := sameDefault(v, doc); msg != "" {
			t.Errorf("%s: docs/reference/config.md says the default is %q, %s", p, doc, msg)
		}
	}
	if checked < 15 {
		t.Errorf("checked only %d defaults: the table's default column is not being read", checked)
	}
}

// valueAt follows a field path from v; "a[].b" reads b of a zero element.
func valueAt(v reflect.Value, path string) (reflect.Value, bool) {
	for part := range strings.SplitSeq(path, ".") {
		name, elem := strings.CutSuffix(part, "[]")
		found := false
		for i := range v.NumField() {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
		if elem {
			v = reflect.Zero(v.Type().Elem())
		}
	}
	return v, true
}

// sameDefault compares the code's default v with the reference's text; it
// returns "" when they agree, else what the code says.
func sameDefault(v reflect.Value, doc string) string {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(doc)
		if err != nil {
			return "which is not a duration"
		}
		if d != time.Duration(v.Int()) {
			return "the code says " + time.Duration(v.Int()).String()
		}
	case v.Kind() == reflect.String:
		want := doc
		if doc == `""` {
			want = ""
		}
		if v.String() != want {
			return "the code says " + strconv.Quote(v.String())
		}
	case v.Kind() == reflect.Bool:
		if strconv.FormatBool(v.Bool()) != doc {
			return "the code says " + strconv.FormatBool(v.Bool())
		}
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(doc, 64)
		if err != nil || f != v.Float() {
			return "the code says " + strconv.FormatFloat(v.Float(), 'g', -1, 64)
		}
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(doc, 10, 64)
		if err != nil || n != v.Int() {
			return "the code says " + strconv.FormatInt(v.Int(), 10)
		}
	case v.Kind() == reflect.Slice:
		if doc != "[]" || v.Len() != 0 {
			return "the code's default has " + strconv.Itoa(v.Len()) + " elements"
		}
	default:
		return "a " + v.Kind().String() + " default the test cannot compare: write it in words, not as a value"
	}
	return ""
}
