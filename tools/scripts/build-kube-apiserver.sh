#!/usr/bin/env bash
# Builds kube-apiserver and kubectl v1.37.2 from the Go module proxy through the wrapper module
# tools/pins/kube-apiserver, and caches them outside the clone so later runs only check the cache.
# Prints the directory holding the binaries on its last line. Concurrent runs (two checkouts)
# are safe: see toolcache.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=v1.37.2
# shellcheck source=toolcache.sh
. "$root/tools/scripts/toolcache.sh"
out=$(toolcache_dir "kube-apiserver-${version}")
# Another checkout may be building the same binaries: wait for it, then reuse them.
toolcache_lock "$out"

# The version ldflags matter: without them the server reports v0.0.0 and Helm's
# kubeVersion checks (>=1.25.0-0) fail against it.
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

# cached CMD: the binary exists and reports the pinned version.
cached() {
	case $1 in
	kube-apiserver) "$out/$1" --version 2>/dev/null | grep -qx "Kubernetes $version" ;;
	kubectl) "$out/$1" version --client 2>/dev/null | grep -qx "Client Version: $version" ;;
	esac
}

for cmd in kube-apiserver kubectl; do
	if [[ -x $out/$cmd ]] && cached "$cmd"; then
		echo "build-kube-apiserver: $cmd $version cached in $out" >&2
		continue
	fi
	echo "build-kube-apiserver: building $cmd $version (cold: about 8 min and 3 GB of memory)" >&2
	(cd "$root/tools/pins/kube-apiserver" && GOWORK=off GOFLAGS=-modcacherw CGO_ENABLED=0 \
		toolcache_go_build "$out/$cmd" -trimpath -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$cmd")
done
echo "$out"
