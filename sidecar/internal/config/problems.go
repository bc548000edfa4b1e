package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/secretproxy/secretproxy/sidecar/internal/problem"
)

// ErrInvalid matches (errors.Is) every error that says the configuration is
// wrong, as opposed to a runtime failure: Problems and a YAML syntax error. The
// binary exits 2 on it, also when app.New finds a problem Load did not (the
// environment changed in between).
var ErrInvalid = errors.New("invalid configuration")

// Problem is one configuration error, located by its YAML path. The record
// is package problem's, so that a backend's own sections (kvconfig) report
// problems this package appends to its own.
type Problem = problem.Problem

// Problems is every configuration error found at once.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// Is makes errors.Is(err, ErrInvalid) true for Problems.
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// add records one problem at path; each section's check calls it.
func (ps *Problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// err returns ps as an error, or nil when there is no problem (a nil
// Problems in an error interface would not be nil).
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}
