package chartcheck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The offline check of azure-pipelines.yml. No package on a registry this machine reaches ships
// the Azure Pipelines schema (the VS Code extension holds it; the npm language server does not),
// so the file is decoded strictly into types that hold only the keys of the Azure Pipelines YAML
// schema this pipeline may use, every task is looked up in an allowlist written from each task's
// documented inputs, and the wiring a typo would break (variables, stage outputs, dependsOn,
// the repository's version pins) is checked. What stays unchecked offline: that the service
// connection, environment and variable group exist, and the tasks' behaviour.

type pipeline struct {
	Trigger   branchFilter `yaml:"trigger"`
	PR        branchFilter `yaml:"pr"`
	Variables []variable   `yaml:"variables"`
	Pool      pool         `yaml:"pool"`
	Stages    []stage      `yaml:"stages"`
}

type branchFilter struct {
	Branches struct {
		Include []string `yaml:"include"`
		Exclude []string `yaml:"exclude"`
	} `yaml:"branches"`
}

type variable struct {
	Group    string `yaml:"group"`
	Name     string `yaml:"name"`
	Value    string `yaml:"value"`
	ReadOnly bool   `yaml:"readonly"`
}

type pool struct {
	VMImage string `yaml:"vmImage"`
	Name    string `yaml:"name"`
}

type stage struct {
	Stage       string            `yaml:"stage"`
	DisplayName string            `yaml:"displayName"`
	DependsOn   string            `yaml:"dependsOn"`
	Condition   string            `yaml:"condition"`
	Variables   map[string]string `yaml:"variables"`
	Jobs        []job             `yaml:"jobs"`
}

type job struct {
	Job              string            `yaml:"job"`
	Deployment       string            `yaml:"deployment"`
	DisplayName      string            `yaml:"displayName"`
	DependsOn        string            `yaml:"dependsOn"`
	Condition        string            `yaml:"condition"`
	TimeoutInMinutes int               `yaml:"timeoutInMinutes"`
	Pool             *pool             `yaml:"pool"`
	Variables        map[string]string `yaml:"variables"`
	Environment      string            `yaml:"environment"`
	Strategy         *struct {
		RunOnce struct {
			Deploy struct {
				Steps []step `yaml:"steps"`
			} `yaml:"deploy"`
		} `yaml:"runOnce"`
	} `yaml:"strategy"`
	Steps []step `yaml:"steps"`
}

type step struct {
	Task             string            `yaml:"task"`
	Script           string            `yaml:"script"`
	Checkout         string            `yaml:"checkout"`
	Name             string            `yaml:"name"`
	DisplayName      string            `yaml:"displayName"`
	Condition        string            `yaml:"condition"`
	ContinueOnError  bool              `yaml:"continueOnError"`
	TimeoutInMinutes int               `yaml:"timeoutInMinutes"`
	Inputs           map[string]string `yaml:"inputs"`
	Env              map[string]string `yaml:"env"`
}

// steps are the job's steps, wherever the job kind keeps them.
func (j job) steps() []step {
	if j.Strategy != nil {
		return j.Strategy.RunOnce.Deploy.Steps
	}
	return j.Steps
}

func (j job) name() string { return j.Job + j.Deployment }

// taskSpec is one task version's documented inputs: required ones, and every accepted name
// (aliases included). Written from the task reference pages on learn.microsoft.com.
type taskSpec struct {
	required []string
	allowed  []string
	enums    map[string][]string
}

var knownTasks = map[string]taskSpec{
	// AzureCLI@2: azureSubscription (alias connectedServiceNameARM), scriptType, scriptLocation
	// (default scriptPath; inlineScript is required when it is inlineScript).
	"AzureCLI@2": {
		required: []string{"azureSubscription", "scriptType", "scriptLocation"},
		allowed: []string{"azureSubscription", "connectedServiceNameARM", "scriptType", "scriptLocation", "scriptPath",
			"inlineScript", "arguments", "scriptArguments", "powerShellErrorActionPreference", "addSpnToEnvironment",
			"useGlobalConfig", "workingDirectory", "cwd", "failOnStandardError", "powerShellIgnoreLASTEXITCODE",
			"visibleAzLogin", "keepAzSessionActive"},
		enums: map[string][]string{"scriptType": {"ps", "pscore", "batch", "bash"}, "scriptLocation": {"inlineScript", "scriptPath"}},
	},
	"GoTool@0":             {required: []string{"version"}, allowed: []string{"version", "goPath", "goBin", "goDownloadUrl"}},
	"Cache@2":              {required: []string{"key", "path"}, allowed: []string{"key", "path", "restoreKeys", "cacheHitVar"}},
	"HelmInstaller@1":      {allowed: []string{"helmVersionToInstall"}},
	"KubeloginInstaller@0": {allowed: []string{"kubeloginVersion"}},
}

