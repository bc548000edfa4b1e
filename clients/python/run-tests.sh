#!/usr/bin/env bash
# run-tests.sh: the Python client's checks (make test-python runs this after
# installing the Debian packages as root): mypy --strict over the package, the
# example and the tests, then the unit tests and the tests against the real
# secret-proxy and kv-emulator.
#
# They run with Debian's /usr/bin/python3, whose gRPC and protobuf modules are
# the Debian packages the generated code is pinned to, never a pyenv or venv
# python earlier in PATH. Without it (or without mypy) they say loudly what did
# not run, and fail under CI=true. Bytecode and mypy's cache are not written to
# the working tree: the tests leave it as they found it.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${SECRETPROXY_TEST_PYTHON:-/usr/bin/python3}
loud() {
	echo "!!! $1" >&2
	echo "!!! install Debian's packages: sudo apt-get install -y python3 python3-grpcio python3-protobuf mypy" >&2
	echo "!!! (or: sudo bash tools/scripts/install-test-deps.sh python)" >&2
	if [ "${CI:-}" = true ]; then exit 1; fi
}
if [ ! -x "$PYTHON" ]; then
	loud "PYTHON CLIENT TESTS DID NOT RUN: $PYTHON is missing."
	exit 0
fi
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$PWD
if "$PYTHON" -m mypy --version >/dev/null 2>&1; then
	echo "mypy --strict (pyproject.toml): secretproxy examples tests"
	MYPY_CACHE_DIR=$(mktemp -d)
	trap 'rm -rf "$MYPY_CACHE_DIR"' EXIT
	MYPY_CACHE_DIR=$MYPY_CACHE_DIR "$PYTHON" -m mypy secretproxy examples tests
else
	loud "THE PYTHON CLIENT WAS NOT TYPE-CHECKED: mypy is missing."
fi
"$PYTHON" -m unittest discover --start-directory tests --top-level-directory . --verbose "$@"
