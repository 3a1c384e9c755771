#!/usr/bin/env bash
# bench.sh - the mount benchmarks of issue 3, run by `make bench` after
# `make build`. Every ratio compares figures measured in this same run, on
# the same disk:
#
#   1. sequential write of a 4 GiB file into put/ (dd conv=fdatasync), against
#      a native write and against go-fuse's loopback example;
#   2. cp -r of 20,000 files of 4 KiB into put/ (then sync), files/s against
#      the loopback example (and native, for reference);
#   3. sequential read of a cached 4 GiB file in a batch, against native
#      (cold page cache, then warm);
#   4. ls -lR and stat (find -printf) of 100,000 batch entries, entries/s
#      against the same tree in put/.
#
# Sizes can be overridden for a quick run:
#   TAPEFS_BENCH_BIG=256M TAPEFS_BENCH_SMALL_FILES=2000 TAPEFS_BENCH_MANY=10000 test/bench.sh
# Other settings: TAPEFS_BENCH_REPEAT (rounds of each measurement, default 3:
# the table gives the median and, in brackets, the range),
# TAPEFS_BENCH_SMALL_SIZE (bytes, default 4096),
# TAPEFS_BENCH_DIR (where the work directory goes, default /var/tmp; it must be
# on the disk you mean to measure), TAPEFS_BENCH_KEEP=1 (keep it),
# TAPEFS_BENCH_OUT=FILE (also write the table there), TAPEFS_BIN.
#
# Page caches are dropped (echo 3 > /proc/sys/vm/drop_caches) before every
# cold measurement; the table says which figures are warm. Without root the
# caches cannot be dropped and every figure is marked warm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GO=${GO:-go}
BIN=${TAPEFS_BIN:-$ROOT/bin/tapefs}
LOOPBACK=$ROOT/bin/loopback
BIG=${TAPEFS_BENCH_BIG:-4G}
SMALL_FILES=${TAPEFS_BENCH_SMALL_FILES:-20000}
SMALL_SIZE=${TAPEFS_BENCH_SMALL_SIZE:-4096}
MANY=${TAPEFS_BENCH_MANY:-100000}
BASE=${TAPEFS_BENCH_DIR:-/var/tmp}
REPEAT=${TAPEFS_BENCH_REPEAT:-3}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# to_bytes 4G -> 4294967296 (binary K, M, G; a plain number is bytes).
to_bytes() {
	local v=$1 n=${1%[KkMmGg]} m=1
	case $v in
	*[Kk]) m=1024 ;;
	*[Mm]) m=$((1024 * 1024)) ;;
	*[Gg]) m=$((1024 * 1024 * 1024)) ;;
	esac
	[[ $n =~ ^[0-9]+$ ]] || die "not a size: $v"
	echo $((n * m))
}
BIG_BYTES=$(to_bytes "$BIG")
BIG_MIB=$((BIG_BYTES / 1024 / 1024))
((BIG_MIB > 0)) || die "TAPEFS_BENCH_BIG must be at least 1M"

for tool in dd cp ls find setfattr getfattr awk sync; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x $BIN ]] || die "$BIN is missing: run make build first"
log "building go-fuse's loopback example into bin/loopback"
"$GO" build -o "$LOOPBACK" github.com/hanwen/go-fuse/v2/example/loopback

COLD=1
if ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
	log "cannot drop the page cache (not root?): every figure below is warm"
	COLD=0
fi
drop_caches() {
	sync
	if ((COLD)); then echo 3 >/proc/sys/vm/drop_caches; fi
}
cold_label() { if ((COLD)); then echo "cold"; else echo "warm (caches could not be dropped)"; fi; }

