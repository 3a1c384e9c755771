#!/usr/bin/env bash
# bench_put_ab.sh OLD NEW - writes into put/ of two tapefs binaries, in one
# run, interleaved with go-fuse's loopback example and a native directory on
# the same disk: for judging a change to put/'s write path on a shared,
# loaded machine, where figures from separate runs cannot be compared.
#
#   test/bench_put_ab.sh /tmp/main-tapefs bin/tapefs
#
# Each round runs the four contenders in a rotated order: cp -r of
# TAPEFS_BENCH_SMALL_FILES (default 5000) files of 4 KiB and then sync
# (TAPEFS_BENCH_AB=small, the default), or dd bs=1M conv=fdatasync of
# TAPEFS_BENCH_BIG_MIB (default 256) MiB (TAPEFS_BENCH_AB=big). Page caches
# are dropped before each (root). It prints, per contender, the median
# seconds of TAPEFS_BENCH_REPEAT (default 9) rounds, every round, and the
# daemon's CPU ticks per round (user+system, 1/100 s).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench_put_ab.sh OLD_BINARY NEW_BINARY}
NEW=${2:?usage: bench_put_ab.sh OLD_BINARY NEW_BINARY}
GO=${GO:-go}
LOOPBACK=$PWD/bin/loopback
N=${TAPEFS_BENCH_SMALL_FILES:-5000}
BIG_MIB=${TAPEFS_BENCH_BIG_MIB:-256}
REPEAT=${TAPEFS_BENCH_REPEAT:-9}
MODE=${TAPEFS_BENCH_AB:-small}
[[ $MODE == small || $MODE == big ]] || { echo "TAPEFS_BENCH_AB must be small or big" >&2; exit 2; }
"$GO" build -o "$LOOPBACK" github.com/hanwen/go-fuse/v2/example/loopback

W=$(mktemp -d "${TAPEFS_BENCH_DIR:-/var/tmp}/tapefs-bench-ab.XXXXXX")
mkdir -p "$W/old" "$W/new" "$W/lb" "$W/lb-orig" "$W/native"
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	for m in "$W/old" "$W/new" "$W/lb"; do
		if grep -qs " $m " /proc/self/mountinfo; then umount -l "$m"; fi
	done
	rm -rf "$W"
}
trap cleanup EXIT
"$OLD" mount --home "$W/home-old" --http 127.0.0.1:0 --time-scale 0 --settle 1h "$W/old" 2>"$W/old.err" &
PIDS+=($!)
"$NEW" mount --home "$W/home-new" --http 127.0.0.1:0 --time-scale 0 --settle 1h "$W/new" 2>"$W/new.err" &
PIDS+=($!)
"$LOOPBACK" -directmountstrict "$W/lb" "$W/lb-orig" >"$W/lb.out" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 600; i++)); do
	grep -qs "mounted at" "$W/old.err" && grep -qs "mounted at" "$W/new.err" && grep -qs Mounted "$W/lb.out" && break
	sleep 0.1
done
((i < 600)) || { cat "$W"/*.err "$W/lb.out" >&2; echo "the mounts did not come up" >&2; exit 1; }

# 4 KiB of text, the same in every file (as test/bench.sh).
blob=$(head -c 3075 /dev/urandom | base64 -w0 | head -c 4096 || true)
for ((i = 0; i < N; i++)); do
	d=$W/src/d$((i % 20))
	((i < 20)) && mkdir -p "$d"
	printf '%s' "$blob" >"$d/f$i"
done

names=(old new loopback native)
dirs=("$W/old/default/put/x" "$W/new/default/put/x" "$W/lb/x" "$W/native/x")
pids=("${PIDS[0]}" "${PIDS[1]}" "${PIDS[2]}" "")
declare -A T C
ticks() { if [[ -n $1 ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
one() { # index
	local dir=${dirs[$1]} pid=${pids[$1]} t0 t1 c0 c1
	rm -rf "$dir"
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	c0=$(ticks "$pid")
	t0=$(date +%s.%N)
	if [[ $MODE == small ]]; then
		cp -r "$W/src" "$dir"
		sync
	else
		dd if=/dev/zero of="$dir" bs=1M count="$BIG_MIB" conv=fdatasync status=none
	fi
	t1=$(date +%s.%N)
	c1=$(ticks "$pid")
	T[${names[$1]}]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
	C[${names[$1]}]+="$((c1 - c0)) "
}
for ((r = 0; r < REPEAT; r++)); do
	for ((i = 0; i < 4; i++)); do one $(((i + r) % 4)); done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
what="cp -r of $N files of 4 KiB + sync"
[[ $MODE == big ]] && what="dd of $BIG_MIB MiB, fdatasync"
echo "$what, $REPEAT rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${names[@]}"; do
	printf '%-9s median %ss  rounds: %s daemon CPU ticks: %s\n' "$n" "$(median <<<"${T[$n]}")" "${T[$n]}" "${C[$n]}"
done
