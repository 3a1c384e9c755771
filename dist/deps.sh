#!/bin/sh
# make deps: the Debian packages the tests need, in one list (.ci/run uses
# it through make deps too). Installs what is missing when run as root on
# Debian; otherwise names the one command to run and fails, so that make
# test never quietly tests less.
#
# fuse3: fusermount3 and the fuse tools; attr: getfattr/setfattr; rsync,
# tar, coreutils, findutils, diffutils: the tools users use; util-linux:
# setpriv (tests run commands as another user), mount, unshare; e2fsprogs:
# mkfs.ext4 (a small cache file system); passwd: useradd; chromium: the
# status page test; postgresql: initdb and pg_ctl for the throwaway servers
# of the catalog's PostgreSQL tests; systemd: systemd-analyze verify of the
# unit make install writes (nothing is started); make: make install;
# groff-base, man-db: the generated man pages are rendered by a test;
# bash: the completion script is run by a test.
set -eu
PACKAGES="fuse3 attr rsync tar coreutils findutils diffutils util-linux e2fsprogs passwd chromium postgresql systemd make groff-base man-db bash"

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "make deps: not a Debian system (no dpkg-query); install the equivalents of: $PACKAGES" >&2
	exit 1
fi
missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "make deps: all test dependencies are installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "make deps: missing Debian packages:$missing" >&2
	echo "make deps: run:  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "make deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq $missing >/dev/null
