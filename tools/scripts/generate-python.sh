#!/usr/bin/env bash
# generate-python.sh: regenerate the Python code of the gRPC API
# (clients/python/secretproxy/v1/*_pb2*.py*) from proto/ with buf and the code
# generators of Debian 12's packages, pinned here by version:
#   protobuf-compiler       protoc, whose built-in python and pyi generators write *_pb2.py(i)
#   protobuf-compiler-grpc  grpc_python_plugin, which writes *_pb2_grpc.py
# The generated code is committed; `make check-generated` regenerates it and fails
# on a difference, so the pins decide the output.
#
# Pins compare the upstream version (3.21.12, not 3.21.12-3+deb12u1): a Debian
# security revision does not change what the generators write, and pinning it
# would break every clone on the day Debian publishes one.
#
# Without the generators (a machine without root where nobody installed them):
# the Python code is NOT regenerated; this says so loudly and exits 0, so a Go
# developer can still run `make generate`. Under CI=true it fails instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROTOC_VERSION=3.21.12    # Debian 12 protobuf-compiler (and python3-protobuf, the runtime)
GRPC_VERSION=1.51.1       # Debian 12 protobuf-compiler-grpc (and python3-grpcio, the runtime)
PROTOC=/usr/bin/protoc
GRPC_PLUGIN=/usr/bin/grpc_python_plugin
OUT=clients/python/secretproxy/v1

upstream() { # 1:3.21.12-3+deb12u1 -> 3.21.12
	local v=${1#*:}
	echo "${v%-*}"
}

installed() {
	dpkg-query -W -f '${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | awk '$1 == "ii" { print $2 }'
}

missing=()
for f in "$PROTOC" "$GRPC_PLUGIN"; do [ -x "$f" ] || missing+=("$f"); done
if [ ${#missing[@]} -gt 0 ] || ! command -v dpkg-query >/dev/null; then
	{
		echo "!!! PYTHON CODE NOT REGENERATED: ${missing[*]:-dpkg-query} missing"
		echo "!!! install Debian's packages: sudo apt-get install -y protobuf-compiler protobuf-compiler-grpc"
		echo "!!! (or run: sudo bash tools/scripts/install-test-deps.sh python)"
	} >&2
	if [ "${CI:-}" = true ]; then exit 1; fi
	exit 0
fi

problems=()
for pin in "protobuf-compiler $PROTOC_VERSION" "protobuf-compiler-grpc $GRPC_VERSION"; do
	read -r pkg want <<<"$pin"
	have=$(installed "$pkg")
	if [ -z "$have" ]; then
		problems+=("$pkg is not installed as a Debian package (want $want)")
	elif [ "$(upstream "$have")" != "$want" ]; then
		problems+=("$pkg $have is installed, the pin is $want")
	fi
done
# protoc must be the packaged one, not another protoc earlier in some PATH.
if ! "$PROTOC" --version | grep -qx "libprotoc $PROTOC_VERSION"; then
	problems+=("$PROTOC reports '$("$PROTOC" --version)', want 'libprotoc $PROTOC_VERSION'")
fi
if [ ${#problems[@]} -gt 0 ]; then
	echo "generate-python.sh: the Python code generators are not the pinned versions:" >&2
	printf '  %s\n' "${problems[@]}" >&2
	echo "Other versions write different code, and check-generated would fail. Install Debian 12's" >&2
	echo "packages (apt-get install protobuf-compiler protobuf-compiler-grpc), or, when moving to" >&2
	echo "new versions on purpose, change the pins in $0 and commit the regenerated code." >&2
	exit 1
fi

rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi "$OUT"/*_pb2_grpc.py
cd proto
GOWORK=off go tool -modfile=../tools/pins/buf/go.mod buf generate --template buf.gen.python.yaml
