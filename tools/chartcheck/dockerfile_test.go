package chartcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/subrequests/lint"
	digest "github.com/opencontainers/go-digest"
)

// offlineResolver answers BuildKit's image lookups with an empty image config, so the lint
// runs without a registry; the rules it checks are about the Dockerfile, not the images.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, digest.FromString(ref), []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}

// dockerfileLint runs BuildKit's Dockerfile lint rules, the same as `docker build --check`.
func dockerfileLint(t *testing.T, name string, dt []byte) *lint.LintResults {
	t.Helper()
	// The source map needs a definition, as the Dockerfile's build context would have.
	src := llb.Local("context")
	sm := llb.NewSourceMap(&src, name, "Dockerfile", dt)
	def, err := src.Marshal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sm.Definition = def
	res, err := dockerfile2llb.DockerfileLint(t.Context(), dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{},
		MetaResolver: offlineResolver{},
		SourceMap:    sm,
	})
	if err != nil {
		t.Fatalf("lint %s: %v", name, err)
	}
	return res
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	dt, err := os.ReadFile(filepath.Join(filepath.Dir(charts), name))
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

var (
	numericUser  = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)
	localReplace = regexp.MustCompile(`=>\s*\.\./([A-Za-z0-9_.-]+)`)
	pinnedByHash = regexp.MustCompile(`^gcr\.io/distroless/static[-a-z0-9]*:nonroot@sha256:[0-9a-f]{64}$`)
)

// TestDockerfiles lints both Dockerfiles and asserts what the images promise: a distroless
// static nonroot runtime pinned by digest, a numeric USER in the final stage, no ADD of a
// remote URL, a static build with -trimpath and version ldflags, cache mounts and OCI labels.
func TestDockerfiles(t *testing.T) {
	for _, name := range []string{"Dockerfile.sidecar", "Dockerfile.app"} {
		t.Run(name, func(t *testing.T) {
			dt := repoFile(t, name)
			res := dockerfileLint(t, name, dt)
			if res.Error != nil {
				t.Errorf("lint build error: %s", res.Error.Message)
			}
			for _, w := range res.Warnings {
				t.Errorf("BuildKit lint %s: %s", w.RuleName, w.Detail)
			}

			for _, p := range imageProblems(t, name, dt) {
				t.Error(p)
			}
			// The module builds alone (GOWORK=off), so every sibling it replaces must be copied.
			module := map[string]string{"Dockerfile.sidecar": "sidecar", "Dockerfile.app": "orderapp"}[name]
			charts, err := ChartsDir()
			if err != nil {
				t.Fatal(err)
			}
			gomod, err := os.ReadFile(filepath.Join(filepath.Dir(charts), module, "go.mod"))
			if err != nil {
				t.Fatal(err)
			}
			dirs := []string{module}
			for _, m := range localReplace.FindAllStringSubmatch(string(gomod), -1) {
				dirs = append(dirs, m[1])
			}
			for _, d := range dirs {
				if !strings.Contains(string(dt), "COPY "+d+"/ /src/"+d+"/") {
					t.Errorf("%s does not copy %s/, which %s/go.mod needs (replace => ../%s)", name, d, module, d)
				}
			}
		})
	}
}

// TestDockerfileChecksCatch shows the lint and the assertions can fail.
func TestDockerfileChecksCatch(t *testing.T) {
	bad := "FROM golang:1.26 as build\nADD https://example.com/tool.tgz /tmp/\nFROM gcr.io/distroless/static-debian12:nonroot\nUSER nonroot\n"
	res := dockerfileLint(t, "bad", []byte(bad))
	rules := map[string]bool{}
	for _, w := range res.Warnings {
		rules[w.RuleName] = true
	}
	if !rules["FromAsCasing"] {
		t.Errorf("BuildKit lint did not report FromAsCasing on 'from ... as'; got rules %v", rules)
	}
	got := strings.Join(imageProblems(t, "bad", []byte(bad)), "\n")
	for _, want := range []string{"pinned by sha256 digest", "ADD of a remote source", "numeric non-root", "CGO_ENABLED=0"} {
		if !strings.Contains(got, want) {
			t.Errorf("the image assertions missed %q; they reported:\n%s", want, got)
		}
	}
}

// imageProblems checks what the images promise: a distroless static nonroot runtime pinned by
// digest, a numeric USER in the final stage, no ADD of a remote URL, a static build with
// -trimpath and version ldflags, cache mounts and OCI labels.
func imageProblems(t *testing.T, name string, dt []byte) []string {
	t.Helper()
	var problems []string
	ast, err := parser.Parse(strings.NewReader(string(dt)))
	if err != nil {
		t.Fatal(err)
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	final := stages[len(stages)-1]
	base := os.Expand(final.BaseName, func(k string) string { return args[k] })
	if !pinnedByHash.MatchString(base) {
		problems = append(problems, fmt.Sprintf("final stage FROM %q (= %q): want distroless static nonroot pinned by sha256 digest", final.BaseName, base))
	}
	var user string
	for _, s := range stages {
		for _, cmd := range s.Commands {
			switch c := cmd.(type) {
			case *instructions.AddCommand:
				for _, src := range c.SourcePaths {
					if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
						problems = append(problems, fmt.Sprintf("ADD of a remote source %q: download in a build stage and verify it instead", src))
					}
				}
			case *instructions.UserCommand:
				if s.Name == final.Name {
					user = c.User
				}
			}
		}
	}
	if !numericUser.MatchString(user) || strings.HasPrefix(user, "0") {
		problems = append(problems, fmt.Sprintf("final stage USER %q: want a numeric non-root uid[:gid]", user))
	}
	text := string(dt)
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X `, "main.version=${VERSION}",
		"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build",
		"org.opencontainers.image.source=", "org.opencontainers.image.version=",
	} {
		if !strings.Contains(text, want) {
			problems = append(problems, fmt.Sprintf("%s lacks %q", name, want))
		}
	}
	return problems
}
