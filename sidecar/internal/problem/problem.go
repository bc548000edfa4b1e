// Package problem is the record of a configuration problem, located by its
// YAML path. It is a leaf so that every owner of a configuration section (the
// config package for the neutral ones, each backend for its own) reports
// problems of one kind, and a load returns all of them at once
// (config.Problems).
package problem

import (
	"errors"
	"fmt"
	"io/fs"
)

// Problem is one configuration error, located by its YAML path.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// List is the problems one section's check found. The configuration package
// appends every section's list to its own config.Problems, the error a load
// returns.
type List []Problem

// Add appends a problem at path with a formatted message.
func (l *List) Add(path, format string, args ...any) {
	*l = append(*l, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Has reports whether some problem is at path.
func (l List) Has(path string) bool {
	for _, p := range l {
		if p.Path == path {
			return true
		}
	}
	return false
}

// PathErr drops the path an *fs.PathError repeats, for a message that names
// the path already.
func PathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
