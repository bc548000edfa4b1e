#!/usr/bin/env bash
# generate.sh: regenerates the Go and Python code of the gRPC API from proto/ in the tree this
# script lives in (`make generate`): the Go code with buf and the protoc plugins pinned in
# tools/pins/buf and tools/pins/protoc-gen, the Python code with Debian's generators
# (generate-python.sh). check-generated.sh runs a copy of it in a temporary copy of the inputs,
# so it must only ever write under its own tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export GOFLAGS=${GOFLAGS:--modcacherw}
step() { printf '\n==> %s\n' "$*"; }

step "buf generate (proto/secretproxy/v1)"
# Stale files of a removed .proto must not survive a regeneration.
rm -f "$root"/proto/secretproxy/v1/*.pb.go
(cd "$root/proto" && GOWORK=off go tool -modfile="$root/tools/pins/buf/go.mod" buf generate)
step "buf generate (clients/python/secretproxy/v1; Debian's protoc and grpc_python_plugin)"
bash "$root/tools/scripts/install-test-deps.sh" python
bash "$root/tools/scripts/generate-python.sh"
