package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

var errLevel = errors.New("not one of debug, info, warn, error")

// ParseLevel turns log.level into a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is %w", s, errLevel)
}

// validate checks the log section.
func (l Log) validate(ps *Problems) {
	if _, err := ParseLevel(l.Level); err != nil {
		ps.add("log.level", "%v", err)
	}
	if l.Format != "json" && l.Format != "text" {
		ps.add("log.format", "%q is not one of json, text", l.Format)
	}
}