now() { date +%s.%N; }
# timeit CMD... runs CMD and sets ELAPSED (seconds).
timeit() {
	local t0 t1
	t0=$(now)
	"$@"
	t1=$(now)
	ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

W=$(mktemp -d "$BASE/tapefs-bench.XXXXXX")
MNT=$W/mnt
LBMNT=$W/lb-mnt
mkdir -p "$MNT" "$LBMNT" "$W/lb-orig" "$W/native"
TPID= LPID=
cleanup() {
	set +e
	for pid in $TPID $LPID; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	for m in "$MNT" "$LBMNT"; do
		if grep -qs " $m " /proc/self/mountinfo; then umount -l "$m" 2>/dev/null; fi
	done
	if [[ ${TAPEFS_BENCH_KEEP:-0} == 1 ]]; then
		log "work directory kept: $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
log "work directory $W ($(df -h --output=source,fstype,avail "$W" | tail -1 | tr -s ' '))"

# wait_line FILE TEXT PID: waits up to 60 s for a line in FILE.
wait_line() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -qF "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1" >&2; die "process $3 exited before printing '$2'"; }
		sleep 0.1
	done
	cat "$1" >&2
	die "no '$2' after 60s"
}

"$BIN" mount --home "$W/home" --http 127.0.0.1:0 --time-scale 0 --settle 1h --flush-age 1s "$MNT" 2>"$W/tapefs.err" &
TPID=$!
wait_line "$W/tapefs.err" "tapefs: mounted at $MNT" "$TPID"
# Root mounts directly, as tapefs does.
"$LOOPBACK" -directmountstrict "$LBMNT" "$W/lb-orig" >"$W/loopback.out" 2>&1 &
LPID=$!
wait_line "$W/loopback.out" "Mounted!" "$LPID"
if grep -q "passthrough unavailable" "$W/tapefs.err"; then PASSTHROUGH=off; else PASSTHROUGH=on; fi
PUT=$MNT/default/put

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }

# wait_batch ENTRY: seals put/ENTRY, waits for its batch to be
# CACHED_SYNCED and prints the batch ID.
wait_batch() {
	local before id state i
	before=$(ls "$MNT/default")
	setfattr -n user.tapefs.seal "$PUT/$1"
	for ((i = 0; i < 36000; i++)); do
		for id in $(ls "$MNT/default"); do
			[[ $id == put ]] && continue
			grep -qx "$id" <<<"$before" && continue
			state=$(getfattr --absolute-names --only-values -n user.tapefs.state "$MNT/default/$id" 2>/dev/null || true)
			[[ $state == FAILED ]] && die "batch $id of $1 FAILED"
			if [[ $state == CACHED_SYNCED ]]; then
				echo "$id"
				return 0
			fi
		done
		sleep 0.1
	done
	die "batch of $1 not CACHED_SYNCED after an hour"
}

