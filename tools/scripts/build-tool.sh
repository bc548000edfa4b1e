#!/usr/bin/env bash
# build-tool.sh NAME: builds one pinned tool from its own pin module tools/pins/NAME (never part
# of go.work, so its dependencies stay out of the product modules) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/secret-proxy/NAME-VERSION/ and prints the binary's path.
# A cached binary is reused; nothing is downloaded at run time except modules on a cold cache.
# Concurrent runs (two checkouts) are safe: see toolcache.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: build-tool.sh helm|helm-unittest}
case $name in
helm) pkg=helm.sh/helm/v3/cmd/helm mod=helm.sh/helm/v3 bin=helm ;;
helm-unittest) pkg=github.com/helm-unittest/helm-unittest/cmd/helm-unittest mod=github.com/helm-unittest/helm-unittest bin=helm-unittest ;;
*) echo "build-tool: unknown tool $name" >&2; exit 2 ;;
esac
dir=$root/tools/pins/$name
version=$(cd "$dir" && GOWORK=off go list -m -f '{{.Version}}' "$mod")
# shellcheck source=toolcache.sh
. "$root/tools/scripts/toolcache.sh"
ldflags="-s -w"
# helm v3 reports its own version from these; without them `helm version` says v3.
[[ $name == helm ]] && ldflags="$ldflags -X helm.sh/helm/v3/internal/version.version=$version"
toolcache_get "$name-$version" "$bin" "$dir" "$ldflags" "$pkg"
