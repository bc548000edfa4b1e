package config

// Source is where a configuration comes from: the file, the command-line
// overrides, and the environment its files and workload identity are checked in.
type Source struct {
	// Path is the YAML file.
	Path string
	// Overrides are the flags, applied over the file before validation.
	Overrides Overrides
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// FileOnly checks the configuration alone, not the socket directory,
	// token file and environment it points at (--check --config-only, in CI
	// away from the pod).
	FileOnly bool
}

// Load is the one way the binary gets its configuration: the defaults, the
// file over them, the overrides over that, then every section's validation
// and, for a configuration without problems, its environment. It returns
// every problem at once as Problems with their YAML paths (the file's unknown
// keys and wrong types together with the validation's), except two errors
// that stand alone: a file that cannot be read, and a file that is not YAML
// (*SyntaxError), after which any further problem would be invented.
func Load(src Source) (Config, error) {
	cfg, ps, err := loadFile(src.Path)
	if err != nil {
		return cfg, err
	}
	src.Overrides.Apply(&cfg)
	ps = append(ps, cfg.problems()...)
	// The environment only once the configuration stands: a socket
	// directory is not worth checking under a path that is already wrong.
	if len(ps) == 0 && !src.FileOnly {
		ps = cfg.checkEnvironment(src.Getenv)
	}
	return cfg, ps.err()
}
