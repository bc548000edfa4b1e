#!/usr/bin/env bash
# install-test-deps.sh [--require] postgresql|etcd|python ...
# Installs the Debian packages the tests need when they are missing:
#   postgresql  the orderapp and e2e tests run a private server with password authentication
#   etcd        the slow tier's kube-apiserver stores its objects in it
#   python      the Python client's runtime (python3, python3-grpcio, python3-protobuf) and mypy for its
#               tests, and the generators make generate pins (protobuf-compiler,
#               protobuf-compiler-grpc; see generate-python.sh)
# As root it installs them with apt-get. Otherwise it says what to install and, with
# --require, fails; without it the tests that need the package say loudly that they did
# not run (and fail under CI=true).
set -euo pipefail
require=false
if [ "${1:-}" = "--require" ]; then
	require=true
	shift
fi
[ $# -gt 0 ] || { echo "usage: install-test-deps.sh [--require] postgresql|etcd|python ..." >&2; exit 2; }

missing=()
for dep in "$@"; do
	case $dep in
	postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql) ;;
	etcd) command -v etcd >/dev/null || missing+=(etcd-server) ;;
	python)
		# Debian's packages, checked with dpkg: the tests run /usr/bin/python3, whose
		# modules come from these packages (PyPI is not needed, nor used).
		for pkg in python3 python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc mypy; do
			dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
		done
		;;
	*) echo "install-test-deps.sh: unknown dependency $dep" >&2; exit 2 ;;
	esac
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "test dependencies present: $*"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "MISSING TEST DEPENDENCIES: ${missing[*]}" >&2
	echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
	if $require; then exit 1; fi
	echo "the tests that need them will say that they did not run" >&2
	exit 0
fi
echo "installing from Debian's packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start a cluster or an etcd service; the tests start their own.
# Only after installing that package: installing python must not stop anyone's etcd.
case " ${missing[*]} " in
*" postgresql "*)
	if command -v pg_lsclusters >/dev/null; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true; done
	fi
	;;
esac
case " ${missing[*]} " in
*" etcd-server "*) pkill -x etcd 2>/dev/null || true ;;
esac
echo "installed: ${missing[*]}"
