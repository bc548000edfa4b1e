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
#
# The tests start their own servers, so the services a package would start are not wanted; but
# other work on the machine (another checkout's tests, a developer's own database) may run
# PostgreSQL clusters and etcd processes, and this script must never stop those. So:
#   - the install runs under a policy-rc.d that denies every service start (Debian's
#     invoke-rc.d and deb-systemd-invoke honour it); an existing policy-rc.d is left alone;
#   - should a service start anyway, only what the install itself created is stopped: the
#     PostgreSQL clusters that did not exist before (pg_ctlcluster, by cluster), and the etcd
#     daemon of the package's own service (systemd unit, or the pid in its pidfile, checked to
#     be /usr/bin/etcd). Never `pkill etcd`, never the init script's stop (it also kills every
#     process running /usr/bin/etcd).
# The paths below can be pointed elsewhere by the script's own tests (tools/repocheck).
set -euo pipefail

policy_rc_d=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
pg_initdb_glob=${PG_INITDB_GLOB:-/usr/lib/postgresql/*/bin/initdb}
etcd_bin=${ETCD_BIN:-etcd}
etcd_pidfile=${ETCD_PIDFILE:-/var/run/etcd.pid}
etcd_exe=${ETCD_EXE:-/usr/bin/etcd}
systemd_dir=${SYSTEMD_RUN_DIR:-/run/systemd/system}

require=false
if [ "${1:-}" = "--require" ]; then
	require=true
	shift
fi
[ $# -gt 0 ] || { echo "usage: install-test-deps.sh [--require] postgresql|etcd|python ..." >&2; exit 2; }

missing=()
for dep in "$@"; do
	case $dep in
	postgresql) compgen -G "$pg_initdb_glob" >/dev/null || missing+=(postgresql) ;;
	etcd) command -v "$etcd_bin" >/dev/null || missing+=(etcd-server) ;;
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

# clusters: "VERSION NAME" of every PostgreSQL cluster, one per line (none without the tools).
clusters() {
	command -v pg_lsclusters >/dev/null || return 0
	pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}'
}
clusters_before=$(clusters)

# Deny service starts for the length of the install, unless the machine has its own policy.
own_policy=false
if [ ! -e "$policy_rc_d" ]; then
	printf '#!/bin/sh\n# install-test-deps.sh: no service starts during the install; removed after it.\nexit 101\n' >"$policy_rc_d"
	chmod 755 "$policy_rc_d"
	own_policy=true
	trap 'rm -f "$policy_rc_d"' EXIT
fi

echo "installing from Debian's packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if $own_policy; then
	rm -f "$policy_rc_d"
	trap - EXIT
fi

# Stop what the install started despite the policy, and nothing else.
while read -r ver name; do
	[ -n "$ver" ] || continue
	if ! grep -qxF "$ver $name" <<<"$clusters_before"; then
		echo "stopping PostgreSQL cluster $ver/$name, created by this install (the tests run their own)"
		pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
	fi
done <<<"$(clusters)"
for pkg in "${missing[@]}"; do
	[ "$pkg" = etcd-server ] || continue
	if [ -d "$systemd_dir" ] && command -v systemctl >/dev/null; then
		# The unit's cgroup holds only the service's own process.
		if systemctl is-active --quiet etcd.service; then
			echo "stopping etcd.service, started by this install (the tests run their own)"
			systemctl stop etcd.service || true
		fi
	elif [ -r "$etcd_pidfile" ]; then
		pid=$(tr -dc '0-9' <"$etcd_pidfile")
		if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$etcd_exe" ]; then
			echo "stopping the etcd service (pid $pid, from $etcd_pidfile), started by this install (the tests run their own)"
			kill "$pid" 2>/dev/null || true
		fi
	fi
done
echo "installed: ${missing[*]}"
