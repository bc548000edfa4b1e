#!/usr/bin/env bash
# build-tool.sh NAME: builds one pinned tool from its own module under tools/NAME (never part of
# go.work, so its dependencies stay out of the product modules) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/NAME-VERSION/ and prints the binary's path.
# A cached binary is reused; nothing is downloaded at run time except modules on a cold cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: build-tool.sh helm|helm-unittest|kubeconform}
case $name in
helm) pkg=helm.sh/helm/v3/cmd/helm mod=helm.sh/helm/v3 bin=helm ;;
helm-unittest) pkg=github.com/helm-unittest/helm-unittest/cmd/helm-unittest mod=github.com/helm-unittest/helm-unittest bin=helm-unittest ;;
kubeconform) pkg=github.com/yannh/kubeconform/cmd/kubeconform mod=github.com/yannh/kubeconform bin=kubeconform ;;
*) echo "build-tool: unknown tool $name" >&2; exit 2 ;;
esac
dir=$root/tools/$name
version=$(cd "$dir" && GOWORK=off go list -m -f '{{.Version}}' "$mod")
out=${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/$name-$version
if [[ -x $out/$bin ]]; then
	echo "build-tool: $name $version cached in $out" >&2
else
	echo "build-tool: building $name $version into $out (cold: minutes; modules from the Go proxy)" >&2
	mkdir -p "$out"
	ldflags="-s -w"
	# helm v3 reports its own version from these; without them `helm version` says v3.
	[[ $name == helm ]] && ldflags="$ldflags -X helm.sh/helm/v3/internal/version.version=$version"
	(cd "$dir" && GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg")
	mv "$out/$bin.tmp" "$out/$bin"
fi
echo "$out/$bin"
