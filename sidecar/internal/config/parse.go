package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads and parses a configuration file over the defaults. It does not
// validate: apply the flags first, then call Validate.
func LoadFile(path string) (Config, error) {
	cfg, ps, err := loadFile(path)
	if err != nil {
		return cfg, err
	}
	return cfg, ps.err()
}

// loadFile is LoadFile with the file's located problems apart from the two
// errors that stand alone (unreadable, not YAML), so that Load can add the
// validation's problems to them.
func loadFile(path string) (Config, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	return parse(data)
}

// Parse decodes YAML over the defaults. Unknown keys and values of the wrong
// type are reported together, each with its YAML path, as Problems; a file that
// is not YAML at all as a *SyntaxError, alone.
//
// The file is walked as a yaml.Node tree rather than decoded in one go, because
// yaml.v3's KnownFields reports line numbers and stops on the first bad field;
// operators need the path of every problem at once.
func Parse(data []byte) (Config, error) {
	cfg, ps, err := parse(data)
	if err != nil {
		return cfg, err
	}
	return cfg, ps.err()
}

// parse is Parse with the located problems apart from a syntax error.
func parse(data []byte) (Config, Problems, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil, nil // an empty file: validation says what is missing
		}
		// Alone: the walk of a document that did not parse would only
		// invent "required" errors after it.
		return cfg, nil, &SyntaxError{err: err}
	}
	var ps Problems
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		ps.add("", "more than one YAML document; put the whole configuration in one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return cfg, ps, nil
	}
	w := walker{}
	w.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	return cfg, append(ps, w.problems...), nil
}

// SyntaxError is a file that is not YAML at all. It is reported alone.
type SyntaxError struct{ err error }

func (e *SyntaxError) Error() string { return fmt.Sprintf("not valid YAML: %v", e.err) }

func (e *SyntaxError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrInvalid) true for a syntax error.
func (e *SyntaxError) Is(target error) bool { return target == ErrInvalid }

// isSyntaxError reports whether err is a YAML syntax error from Parse.
func isSyntaxError(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}

type walker struct {
	problems Problems
	depth    int
}

// maxDepth bounds the walk: the configuration is 3 levels deep, and a
// self-referencing alias must not recurse for ever.
const maxDepth = 8

func (w *walker) add(path string, format string, args ...any) {
	if path == "" {
		path = "(root)"
	}
	w.problems = append(w.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeOf(Duration(0))

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode sets v from n, recording a problem at path for whatever does not fit.
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		w.add(path, "nested too deep")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // keep the default
	}
	switch {
	case v.Type() == durationType:
		w.decodeDuration(n, v, path)
	case v.Kind() == reflect.Struct:
		w.decodeMapping(n, v, path)
	case v.Kind() == reflect.Slice:
		w.decodeList(n, v, path)
	default:
		w.decodeScalar(n, v, path)
	}
}

func (w *walker) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		w.add(path, "want a duration such as 30s or 5m")
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		if n.Value == "0" {
			v.SetInt(0)
			return
		}
		w.add(path, "%q is not a duration such as 30s or 5m", n.Value)
		return
	}
	v.SetInt(int64(d))
}

// decodeMapping sets the fields of struct v by their yaml tags; an unknown or
// repeated key is a problem, and the walk goes on to the next key.
func (w *walker) decodeMapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		w.add(path, "want a mapping of keys")
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	known := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if seen[k.Value] {
			w.add(kp, "set twice")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			w.add(kp, "unknown key (known here: %s)", strings.Join(known, ", "))
			continue
		}
		w.decode(val, v.Field(idx), kp)
	}
}

func (w *walker) decodeList(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		w.add(path, "want a list")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		w.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (w *walker) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		w.add(path, "want a single %s value", kindName(v.Kind()))
		return
	}
	// Strings must be written as strings: a bare `version: 1234` or
	// `name: yes` is a YAML number or boolean, and quietly turning it
	// into text hides typos.
	if v.Kind() == reflect.String && n.Tag != "!!str" {
		w.add(path, "want a string, got %s %q (quote it)", strings.TrimPrefix(n.Tag, "!!"), n.Value)
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		w.add(path, "want a %s, got %q", kindName(v.Kind()), n.Value)
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Int64:
		return "whole number"
	case reflect.Float64:
		return "number"
	default:
		return k.String()
	}
}
