#!/usr/bin/env bash
# images.sh: builds the two images (`make images`) where a Docker engine answers, and says
# plainly when none does. The Dockerfiles are linted without an engine by `make test`
# (tools/chartcheck, BuildKit's own rules).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
registry=${REGISTRY:-ghcr.io/secretproxy}

if ! command -v docker >/dev/null 2>&1; then
	echo "images: no docker command on this machine; nothing built (the Dockerfiles are linted by make test)" >&2
	exit 0
fi
if ! docker info >/dev/null 2>&1; then
	echo "images: docker is installed but no engine answers (docker info failed); nothing built" >&2
	exit 0
fi
for image in secret-proxy:Dockerfile.sidecar orderapp:Dockerfile.app; do
	name=${image%%:*} file=${image#*:}
	echo "==> docker build -f $file -t $registry/$name:$version (VERSION=$version)"
	DOCKER_BUILDKIT=1 docker build --check -f "$root/$file" "$root"
	DOCKER_BUILDKIT=1 docker build -f "$root/$file" --build-arg VERSION="$version" \
		-t "$registry/$name:$version" "$root"
done
