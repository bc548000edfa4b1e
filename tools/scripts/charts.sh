#!/usr/bin/env bash
# charts.sh TIER: the chart and Dockerfile checks, one entry point per tier.
#   lint   `make charts`:    helm lint --strict on both charts, helm template for every ci values file,
#                            kubeconform -strict on the result (schemas generated offline)
#   test   `make test`:      lint, helm-unittest suites, and the Go checks in tools/chartcheck
#                            (Helm SDK render + strict decode, helm lint, Pod Security restricted,
#                            kubeconform, secret-proxy --check, BuildKit Dockerfile lint)
#   slow   `make test-slow`: real etcd + kube-apiserver v1.37.2, server-side dry run of every
#                            rendered chart in a namespace enforcing Pod Security restricted
# Tools are built once from their own modules (tools/helm, tools/helm-unittest,
# tools/kube-apiserver) and cached in ${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tier=${1:?usage: charts.sh lint|test|slow}
export GOFLAGS=-modcacherw
kube_version=1.37.2
step() { printf '==> %s\n' "$*"; }

lint() {
	local helm
	helm=$("$root/tools/scripts/build-tool.sh" helm)
	for chart in secret-proxy orderapp; do
		step "helm lint --strict charts/$chart"
		"$helm" lint --strict --kube-version "$kube_version" "$root/charts/$chart" \
			-f "$root/charts/orderapp/ci/default-values.yaml" 2>&1 | grep -v 'found symbolic link'
	done
	local out=$root/bin/charts
	mkdir -p "$out"
	for values in "$root"/charts/orderapp/ci/*-values.yaml; do
		local name
		name=$(basename "$values" -values.yaml)
		step "helm template orderapp -f ci/$(basename "$values") > bin/charts/$name.yaml"
		"$helm" template orders "$root/charts/orderapp" --namespace shop --kube-version "$kube_version" \
			-f "$values" 2> >(grep -v 'found symbolic link' >&2) >"$out/$name.yaml"
	done
	local kubeconform schemas
	kubeconform=$("$root/tools/scripts/build-tool.sh" kubeconform)
	schemas=${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/kube-schemas-v$kube_version
	step "generate strict schemas from k8s.io/kubernetes@v$kube_version's OpenAPI document into $schemas"
	(cd "$root/tools/chartcheck" && GOWORK=off go run ./cmd/kube-schemas -out "$schemas" >/dev/null)
	step "kubeconform -strict bin/charts/*.yaml"
	"$kubeconform" -strict -summary -kubernetes-version "$kube_version" \
		-schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"/*.yaml
}

case $tier in
lint)
	lint
	;;
test)
	lint
	unittest=$("$root/tools/scripts/build-tool.sh" helm-unittest)
	step "helm-unittest --strict charts/orderapp"
	"$unittest" --strict "$root/charts/orderapp" 2>&1 | grep -v 'found symbolic link'
	step "go test tools/chartcheck (render, strict decode, lint, Pod Security, kubeconform, --check, Dockerfiles)"
	(cd "$root/tools/chartcheck" && GOWORK=off "$root/tools/scripts/go-test.sh" tools/chartcheck -count=1 .)
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
