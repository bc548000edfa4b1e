#!/usr/bin/env bash
# run-tests.sh: the Python client's tests (make test-python runs this after
# installing Debian's python3-grpcio and python3-protobuf as root).
#
# They run with Debian's /usr/bin/python3, whose gRPC and protobuf modules are
# the Debian packages the generated code is pinned to, never a pyenv or venv
# python earlier in PATH. Without it they say loudly that they did not run, and
# fail under CI=true. Bytecode is not written: the tests leave the working tree
# as they found it.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${SECRETPROXY_TEST_PYTHON:-/usr/bin/python3}
if [ ! -x "$PYTHON" ]; then
	echo "!!! PYTHON CLIENT TESTS DID NOT RUN: $PYTHON is missing." >&2
	echo "!!! install Debian's packages: sudo apt-get install -y python3 python3-grpcio python3-protobuf" >&2
	if [ "${CI:-}" = true ]; then exit 1; fi
	exit 0
fi
export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$PWD
exec "$PYTHON" -m unittest discover --start-directory tests --top-level-directory . --verbose "$@"