// predefined are the system variables this pipeline reads.
var predefined = []string{"Build.SourceVersion", "Build.SourceBranch", "Agent.OS", "Pipeline.Workspace"}

// groupVariables are the variables the variable group must hold (docs/aks.md lists them).
var groupVariables = []string{"vaultUrl", "workloadIdentityClientId", "sqlCIDR"}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func repoRoot(t *testing.T) string {
	t.Helper()
	charts, err := ChartsDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(charts)
}

// decodePipeline decodes strictly: an unknown key, a duplicate key or a wrong type fails.
func decodePipeline(b []byte) (pipeline, error) {
	var p pipeline
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("azure-pipelines.yml: %w", err)
	}
	return p, nil
}

// checkPipeline returns every problem it finds in a decoded pipeline.
func checkPipeline(p pipeline) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	defined := map[string]bool{}
	for _, v := range predefined {
		defined[v] = true
	}
	hasGroup := false
	for _, v := range p.Variables {
		switch {
		case v.Group != "" && v.Name == "":
			hasGroup = true
			for _, g := range groupVariables {
				defined[g] = true
			}
		case v.Name != "" && v.Group == "":
			defined[v.Name] = true
		default:
			add("variable entry %+v: want either group or name/value", v)
		}
	}
	if !hasGroup {
		add("no variable group: vaultUrl, workloadIdentityClientId and sqlCIDR have no source")
	}
	if p.Pool.VMImage == "" && p.Pool.Name == "" {
		add("no pool")
	}

	stageNames := map[string]bool{}
	jobsOf := map[string]map[string]job{}
	for _, s := range p.Stages {
		if !identifier.MatchString(s.Stage) {
			add("stage name %q is not an identifier", s.Stage)
		}
		if stageNames[s.Stage] {
			add("stage %s defined twice", s.Stage)
		}
		if s.DependsOn != "" && !stageNames[s.DependsOn] {
			add("stage %s depends on %q, which is not an earlier stage", s.Stage, s.DependsOn)
		}
		stageNames[s.Stage] = true
		jobsOf[s.Stage] = map[string]job{}
		for _, j := range s.Jobs {
			if (j.Job == "") == (j.Deployment == "") {
				add("stage %s: a job needs exactly one of job or deployment", s.Stage)
			}
			if !identifier.MatchString(j.name()) {
				add("job name %q is not an identifier", j.name())
			}
			if j.Deployment != "" && (j.Environment == "" || j.Strategy == nil) {
				add("deployment %s needs an environment and a strategy", j.Deployment)
			}
			if j.Deployment == "" && (j.Environment != "" || j.Strategy != nil) {
				add("job %s: environment and strategy belong to a deployment job", j.Job)
			}
			if len(j.steps()) == 0 {
				add("job %s has no steps", j.name())
			}
			jobsOf[s.Stage][j.name()] = j
		}
	}

	// Step outputs: name -> variables it sets with isOutput=true.
	outputs := map[string]map[string]bool{} // "stage.job.step" -> vars
	setOutput := regexp.MustCompile(`##vso\[task\.setvariable variable=([A-Za-z0-9_]+);isOutput=true\]`)
	for _, s := range p.Stages {
		for _, j := range s.Jobs {
			for _, st := range j.steps() {
				body := st.Script + st.Inputs["inlineScript"]
				for _, m := range setOutput.FindAllStringSubmatch(body, -1) {
					if st.Name == "" {
						add("job %s: a step sets output %s but has no name to reference it by", j.name(), m[1])
						continue
					}
					key := s.Stage + "." + j.name() + "." + st.Name
					if outputs[key] == nil {
						outputs[key] = map[string]bool{}
					}
					outputs[key][m[1]] = true
				}
			}
		}
	}
	stageDep := regexp.MustCompile(`^\$\[ stageDependencies\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\.outputs\['([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)'\] \]$`)
	macro := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.]*)\)`)
	template := regexp.MustCompile(`\$\{\{ variables\.([A-Za-z0-9_]+) \}\}`)

	for _, s := range p.Stages {
		for _, j := range s.Jobs {
			local := map[string]bool{}
			for k, v := range j.Variables {
				local[k] = true
				if strings.HasPrefix(v, "$[") {
					m := stageDep.FindStringSubmatch(v)
					if m == nil {
						add("job %s: variable %s = %q is not a stageDependencies output reference", j.name(), k, v)
						continue
					}
					if !outputs[m[1]+"."+m[2]+"."+m[3]][m[4]] {
						add("job %s: variable %s reads %s.%s step %s output %s, which no step sets", j.name(), k, m[1], m[2], m[3], m[4])
					}
					if m[1] != s.DependsOn {
						add("job %s: reads outputs of stage %s, but its stage depends on %q", j.name(), m[1], s.DependsOn)
					}
				}
			}
			for _, st := range j.steps() {
				kinds := 0
				for _, set := range []bool{st.Task != "", st.Script != "", st.Checkout != ""} {
					if set {
						kinds++
					}
				}
				if kinds != 1 {
					add("job %s: a step needs exactly one of task, script or checkout (%q)", j.name(), st.DisplayName)
				}
				if st.Name != "" && !identifier.MatchString(st.Name) {
					add("step name %q is not an identifier", st.Name)
				}
				if st.Task != "" {
					probs = append(probs, checkTask(j.name(), st)...)
				}
				var texts []string
				texts = append(texts, st.Script, st.DisplayName)
				for _, v := range st.Inputs {
					texts = append(texts, v)
				}
				for _, v := range st.Env {
					texts = append(texts, v)
				}
				for _, text := range texts {
					for _, m := range macro.FindAllStringSubmatch(text, -1) {
						if !defined[m[1]] && !local[m[1]] {
							add("job %s: $(%s) is not defined (pipeline, job or predefined variable)", j.name(), m[1])
						}
					}
					for _, m := range template.FindAllStringSubmatch(text, -1) {
						if !defined[m[1]] {
							add("job %s: ${{ variables.%s }} is not a pipeline variable", j.name(), m[1])
						}
					}
				}
			}
		}
	}
	return probs
}

func checkTask(jobName string, st step) []string {
	var probs []string
	spec, ok := knownTasks[st.Task]
	if !ok {
		return []string{fmt.Sprintf("job %s: task %s is not in the allowlist of checked tasks", jobName, st.Task)}
	}
	for _, r := range spec.required {
		if st.Inputs[r] == "" {
			probs = append(probs, fmt.Sprintf("job %s: task %s lacks required input %s", jobName, st.Task, r))
		}
	}
	for k, v := range st.Inputs {
		if !slices.Contains(spec.allowed, k) {
			probs = append(probs, fmt.Sprintf("job %s: task %s has no input %s", jobName, st.Task, k))
		}
		if enum, ok := spec.enums[k]; ok && !slices.Contains(enum, v) {
			probs = append(probs, fmt.Sprintf("job %s: task %s input %s = %q, want one of %v", jobName, st.Task, k, v, enum))
		}
	}
	if st.Task == "AzureCLI@2" && st.Inputs["scriptLocation"] == "inlineScript" && st.Inputs["inlineScript"] == "" {
		probs = append(probs, fmt.Sprintf("job %s: AzureCLI@2 with scriptLocation inlineScript needs inlineScript", jobName))
	}
	if strings.HasPrefix(st.Inputs["azureSubscription"], "$(") {
		probs = append(probs, fmt.Sprintf("job %s: azureSubscription must be known when the run is queued: use ${{ variables.x }}, not a macro", jobName))
	}
	return probs
}

func readPipeline(t *testing.T) ([]byte, pipeline) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "azure-pipelines.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodePipeline(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

// TestPipeline checks azure-pipelines.yml's structure, tasks and wiring.
func TestPipeline(t *testing.T) {
	_, p := readPipeline(t)
	for _, prob := range checkPipeline(p) {
		t.Error(prob)
	}
	var names []string
	for _, s := range p.Stages {
		names = append(names, s.Stage)
	}
	if want := []string{"Test", "Build", "Deploy", "Verify"}; !slices.Equal(names, want) {
		t.Errorf("stages %v, want %v", names, want)
	}
}

// TestPipelineDoesWhatTheDocsSay: the commands the issue asks for are there, and the pins
// match the repository's own (one owner per fact: tools/pins/helm/go.mod, Dockerfile.app).
func TestPipelineDoesWhatTheDocsSay(t *testing.T) {
	raw, p := readPipeline(t)
	text := string(raw)
	for _, want := range []string{
		"make test\n", "make test-slow",
		"az acr run --registry \"$(acrName)\" --file deploy/acr-build.yaml --set tag=\"$(imageTag)\" .",
		"az acr repository show", "--query digest",
		"helm upgrade --install", "--atomic --wait",
		"--set image.digest=\"$(appDigest)\"", "--set secretProxy.image.digest=\"$(sidecarDigest)\"",
		"--set secretProxy.auth.mode=workload-identity", "--set secretProxy.auth.clientId=\"$(workloadIdentityClientId)\"",
		"--set migrations.enabled=true",
		"helm test \"$(releaseName)\"",
		"kubelogin convert-kubeconfig -l azurecli",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("azure-pipelines.yml does not contain %q", want)
		}
	}
	vars := map[string]string{}
	for _, v := range p.Variables {
		vars[v.Name] = v.Value
	}
	root := repoRoot(t)
	helmMod, err := os.ReadFile(filepath.Join(root, "tools", "pins", "helm", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`helm\.sh/helm/v3 (v[0-9.]+)`).FindSubmatch(helmMod); m == nil || string(m[1]) != vars["helmVersion"] {
		t.Errorf("helmVersion %q differs from tools/pins/helm/go.mod (%q)", vars["helmVersion"], m)
	}
	// The test dependencies: the same list as the repository's own CI entry point.
	ciRun, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	deps := regexp.MustCompile(`install-test-deps\.sh --require ([a-z ]+)\n`)
	if m := deps.FindSubmatch(ciRun); m == nil || !strings.Contains(text, "sudo bash tools/scripts/install-test-deps.sh --require "+string(m[1])+"\n") {
		t.Errorf("the Test stage does not install what .ci/run installs (%q)", m)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile.app"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`ARG GO_IMAGE=golang:([0-9.]+)-`).FindSubmatch(dockerfile); m == nil || string(m[1]) != vars["goVersion"] {
		t.Errorf("goVersion %q differs from Dockerfile.app's GO_IMAGE (%q)", vars["goVersion"], m)
	}

	// docs/aks.md names every variable, the group, the service connection and the environment.
	docs, err := os.ReadFile(filepath.Join(root, "docs", "aks.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Clone(groupVariables)
	for _, v := range p.Variables {
		names = append(names, v.Name, v.Group, v.Value)
	}
	for _, s := range p.Stages {
		for _, j := range s.Jobs {
			names = append(names, j.Environment)
		}
	}
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "$[") {
			continue
		}
		if !bytes.Contains(docs, []byte(n)) {
			t.Errorf("docs/aks.md does not mention %q, which azure-pipelines.yml uses", n)
		}
	}
}

// TestPipelineCheckCatches: each check refuses a broken pipeline.
func TestPipelineCheckCatches(t *testing.T) {
	raw, _ := readPipeline(t)
	good := string(raw)
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"unknown key", "    dependsOn: Test\n", "    dependsOn: Test\n    dependson: Test\n", "field dependson not found"},
		{"duplicate key", "  - stage: Test\n", "  - stage: Test\n    stage: Tests\n", "already defined"},
		{"unknown task", "task: GoTool@0", "task: GoTools@0", "GoTools@0 is not in the allowlist"},
		{"misspelt input", "helmVersionToInstall: $(helmVersion)", "helmVersion: $(helmVersion)", "HelmInstaller@1 has no input helmVersion"},
		{"missing required input", "              scriptType: bash\n              scriptLocation: inlineScript\n              inlineScript: |\n                set -euo pipefail\n                # ACR", "              scriptLocation: inlineScript\n              inlineScript: |\n                set -euo pipefail\n                # ACR", "lacks required input scriptType"},
		{"bad enum", "scriptType: bash", "scriptType: sh", "input scriptType = \"sh\""},
		{"undefined variable", "--registry \"$(acrName)\"", "--registry \"$(acrname)\"", "$(acrname) is not defined"},
		{"output never set", "outputs['digests.appDigest']", "outputs['digests.appDigests']", "output appDigests, which no step sets"},
		{"dependsOn unknown stage", "dependsOn: Deploy", "dependsOn: Deploi", "depends on \"Deploi\""},
		{"service connection as a macro", "azureSubscription: ${{ variables.azureServiceConnection }}", "azureSubscription: $(azureServiceConnection)", "must be known when the run is queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.from) {
				t.Fatalf("azure-pipelines.yml no longer contains %q: update the test", tt.from)
			}
			broken := strings.Replace(good, tt.from, tt.to, 1)
			p, err := decodePipeline([]byte(broken))
			var got []string
			if err != nil {
				got = []string{err.Error()}
			} else {
				got = checkPipeline(p)
			}
			if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("want a problem containing %q, got %q", tt.want, got)
			}
		})
	}
}

// acrTask is the subset of the ACR Tasks YAML (v1.1.0) deploy/acr-build.yaml uses.
type acrTask struct {
	Version string `yaml:"version"`
	Steps   []struct {
		ID    string   `yaml:"id"`
		Build string   `yaml:"build"`
		Push  []string `yaml:"push"`
		Env   []string `yaml:"env"`
		When  []string `yaml:"when"`
	} `yaml:"steps"`
}

// TestACRTaskFile: deploy/acr-build.yaml builds both Dockerfiles with BuildKit (they use
// RUN --mount, which the classic builder of `az acr build` refuses) and pushes what it built.
func TestACRTaskFile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "acr-build.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var task acrTask
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&task); err != nil {
		t.Fatalf("deploy/acr-build.yaml: %v", err)
	}
	if task.Version != "v1.1.0" {
		t.Errorf("version %q, want v1.1.0 (the $Registry alias needs it)", task.Version)
	}
	built := map[string]string{} // image -> Dockerfile
	var pushed []string
	ids := map[string]bool{}
	buildRe := regexp.MustCompile(`^-t (\$Registry/[a-z-]+:\{\{\.Values\.tag\}\}) -f (Dockerfile\.[a-z]+) --build-arg VERSION=\{\{\.Values\.tag\}\} \.$`)
	for _, s := range task.Steps {
		for _, w := range s.When {
			if w != "-" && !ids[w] {
				t.Errorf("step %s waits for %q, which is no earlier step", s.ID, w)
			}
		}
		ids[s.ID] = true
		if s.Build != "" {
			m := buildRe.FindStringSubmatch(s.Build)
			if m == nil {
				t.Errorf("step %s: build %q is not -t $Registry/<image>:{{.Values.tag}} -f <Dockerfile> --build-arg VERSION=... .", s.ID, s.Build)
				continue
			}
			if !slices.Contains(s.Env, "DOCKER_BUILDKIT=1") {
				t.Errorf("step %s builds without DOCKER_BUILDKIT=1", s.ID)
			}
			built[m[1]] = m[2]
		}
		pushed = append(pushed, s.Push...)
	}
	for _, df := range []string{"Dockerfile.sidecar", "Dockerfile.app"} {
		found := false
		for _, f := range built {
			found = found || f == df
		}
		if !found {
			t.Errorf("%s is not built", df)
		}
		content, err := os.ReadFile(filepath.Join(root, df))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(content, []byte("RUN --mount=")) {
			t.Logf("%s no longer uses RUN --mount: `az acr build` would do (see docs/aks.md)", df)
		}
	}
	for img := range built {
		if !slices.Contains(pushed, img) {
			t.Errorf("%s is built but not pushed", img)
		}
	}
	if len(pushed) != len(built) {
		t.Errorf("pushed %v, built %v", pushed, built)
	}
}
