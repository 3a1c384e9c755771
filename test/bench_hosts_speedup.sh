#!/usr/bin/env bash
# bench_hosts_speedup.sh - migration with 1, 2 and 3 hosts on one catalog
# (issue 13), run by `make bench` after `make build`. Each run: a fresh
# PostgreSQL database and shared library, N daemons (hosts) of 2 drives
# each, 12 batches of 8 MB put round-robin through the hosts' mounts; the
# wall time from the first put until every batch is CACHED_SYNCED. The
# simulated tape is slow enough (TAPE_SPEED bytes/s at TIME_SCALE) that
# tape, not hashing or the catalog, is the bottleneck. Target: speed-up
# >= 0.8 x N against the one-host run.
#
#   TAPEFS_BENCH_BATCHES=12 test/bench_hosts_speedup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${TAPEFS_BIN:-$ROOT/bin/tapefs}
BATCHES=${TAPEFS_BENCH_BATCHES:-12}
MB=${TAPEFS_BENCH_MB:-8}
TIME_SCALE=${TIME_SCALE:-0.05}
TAPE_SPEED=${TAPE_SPEED:-200000} # x TIME_SCALE: 2 s of real time per 8 MB batch
BASE=${TAPEFS_BENCH_DIR:-/var/tmp}
log() { printf 'bench_hosts_speedup: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[[ -x $BIN ]] || die "no $BIN: run make build"
# shellcheck source=test/pglib.sh
. test/pglib.sh

W=$(mktemp -d "$BASE/tapefs-bench-hosts.XXXXXX")
chmod 755 "$W"
PIDS=()
stop_all() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	for m in "$W"/run*/mnt-*; do umount -l "$m" 2>/dev/null || true; done
}
cleanup() {
	stop_all
	pg_stop "$W/pg"
	rm -rf "$W"
}
trap cleanup EXIT

pg_start "$W/pg"

for ((b = 1; b <= BATCHES; b++)); do
	mkdir -p "$W/src/run$b"
	head -c $((MB * 1000000 / 2)) /dev/urandom >"$W/src/run$b/a.dat"
	head -c $((MB * 1000000 / 2)) /dev/urandom >"$W/src/run$b/b.dat"
done

now() { date +%s.%N; }
declare -A T
for N in 1 2 3; do
	R=$W/run$N
	mkdir -p "$R"
	URL=$(pg_createdb "$W/pg" "bench$N")
	for ((h = 1; h <= N; h++)); do
		mkdir -p "$R/mnt-$h"
		"$BIN" mount --home "$R/home-$h" --http '' --catalog "$URL" --library "$R/library" --shared-library \
			--host-id "host$h" --drives 2 --cartridges 12 --lease 5s --time-scale "$TIME_SCALE" --tape-speed "$TAPE_SPEED" \
			--settle 1h --flush-age 1s --kernel-cache 100ms "$R/mnt-$h" 2>"$R/log-$h" &
		PIDS+=($!)
		for _ in $(seq 100); do grep -q "mounted at" "$R/log-$h" && break; sleep 0.2; done
		grep -q "mounted at" "$R/log-$h" || die "host $h of $N did not start: $(tail "$R/log-$h")"
	done
	t0=$(now)
	for ((b = 1; b <= BATCHES; b++)); do
		h=$(((b - 1) % N + 1))
		cp -a "$W/src/run$b" "$R/mnt-$h/default/put/" && setfattr -n user.tapefs.seal "$R/mnt-$h/default/put/run$b" &
	done
	wait $(jobs -p | grep -v -F -x -f <(printf '%s\n' "${PIDS[@]}")) 2>/dev/null || true
	until [[ $(for d in "$R/mnt-1/default"/[0-9]*; do getfattr -n user.tapefs.state --only-values "$d" 2>/dev/null; echo; done | grep -c '^CACHED_SYNCED$') -ge $BATCHES ]]; do
		sleep 0.2
		(($(echo "$(now) - $t0 > 600" | bc))) && die "$N host(s): not every batch on tape after 600 s"
	done
	T[$N]=$(echo "$(now) - $t0" | bc)
	log "$N host(s): $BATCHES batches on tape in ${T[$N]} s"
	stop_all
done
printf '| hosts | wall s | speed-up | target |\n|---|---|---|---|\n'
for N in 1 2 3; do
	printf '| %d | %.1f | %.2f | %.1f |\n' "$N" "${T[$N]}" "$(echo "${T[1]} / ${T[$N]}" | bc -l)" "$(echo "0.8 * $N" | bc -l)"
done
