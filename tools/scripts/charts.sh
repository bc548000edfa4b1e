#!/usr/bin/env bash
# charts.sh TIER: the chart and Dockerfile checks, one entry point per tier. Every check lives
# in one place, the Go tests of tools/chartcheck; this script builds (or finds cached) the
# pinned binaries they need, renders files for people to read, and runs the tests. helm lint
# and kubeconform run once per tier.
#   lint   `make charts`:    helm template for every ci values file into bin/charts/ (to read),
#                            then chartcheck's helm lint --strict and kubeconform -strict tests
#   test   `make test`:      go test tools/chartcheck: Helm SDK render + strict decode, helm lint,
#                            Pod Security restricted, kubeconform, helm-unittest suites,
#                            secret-proxy --check, BuildKit Dockerfile lint, the pipeline
#   slow   `make test-slow`: real etcd + kube-apiserver v1.37.2, server-side dry run of every
#                            rendered chart in a namespace enforcing Pod Security restricted
# Tools are built once from their pin modules (tools/pins/helm, tools/pins/helm-unittest,
# tools/pins/kube-apiserver) and cached in ${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tier=${1:?usage: charts.sh lint|test|slow}
export GOFLAGS=-modcacherw
kube_version=1.37.2
step() { printf '==> %s\n' "$*"; }

# chartcheck ARGS...: go test in tools/chartcheck through the test summariser.
chartcheck() {
	(cd "$root/tools/chartcheck" && GOWORK=off "$root/tools/scripts/go-test.sh" tools/chartcheck -count=1 "$@" .)
}

case $tier in
lint)
	helm=$("$root/tools/scripts/build-tool.sh" helm)
	out=$root/bin/charts
	mkdir -p "$out"
	for values in "$root"/charts/orderapp/ci/*-values.yaml; do
		name=$(basename "$values" -values.yaml)
		step "helm template orderapp -f ci/$(basename "$values") > bin/charts/$name.yaml"
		"$helm" template orders "$root/charts/orderapp" --namespace shop --kube-version "$kube_version" \
			-f "$values" 2> >(grep -v 'found symbolic link' >&2) >"$out/$name.yaml"
	done
	step "go test tools/chartcheck -run 'TestHelmLint|TestKubeconform' (helm lint --strict, kubeconform -strict)"
	chartcheck -run '^(TestHelmLint|TestKubeconform)'
	;;
test)
	# A cold helm-unittest build takes minutes: it runs here, outside go test's timeout, and
	# TestHelmUnittest then finds it cached.
	step "build (or reuse the cached) helm-unittest"
	"$root/tools/scripts/build-tool.sh" helm-unittest >/dev/null
	step "go test tools/chartcheck (render, strict decode, helm lint, Pod Security, kubeconform, helm-unittest, --check, Dockerfiles)"
	chartcheck
	;;
slow)
	# The cold build takes about 8 minutes on 2 idle cores and far longer on a busy machine:
	# it runs as its own step, outside go test's timeout, and the test then finds it cached.
	step "build (or reuse the cached) kube-apiserver and kubectl v$kube_version"
	"$root/tools/scripts/build-kube-apiserver.sh" >/dev/null
	step "go test tools/chartcheck/apiserver (etcd + kube-apiserver v$kube_version, server-side dry run)"
	(cd "$root/tools/chartcheck" && CHARTCHECK_APISERVER=1 GOWORK=off go test -count=1 -timeout 20m -v ./apiserver)
	;;
*)
	echo "charts.sh: unknown tier $tier (lint, test, slow)" >&2
	exit 2
	;;
esac
step "charts $tier: ok"