# rounds FN...: runs each function REPEAT times, the order rotated each
# round so that no contender always runs first or after the same one. Each
# function prints the seconds it measured; they are kept in T_<FN>.
rounds() {
	local r i n=$# name t names=("$@")
	for name in "${names[@]}"; do eval "T_$name=()"; done
	for ((r = 0; r < REPEAT; r++)); do
		for ((i = 0; i < n; i++)); do
			name=${names[(i + r) % n]}
			t=$("$name")
			eval "T_$name+=(\"\$t\")"
		done
	done
}
# figure AMOUNT UNIT FN: sets FIG to the rate of the median time of FN's
# rounds ("1195 MB/s (1100-1300)", the range over the rounds) and VAL to
# the median rate alone. UNIT MB/s divides AMOUNT by 1e6.
figure() {
	local amount=$1 unit=$2 arr="T_$3[@]" med lo hi
	local ts=("${!arr}")
	med=$(printf '%s\n' "${ts[@]}" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	hi=$(printf '%s\n' "${ts[@]}" | sort -g | head -1)
	lo=$(printf '%s\n' "${ts[@]}" | sort -g | tail -1)
	[[ $unit == MB/s ]] && amount=$(awk -v a="$amount" 'BEGIN { print a / 1e6 }')
	VAL=$(rate "$amount" "$med")
	FIG="$VAL $unit ($(rate "$amount" "$lo")-$(rate "$amount" "$hi"))"
}

# 1. Sequential write.
log "1. sequential write of $BIG ($BIG_MIB MiB, dd bs=1M conv=fdatasync), $REPEAT rounds"
write_big() {
	rm -f "$1"
	drop_caches
	timeit dd if=/dev/zero of="$1" bs=1M count="$BIG_MIB" conv=fdatasync status=none
	echo "$ELAPSED"
}
mkdir "$PUT/bench-big"
w_native() { write_big "$W/native/big"; }
w_loopback() { write_big "$LBMNT/big"; }
w_put() { write_big "$PUT/bench-big/big"; }
rounds w_native w_loopback w_put
rm -f "$LBMNT/big"
figure "$BIG_BYTES" MB/s w_native; f_native=$FIG v_native=$VAL
figure "$BIG_BYTES" MB/s w_loopback; f_lb=$FIG v_lb=$VAL
figure "$BIG_BYTES" MB/s w_put; f_put=$FIG v_put=$VAL
log "   native $f_native, loopback $f_lb, put/ $f_put"
row "sequential write $BIG into put/, $(cold_label) start, fdatasync" "$f_put" "native $f_native" "$(ratio "$v_put" "$v_native")" "≥ 0.9"
row "sequential write $BIG into put/, $(cold_label) start, fdatasync" "$f_put" "go-fuse loopback $f_lb" "$(ratio "$v_put" "$v_lb")" "-"

# 2. cp -r of many small files.
log "2. cp -r of $SMALL_FILES files of $SMALL_SIZE bytes (then sync), $REPEAT rounds"
SRC=$W/src-small
# base64 may die of SIGPIPE when head has what it needs: not a failure.
blob=$(head -c $((SMALL_SIZE * 3 / 4 + 3)) /dev/urandom | base64 -w0 | head -c "$SMALL_SIZE" || true)
for ((i = 0; i < SMALL_FILES; i++)); do
	d=$SRC/d$((i % 20))
	((i < 20)) && mkdir -p "$d"
	printf '%s' "$blob" >"$d/f$i"
done
cp_small() {
	rm -rf "$1"
	drop_caches
	timeit bash -c 'cp -r "$1" "$2" && sync' _ "$SRC" "$1"
	echo "$ELAPSED"
}
c_native() { cp_small "$W/native/small"; }
c_loopback() { cp_small "$LBMNT/small"; }
c_put() { cp_small "$PUT/bench-small"; }
rounds c_native c_loopback c_put
rm -rf "$LBMNT/small" "$W/native/small"
figure "$SMALL_FILES" files/s c_native; f_native=$FIG v_native=$VAL
figure "$SMALL_FILES" files/s c_loopback; f_lb=$FIG v_lb=$VAL
figure "$SMALL_FILES" files/s c_put; f_put=$FIG v_put=$VAL
log "   native $f_native, loopback $f_lb, put/ $f_put"
row "cp -r $SMALL_FILES × $SMALL_SIZE B into put/ + sync, $(cold_label) start" "$f_put" "go-fuse loopback $f_lb" "$(ratio "$v_put" "$v_lb")" "≥ 1.0"
row "cp -r $SMALL_FILES × $SMALL_SIZE B into put/ + sync, $(cold_label) start" "$f_put" "native $f_native" "$(ratio "$v_put" "$v_native")" "-"

# 3. Sequential read of a cached file in a batch.
log "3. sequential read of a cached $BIG file in a batch (sealing and syncing it first), $REPEAT rounds"
t0=$(now)
BIGID=$(wait_batch bench-big)
log "   batch $BIGID CACHED_SYNCED after $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
BATCHBIG=$MNT/default/$BIGID/bench-big/big
state=$(getfattr --absolute-names --only-values -n user.tapefs.state "$BATCHBIG")
[[ $state == online ]] || die "$BATCHBIG is $state, not online (cached)"
# read_big FILE cold|warm: a warm read follows an untimed read of the same file.
read_big() {
	if [[ $2 == cold ]]; then drop_caches; else dd if="$1" of=/dev/null bs=1M status=none; fi
	timeit dd if="$1" of=/dev/null bs=1M status=none
	echo "$ELAPSED"
}
r_native_cold() { read_big "$W/native/big" cold; }
r_batch_cold() { read_big "$BATCHBIG" cold; }
r_native_warm() { read_big "$W/native/big" warm; }
r_batch_warm() { read_big "$BATCHBIG" warm; }
rounds r_native_cold r_batch_cold
rounds r_native_warm r_batch_warm
for temp in cold warm; do
	figure "$BIG_BYTES" MB/s "r_native_$temp"; f_native=$FIG v_native=$VAL
	figure "$BIG_BYTES" MB/s "r_batch_$temp"; f_batch=$FIG v_batch=$VAL
	label="$temp (second read)"
	[[ $temp == cold ]] && label=$(cold_label)
	log "   $label: native $f_native, batch $f_batch"
	target="-"
	[[ $temp == cold ]] && target="≥ 0.9"
	row "sequential read of a cached $BIG batch file, $label" "$f_batch" "native $f_native" "$(ratio "$v_batch" "$v_native")" "$target"
done
rm -f "$W/native/big"

# 4. Listing and stat of many entries: a batch against the same tree in put/.
log "4. ls -lR and find -printf of $MANY entries: a batch against the same tree in put/, $REPEAT rounds"
make_many() {
	local i
	for ((i = 0; i < 100; i++)); do mkdir -p "$1/d$i"; done
	for ((i = 0; i < MANY; i++)); do : >"$1/d$((i % 100))/f$i"; done
}
# Written beside the staging directory (same disk), then renamed into it.
STAGE=$W/home/cache/put/default
make_many "$W/many-a"
make_many "$W/many-b"
mv "$W/many-a" "$STAGE/many-a"
mv "$W/many-b" "$STAGE/many-b"
MANYID=$(wait_batch many-a)
ENTRIES=$((MANY + 100))
# list TREE cold|warm COMMAND: a warm listing follows an untimed one.
list() {
	if [[ $2 == cold ]]; then drop_caches; else bash -c "$3 >/dev/null" _ "$1"; fi
	timeit bash -c "$3 >/dev/null" _ "$1"
	echo "$ELAPSED"
}
LS='ls -lR "$1"'
FIND='find "$1" -printf "%s %b %m %u %t\n"'
l_ls_batch_cold() { list "$MNT/default/$MANYID/many-a" cold "$LS"; }
l_ls_put_cold() { list "$PUT/many-b" cold "$LS"; }
l_ls_batch_warm() { list "$MNT/default/$MANYID/many-a" warm "$LS"; }
l_ls_put_warm() { list "$PUT/many-b" warm "$LS"; }
l_find_batch_cold() { list "$MNT/default/$MANYID/many-a" cold "$FIND"; }
l_find_put_cold() { list "$PUT/many-b" cold "$FIND"; }
l_find_batch_warm() { list "$MNT/default/$MANYID/many-a" warm "$FIND"; }
l_find_put_warm() { list "$PUT/many-b" warm "$FIND"; }
for what in ls find; do
	rounds "l_${what}_batch_cold" "l_${what}_put_cold"
	rounds "l_${what}_batch_warm" "l_${what}_put_warm"
	for temp in cold warm; do
		figure "$ENTRIES" entries/s "l_${what}_batch_$temp"; f_batch=$FIG v_batch=$VAL
		figure "$ENTRIES" entries/s "l_${what}_put_$temp"; f_put=$FIG v_put=$VAL
		label="$temp (second run)"
		[[ $temp == cold ]] && label=$(cold_label)
		name="ls -lR"
		[[ $what == find ]] && name="find -printf (stat)"
		log "   $name, $label: batch $f_batch, put/ $f_put"
		row "$name of $ENTRIES batch entries, $label" "$f_batch" "same tree in put/ $f_put" "$(ratio "$v_batch" "$v_put")" "-"
	done
done

{
	echo
	echo "### tapefs mount benchmarks ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, kernel passthrough $PASSTHROUGH)"
	echo
	echo "Work directory on $(df --output=source,fstype "$W" | tail -1 | tr -s ' '); sizes: big $BIG, $SMALL_FILES small files of $SMALL_SIZE B, $MANY entries. Each figure is the median of $REPEAT rounds (range in brackets), contenders interleaved; cold = page cache dropped before each round; ratios are of the medians."
	echo
	echo "| benchmark | tapefs | reference (same run) | ratio | target |"
	echo "|---|---|---|---|---|"
	printf '%s\n' "${ROWS[@]}"
} | tee ${TAPEFS_BENCH_OUT:+"$TAPEFS_BENCH_OUT"}
