#!/usr/bin/env bash
# bench_catalog.sh - the mount on a PostgreSQL catalog against the mount on
# bbolt, in one run (make bench): two daemons, one per engine, each given
# the same tree of MANY empty files in 100 directories; then, interleaved,
# rounds of
#   seal     time from the seal request until the batch is listed
#   ls -lR   of the batch tree, page cache dropped (cold kernel caches)
#   find     -printf of every entry's size (getattr of each)
#   lookup   stat of 2,000 random paths after the kernel's caches are dropped
# and the daemons' RSS at the end. Ratios are PostgreSQL / bbolt.
#
#   TAPEFS_BENCH_MANY=100000 TAPEFS_BENCH_REPEAT=3 test/bench_catalog.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${TAPEFS_BIN:-$ROOT/bin/tapefs}
MANY=${TAPEFS_BENCH_MANY:-100000}
REPEAT=${TAPEFS_BENCH_REPEAT:-3}
BASE=${TAPEFS_BENCH_DIR:-/var/tmp}
log() { printf 'bench_catalog: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[[ -x $BIN ]] || die "no $BIN: run make build"
# shellcheck source=test/pglib.sh
. test/pglib.sh

W=$(mktemp -d "$BASE/tapefs-bench-cat.XXXXXX")
chmod 755 "$W"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for m in "$W"/mnt-*; do umount -l "$m" 2>/dev/null || true; done
	pg_stop "$W/pg"
	rm -rf "$W"
}
trap cleanup EXIT

pg_start "$W/pg" -c shared_buffers=256MB
URL=$(pg_createdb "$W/pg" bench)

start() { # name [flags...]
	local n=$1
	shift
	mkdir -p "$W/mnt-$n"
	"$BIN" mount --home "$W/home-$n" --http '' --time-scale 0 --settle 1h --flush-age 1h "$@" "$W/mnt-$n" 2>"$W/log-$n" &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q "mounted at" "$W/log-$n" && return; sleep 0.2; done
	die "daemon $n did not start: $(tail "$W/log-$n")"
}
start bolt
start pg --catalog "$URL"
pid_of() { if [[ $1 == bolt ]]; then echo "${PIDS[0]}"; else echo "${PIDS[1]}"; fi; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$(pid_of "$1")/status"; }
RSS0_bolt=$(rss bolt)
RSS0_pg=$(rss pg)

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

log "building $MANY entries in each put/"
for n in bolt pg; do
	P=$W/mnt-$n/default/put/many
	mkdir -p "$P"
	(cd "$P" && for d in $(seq 0 99); do mkdir "d$d"; done && for ((i = 0; i < MANY; i++)); do : >"d$((i % 100))/f$i"; done)
done
declare -A T
for n in bolt pg; do
	t0=$(now)
	setfattr -n user.tapefs.seal "$W/mnt-$n/default/put/many"
	until ls "$W/mnt-$n/default" | grep -qx 1; do sleep 0.05; done
	T[seal_$n]=$(echo "$(now) - $t0" | bc)
done
B=many
for r in $(seq "$REPEAT"); do
	for n in bolt pg; do
		D=$W/mnt-$n/default/1/$B
		drop; t0=$(now); ls -lR "$D" >/dev/null; T[ls_$n]+="$(echo "$(now) - $t0" | bc) "
		drop; t0=$(now); find "$D" -printf '%s\n' >/dev/null; T[find_$n]+="$(echo "$(now) - $t0" | bc) "
		drop; t0=$(now)
		for i in $(seq 0 50 $((MANY - 1)) | head -2000); do stat -c %s "$D/d$((i % 100))/f$i"; done >/dev/null
		T[stat_$n]+="$(echo "$(now) - $t0" | bc) "
	done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
printf '| measure (%d entries, median of %d) | bbolt s | PostgreSQL s | ratio |\n|---|---|---|---|\n' "$MANY" "$REPEAT"
printf '| seal (register) | %.2f | %.2f | %.2f |\n' "${T[seal_bolt]}" "${T[seal_pg]}" "$(echo "${T[seal_pg]} / ${T[seal_bolt]}" | bc -l)"
for m in ls find stat; do
	b=$(med "${T[${m}_bolt]}")
	p=$(med "${T[${m}_pg]}")
	printf '| %s cold | %.2f | %.2f | %.2f |\n' "$m" "$b" "$p" "$(echo "$p / $b" | bc -l)"
done
printf '| daemon RSS at start, MB | %s | %s | |\n' "$RSS0_bolt" "$RSS0_pg"
printf '| daemon RSS after, MB | %s | %s | |\n' "$(rss bolt)" "$(rss pg)"
