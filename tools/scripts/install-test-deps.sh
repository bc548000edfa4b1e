#!/usr/bin/env bash
# Installs the system packages the tests need, from Debian's packages, when they
# are missing: PostgreSQL (orderapp and e2e tests run a private server with
# password authentication) and etcd (the slow tier's kube-apiserver).
# Without root it only says what to install.
set -euo pipefail
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v etcd >/dev/null || missing+=(etcd-server)
if [ ${#missing[@]} -eq 0 ]; then
	echo "test dependencies present: postgresql, etcd"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing test dependencies: ${missing[*]}" >&2
	echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "installing from Debian's packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start a cluster or an etcd service; the tests start their own.
(command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop || true; done) || true
pkill -x etcd 2>/dev/null || true
echo "installed: ${missing[*]}"
