#!/usr/bin/env bash
# bench_recall.sh - recall through the mount in tape order (issue 10), run by
# `make bench` after `make build`. The real binary, a real mount, real tools
# (cp -r, xargs -P cat, background cat), --time-scale 0 and the library's own
# counters (/metrics). Each workload is measured against its lower bound from
# the timing model (tape.LTO9, the virtual library's default):
#
#   lower bound = C × (robot move + load)                  one mount per cartridge
#               + max(0, C − drives) × (unload + robot move) drives start empty
#               + bytes needed / stream rate               forward only, no locate
#
# where C is the number of cartridges holding the files read (from
# user.tapefs.tapes). The ratio is the library's simulated tape seconds over
# that bound. Simulated seconds and mount/locate counts do not depend on the
# machine's load; wall-clock times are printed too but are noisy.
#
#   1. cp -r of an offline batch of 2,000 files on ≥ 3 cartridges (target ≤ 1.2)
#   2. 200 random files of an offline batch of 1,000 on 9 cartridges,
#      xargs -P16 cat (target ≤ 1.5)
#   3. 64 independent readers, each cat of one random offline file of 5
#      batches on 12 cartridges, started within 10 s (target ≤ 1.5)
#   4. 10,000 random opens over 20 cartridges, xargs -P64 cat
#      (target: mounts ≤ 2 × cartridges)
#   5. one offline 1 GiB file, cat through the mount at --time-scale 0,
#      against cp of its tape file to the same disk, synced (target ≥ 0.8),
#      and against md5sum of it (the floor of a checked recall); wall-clock
#   6. the same file at --time-scale 1 --tape-speed 400MB: the streaming
#      from first byte to last against the drive's rate (target ≥ 0.9)
#   7. four offline files of a quarter of that size in one batch, read one
#      after the other (as cp -r does) at --time-scale 1 --tape-speed
#      400MB with the default linger: one cartridge pass, whose members
#      must follow each other without a stop of the drive (the commit of
#      a recalled object is not the drive's business)
#
# Settings: TAPEFS_BENCH_REPEAT (rounds, default 3; the table gives the
# median and the range), TAPEFS_BENCH_DIR (default /var/tmp), TAPEFS_BIN,
# TAPEFS_BENCH_OUT=FILE (also write the table there), TAPEFS_BENCH_ONLY="1 3"
# (run only those workloads), TAPEFS_BENCH_FLAGS (extra daemon flags),
# TAPEFS_BENCH_W5_FLAGS (extra flags of workloads 5 and 6 only, e.g.
# --recall-linger 1ms), TAPEFS_BENCH_BIG (size of their file, default 1G),
# TAPEFS_BENCH_BASE_BIN (another build, e.g. main's, whose recall workloads
# 5 and 6 also measure in every round, interleaved, on the same home):
#
#   TAPEFS_BENCH_ONLY="5 6" TAPEFS_BENCH_W5_FLAGS="--recall-linger 1ms" \
#   TAPEFS_BENCH_BASE_BIN=/tmp/main-tapefs test/bench_recall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${TAPEFS_BIN:-$ROOT/bin/tapefs}
BASE=${TAPEFS_BENCH_DIR:-/var/tmp}
REPEAT=${TAPEFS_BENCH_REPEAT:-3}
ONLY=${TAPEFS_BENCH_ONLY:-1 2 3 4 5 6 7}
EXTRA=${TAPEFS_BENCH_FLAGS:-}
EXTRA0=$EXTRA
# Flags of workloads 5 and 6 only (e.g. --recall-linger 1ms).
W5FLAGS=${TAPEFS_BENCH_W5_FLAGS:-}
BASEBIN=${TAPEFS_BENCH_BASE_BIN:-}
[[ -z $BASEBIN || -x $BASEBIN ]] || { echo "bench-recall: $BASEBIN is not executable" >&2; exit 1; }

# The timing model (tape.LTO9) and the library's drives.
ROBOT=10 LOAD=16 UNLOAD=20 RATE=400000000 DRIVES=2

log() { printf 'bench-recall: %s\n' "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}
for tool in cp xargs cat shuf getfattr setfattr awk curl; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x $BIN ]] || die "$BIN is missing: run make build first"

W=$(mktemp -d "$BASE/tapefs-bench-recall.XXXXXX")
TPID= MNT= HOMEDIR=
cleanup() {
	set +e
	stop_daemon
	[[ ${TAPEFS_BENCH_KEEP:-0} == 1 ]] && log "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

# start HOME MNT CARTRIDGE_SIZE CARTRIDGES: starts the daemon and waits for
# its mount; sets URL (status page).
STARTS=0
start() {
	HOMEDIR=$1 MNT=$2
	STARTS=$((STARTS + 1))
	local err=$W/tapefs.$STARTS.err i
	mkdir -p "$MNT"
	# shellcheck disable=SC2086
	"${RUNBIN:-$BIN}" mount --home "$HOMEDIR" --http 127.0.0.1:0 --time-scale 0 --settle 1s --flush-age 1s \
		--cartridge-size "$3" --cartridges "$4" $EXTRA "$MNT" 2>"$err" &
	TPID=$!
	for ((i = 0; i < 600; i++)); do
		grep -qs "tapefs: mounted at $MNT\$" "$err" && break
		kill -0 "$TPID" 2>/dev/null || die "tapefs exited: $(tail -5 "$err")"
		sleep 0.1
	done
	URL=$(grep '"status page listening"' "$HOMEDIR/tapefs.log" | grep -o '"http":"[^"]*"' | tail -1 | cut -d'"' -f4)
	URL=${URL%/}
	[[ -n $URL ]] || die "no status page address in $HOMEDIR/tapefs.log"
}
stop_daemon() {
	if [[ -n $TPID ]]; then
		kill -TERM "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
		TPID=
	fi
}

# metric NAME: the value of an unlabelled metric.
metric() { curl -fsS "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

# put_batch SRC: copies SRC into put/, seals it, waits until it is on tape
# and prints the batch ID.
put_batch() {
	local src=$1 name before id st i
	name=$(basename "$src")
	before=$(ls "$MNT/default")
	cp -r "$src" "$MNT/default/put/$name"
	setfattr -n user.tapefs.seal "$MNT/default/put/$name"
	for ((i = 0; i < 3000; i++)); do
		id=$(comm -13 <(echo "$before" | sort) <(ls "$MNT/default" | sort) | grep -v '^put$' | head -1 || true)
		if [[ -n $id ]]; then
			st=$(getfattr --only-values -n user.tapefs.state "$MNT/default/$id" 2>/dev/null || true)
			[[ $st == CACHED_SYNCED ]] && break
			[[ $st == FAILED ]] && die "batch $id FAILED"
		fi
		sleep 0.2
	done
	[[ $st == CACHED_SYNCED ]] || die "batch of $src not on tape after 10 minutes"
	echo "$id"
}

# make_tree DIR FILES SIZE: FILES files of SIZE bytes in subdirectories of
# 100, pseudo-random (each distinct).
make_tree() {
	local dir=$1 n=$2 size=$3 i k
	for ((i = 0; i * 100 < n; i++)); do
		k=$((n - i * 100 < 100 ? n - i * 100 : 100))
		mkdir -p "$dir/d$i"
		head -c $((k * size)) /dev/urandom | (cd "$dir/d$i" && split -b "$size" -a 3 -d - f)
	done
}

# evict_all: drops every cached object (the daemon stopped; at start it
# notices that they are gone, and the files are offline) and restarts the
# daemon, so that drives start empty.
evict_all() {
	stop_daemon
	rm -rf "$HOMEDIR/cache/objects"
	start "$HOMEDIR" "$MNT" "$CART_SIZE" "$CARTS"
}

# bound FILELIST: sets BOUND, the lower bound (simulated seconds) for reading
# the files listed (paths in the mount), and BOUND_CARTS.
bound() {
	local carts bytes
	carts=$(xargs -d '\n' getfattr --absolute-names -n user.tapefs.tapes <"$1" 2>/dev/null | sed -n 's/^user.tapefs.tapes="\(.*\)"$/\1/p' |
		tr ', ' '\n\n' | grep -v '^$' | sort -u | wc -l || true)
	# shellcheck disable=SC2016
	bytes=$(xargs -d '\n' stat -c %s <"$1" | awk '{ s += $1 } END { print s + 0 }')
	BOUND_CARTS=$carts
	BOUND=$(awk -v c="$carts" -v b="$bytes" -v m=$((ROBOT + LOAD)) -v u=$((UNLOAD + ROBOT)) -v d=$DRIVES -v r=$RATE \
		'BEGIN { x = c - d; if (x < 0) x = 0; printf "%.1f", c * m + x * u + b / r }')
}

RESULTS=()
# measure NAME FILELIST CMD...: one round.
measure() {
	local name=$1 list=$2 m0 s0 l0 t0 t1 m1 s1 l1 lb
	shift 2
	evict_all
	bound "$list"
	lb=$BOUND
	m0=$(metric tapefs_tape_mounts_total) s0=$(metric tapefs_tape_simulated_seconds_total) l0=$(metric tapefs_tape_locates_total)
	b0=$(metric tapefs_recall_backward_locates_total)
	b0=${b0:-0}
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	m1=$(metric tapefs_tape_mounts_total) s1=$(metric tapefs_tape_simulated_seconds_total) l1=$(metric tapefs_tape_locates_total)
	b1=$(metric tapefs_recall_backward_locates_total)
	b1=${b1:-0}
	local row
	row=$(awk -v n="$name" -v c="$BOUND_CARTS" -v m=$((m1 - m0)) -v l=$((l1 - l0)) -v bw=$((b1 - b0)) -v s0="$s0" -v s1="$s1" -v lb="$lb" -v t0="$t0" -v t1="$t1" \
		'BEGIN { s = s1 - s0; printf "%s|%d|%d|%d|%d|%.1f|%.1f|%.2f|%.1f", n, c, m, l, bw, s, lb, s / lb, t1 - t0 }')
	log "$row"
	RESULTS+=("$row")
}

# Workload 1: cp -r of a 2,000-file batch of 64 KiB (125 MiB) on cartridges
# of 40 MB: 4 cartridges, one aggregate (tape file) on each.
w1() {
	CART_SIZE=40M CARTS=8
	start "$W/h1" "$W/m1" "$CART_SIZE" "$CARTS"
	make_tree "$W/src1/run" 2000 65536
	local id
	id=$(put_batch "$W/src1/run")
	find "$MNT/default/$id" -type f >"$W/list1"
	for ((r = 1; r <= REPEAT; r++)); do
		rm -rf "$W/restore1"
		measure "cp -r, 2,000 files" "$W/list1" cp -r "$MNT/default/$id" "$W/restore1"
	done
	diff -r "$W/src1/run" "$W/restore1/run" >/dev/null || die "cp -r restored different bytes"
	stop_daemon
}

# Workload 2: 200 random of 1,000 files of 64 KiB on cartridges of 7 MB (9+).
w2() {
	CART_SIZE=7M CARTS=14
	start "$W/h2" "$W/m2" "$CART_SIZE" "$CARTS"
	make_tree "$W/src2/run" 1000 65536
	local id
	id=$(put_batch "$W/src2/run")
	for ((r = 1; r <= REPEAT; r++)); do
		find "$MNT/default/$id" -type f | shuf -n 200 --random-source=<(yes $r) >"$W/list2"
		measure "200 of 1,000, xargs -P16 cat" "$W/list2" sh -c "xargs -d '\n' -P16 -n1 cat <'$W/list2' >/dev/null"
	done
	stop_daemon
}

# Workload 3: 5 batches of 200 files of 64 KiB on cartridges of 5 MB (13),
# 64 readers each cat one random file, started at random within 10 s.
w3() {
	CART_SIZE=5M CARTS=16
	start "$W/h3" "$W/m3" "$CART_SIZE" "$CARTS"
	local b ids=()
	for b in 1 2 3 4 5; do
		make_tree "$W/src3/b$b" 200 65536
		ids+=("$(put_batch "$W/src3/b$b")")
	done
	readers() {
		local f pids=()
		while read -r f; do
			(sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.3f", rand() * 10 }')" && cat "$f" >/dev/null) &
			pids+=($!)
		done <"$W/list3"
		wait "${pids[@]}"
	}
	for ((r = 1; r <= REPEAT; r++)); do
		for id in "${ids[@]}"; do find "$MNT/default/$id" -type f; done | shuf -n 64 --random-source=<(yes $r) >"$W/list3"
		measure "64 readers, 5 batches" "$W/list3" readers
	done
	stop_daemon
}

# Workload 4: 10 batches of 1,000 files of 16 KiB on cartridges of 8 MB
# (20+), every file opened once in random order by xargs -P64 cat.
w4() {
	CART_SIZE=8M CARTS=26
	start "$W/h4" "$W/m4" "$CART_SIZE" "$CARTS"
	local b ids=()
	for b in 0 1 2 3 4 5 6 7 8 9; do
		make_tree "$W/src4/b$b" 1000 16384
		ids+=("$(put_batch "$W/src4/b$b")")
	done
	for ((r = 1; r <= REPEAT; r++)); do
		for id in "${ids[@]}"; do find "$MNT/default/$id" -type f; done | shuf --random-source=<(yes $r) >"$W/list4"
		measure "10,000 opens, xargs -P64 cat" "$W/list4" sh -c "xargs -d '\n' -P64 -n1 cat <'$W/list4' >/dev/null"
	done
	stop_daemon
}

# cold_round: stops the daemon, drops the cached objects and the page
# cache, starts the daemon again (drives empty) with the extra flags given.
cold_round() {
	stop_daemon
	rm -rf "$HOMEDIR/cache/objects" "$W/copy5"
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	EXTRA="$EXTRA0 $*" start "$HOMEDIR" "$MNT" "$CART_SIZE" "$CARTS"
}

# base_round: cold_round with TAPEFS_BENCH_BASE_BIN.
base_round() { RUNBIN=$BASEBIN cold_round "$@"; }

# order ROUND: which builds a round of workload 5 or 6 measures, in turns
# first: this one, and TAPEFS_BENCH_BASE_BIN if given.
order() {
	if [[ -z $BASEBIN ]]; then
		echo this
	elif (($1 % 2)); then
		echo this base
	else
		echo base this
	fi
}

# daemon_cpu: the CPU seconds (user + system) the daemon has used so far.
daemon_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$TPID/stat"
}

# timed_read FILE: reads FILE to the end; prints the seconds until the
# first byte arrived and until the last, from the open, and the daemon's
# CPU seconds meanwhile (what the recall costs, whatever the machine's
# load: on a shared machine the wall-clock times say more about the other
# processes than about the build).
timed_read() {
	local t0 t1 t2 c0 c1
	c0=$(daemon_cpu)
	t0=$(date +%s.%N)
	exec 3<"$1"
	dd bs=1 count=1 status=none <&3 >/dev/null
	t1=$(date +%s.%N)
	cat <&3 >/dev/null
	t2=$(date +%s.%N)
	exec 3<&-
	c1=$(daemon_cpu)
	awk -v a="$t0" -v b="$t1" -v c="$t2" -v c0="$c0" -v c1="$c1" 'BEGIN { printf "%.3f %.3f %.2f", b - a, c - a, c1 - c0 }'
}

# cold_time CMD...: wall seconds of CMD after a sync and dropped page cache.
cold_time() {
	local t0 t1
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# big_batch: a batch of one file of TAPEFS_BENCH_BIG (default 1G) on tape;
# sets BIGFILE (its path in the mount), BIGTF (the tape file holding it,
# in the cartridge directory) and BIGSIZE.
big_batch() {
	CART_SIZE=0 CARTS=2
	start "$W/h5" "$W/m5" "$CART_SIZE" "$CARTS"
	if [[ ! -f $W/src5/big/file ]]; then
		mkdir -p "$W/src5/big"
		head -c "$(numfmt --from=iec "${TAPEFS_BENCH_BIG:-1G}")" /dev/urandom >"$W/src5/big/file"
		BIGID=$(put_batch "$W/src5/big")
	fi
	BIGFILE=$MNT/default/$BIGID/big/file
	BIGTF=$(ls -S "$HOMEDIR"/library/*/0*.tar | head -1)
	BIGSIZE=$(stat -c %s "$W/src5/big/file")
}

# Workload 5: one offline file of TAPEFS_BENCH_BIG (default 1G), cat through
# the mount at --time-scale 0, against cp of its tape file (the member and
# its headers) from the cartridge to the cache's disk, synced; md5sum of the
# tape file is timed too (the recall checks the md5 of every byte before it
# gives out the last ones, and one md5 stream is the floor of a recall on a
# CPU where md5 is slower than the disk). The three are interleaved in every
# round, each after a dropped page cache. The default linger (a 2 s quiet
# moment before a mount) is measured apart: the first byte's wait says it.
W5=()
w5() {
	big_batch
	local r rec cp md5 bfirst brec cpu bcpu=0
	for ((r = 1; r <= REPEAT; r++)); do
		bfirst=0 brec=0
		# The two builds take turns to go first.
		for side in $(order "$r"); do
			if [[ $side == this ]]; then
				cold_round "$W5FLAGS"
				read -r first rec cpu <<<"$(timed_read "$BIGFILE")"
			else
				base_round "$W5FLAGS"
				read -r bfirst brec bcpu <<<"$(timed_read "$BIGFILE")"
				log "one big file, $BASEBIN: recall $brec s (first byte $bfirst s), daemon CPU $bcpu s"
			fi
		done
		cp=$(cold_time sh -c "cp '$BIGTF' '$W/copy5' && sync '$W/copy5'")
		rm -f "$W/copy5"
		md5=$(cold_time sh -c "md5sum '$BIGTF' >/dev/null")
		W5+=("$rec $first $cp $md5 $brec $bfirst $cpu $bcpu")
		log "one big file: daemon CPU $cpu s"
		awk -v r="$rec" -v f="$first" -v c="$cp" -v m="$md5" -v b="$BIGSIZE" 'BEGIN {
			printf "bench-recall: one big file: recall %.2f s (first byte %.2f s), cp %.2f s, md5sum %.2f s: cp/recall %.2f, md5sum/recall %.2f, %.0f MB/s\n",
				r, f, c, m, c / r, m / r, b / r / 1e6 }' >&2
	done
	stop_daemon
}

# Workload 6: the same file at --time-scale 1 --tape-speed 400MB, against
# the drive's rate: the streaming part of the recall (first byte to last)
# over the time the drive needs for the bytes (size / rate). The mount
# (26 s) and the linger come before the first byte.
W6=()
w6() {
	big_batch
	local r first rec rate md5 bfirst brec cpu bcpu=0
	rate=$((400 << 20))
	for ((r = 1; r <= REPEAT; r++)); do
		bfirst=0 brec=1
		for side in $(order "$r"); do
			if [[ $side == this ]]; then
				cold_round --time-scale 1 --tape-speed 400MB "$W5FLAGS"
				read -r first rec cpu <<<"$(timed_read "$BIGFILE")"
			else
				base_round --time-scale 1 --tape-speed 400MB "$W5FLAGS"
				read -r bfirst brec bcpu <<<"$(timed_read "$BIGFILE")"
				awk -v r="$brec" -v f="$bfirst" -v b="$BIGSIZE" -v rate="$rate" -v bin="$BASEBIN" 'BEGIN {
					printf "bench-recall: one big file at time scale 1, %s: streaming %.2f s: %.2f of the drive rate\n", bin, r - f, (b / rate) / (r - f) }' >&2
			fi
		done
		# What the CPU and the disk allow this round: md5sum of the tape
		# file, cold (a recall hashes every byte it reads).
		md5=$(cold_time sh -c "md5sum '$BIGTF' >/dev/null")
		W6+=("$first $rec $md5 $bfirst $brec $cpu $bcpu")
		awk -v r="$rec" -v f="$first" -v b="$BIGSIZE" -v rate="$rate" 'BEGIN {
			printf "bench-recall: one big file at time scale 1: first byte %.2f s, last %.2f s, streaming %.2f s at %.0f MB/s: %.2f of the drive rate\n",
				f, r, r - f, b / (r - f) / 1e6, (b / rate) / (r - f) }' >&2
		log "one big file at time scale 1: daemon CPU $cpu s (base $bcpu s), md5sum $md5 s"
	done
	stop_daemon
}

# Workload 7: four files of TAPEFS_BENCH_BIG / 4 in one batch, cold, read
# one after the other at time scale 1 (default flags: the linger keeps the
# pass open from one file to the next), from the first byte of the first
# to the last of the fourth, against the drive's rate.
W7=()
w7() {
	CART_SIZE=0 CARTS=2
	start "$W/h7" "$W/m7" "$CART_SIZE" "$CARTS"
	local quarter r i first rec cpu bfirst brec bcpu=0 md5 side id dir tf
	quarter=$(($(numfmt --from=iec "${TAPEFS_BENCH_BIG:-1G}") / 4))
	mkdir -p "$W/src7/four"
	for i in 1 2 3 4; do head -c "$quarter" /dev/urandom >"$W/src7/four/f$i"; done
	id=$(put_batch "$W/src7/four")
	dir=$MNT/default/$id/four
	BIGSIZE7=$((quarter * 4))
	tf=$(ls -S "$HOMEDIR"/library/*/0*.tar | head -1)
	# timed_read of f1, then the other three: the first byte and the
	# last are from the open of f1.
	read4() {
		local t0 f
		t0=$(date +%s.%N)
		read -r f _ c <<<"$(timed_read "$dir/f1")"
		cat "$dir/f2" "$dir/f3" "$dir/f4" >/dev/null
		awk -v a="$t0" -v f="$f" -v b="$(date +%s.%N)" -v c="$c" -v c1="$(daemon_cpu)" 'BEGIN { printf "%.3f %.3f %.2f", f, b - a, c }'
	}
	for ((r = 1; r <= REPEAT; r++)); do
		bfirst=0 brec=1
		for side in $(order "$r"); do
			if [[ $side == this ]]; then
				cold_round --time-scale 1 --tape-speed 400MB
				read -r first rec cpu <<<"$(read4)"
			else
				base_round --time-scale 1 --tape-speed 400MB
				read -r bfirst brec bcpu <<<"$(read4)"
			fi
		done
		md5=$(cold_time sh -c "md5sum '$tf' >/dev/null")
		W7+=("$first $rec $md5 $bfirst $brec")
		log "four files at time scale 1: streaming $(awk -v a="$first" -v b="$rec" 'BEGIN { print b - a }') s (base $(awk -v a="$bfirst" -v b="$brec" 'BEGIN { print b - a }') s), md5sum of the tape file $md5 s"
	done
	stop_daemon
}

for w in $ONLY; do
	log "workload $w"
	"w$w"
done

# medrange: the median of the numbers on stdin (one a line), with the range
# in brackets when they differ.
medrange() {
	sort -g | awk '{ a[++c] = $1 } END {
		if (c == 0) exit
		m = c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
		if (a[1] == a[c]) printf "%.2f", m; else printf "%.2f (%.2f–%.2f)", m, a[1], a[c] }'
}
# col N ROWS...: field N of each row, one a line.
col() {
	local n=$1
	shift
	printf '%s\n' "$@" | awk -v n="$n" '{ print $n }'
}

# The tables: per workload, median and range of each figure over the rounds.
{
	if ((${#RESULTS[@]} > 0)); then
		echo "| workload | cartridges | mounts | locates | backward | simulated tape s | lower bound s | ratio | wall s (noisy) |"
		echo "|---|---|---|---|---|---|---|---|---|"
		printf '%s\n' "${RESULTS[@]}" | awk -F'|' '
		{ n = $1; if (!(n in cnt)) order[++k] = n; cnt[n]++; for (i = 2; i <= 9; i++) v[n, i, cnt[n]] = $i }
		function med(n, i,    c, a, j, t, x, y) {
			c = cnt[n]; for (j = 1; j <= c; j++) a[j] = v[n, i, j] + 0
			for (x = 1; x <= c; x++) for (y = x + 1; y <= c; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
			if (a[1] == a[c]) return a[1] ""
			return (c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2) " (" a[1] "–" a[c] ")"
		}
		END { for (j = 1; j <= k; j++) { n = order[j]; line = "| " n; for (i = 2; i <= 9; i++) line = line " | " med(n, i); print line " |" } }'
	fi
	if ((${#W5[@]} > 0)); then
		echo
		echo "| one offline $(numfmt --to=iec "$BIGSIZE") file, time scale 0 | recall s | first byte s | cp + sync s | md5sum s | cp / recall | md5sum / recall | daemon CPU s |"
		echo "|---|---|---|---|---|---|---|---|"
		echo "| $(basename "$BIN"), ${#W5[@]} rounds | $(col 1 "${W5[@]}" | medrange) | $(col 2 "${W5[@]}" | medrange) | $(col 3 "${W5[@]}" | medrange) | $(col 4 "${W5[@]}" | medrange) |" \
			"$(printf '%s\n' "${W5[@]}" | awk '{ print $3 / $1 }' | medrange) | $(printf '%s\n' "${W5[@]}" | awk '{ print $4 / $1 }' | medrange) | $(col 7 "${W5[@]}" | medrange) |"
		if [[ -n $BASEBIN ]]; then
			echo "| $BASEBIN, same rounds | $(col 5 "${W5[@]}" | medrange) | $(col 6 "${W5[@]}" | medrange) | | |" \
				"$(printf '%s\n' "${W5[@]}" | awk '{ print $3 / $5 }' | medrange) | $(printf '%s\n' "${W5[@]}" | awk '{ print $4 / $5 }' | medrange) | $(col 8 "${W5[@]}" | medrange) |"
		fi
	fi
	if ((${#W6[@]} > 0)); then
		echo
		echo "| one offline $(numfmt --to=iec "$BIGSIZE") file, time scale 1, 400 MiB/s | first byte s | last byte s | streaming MB/s | of the drive rate | md5sum MB/s (same round) | of min(drive, md5sum) | daemon CPU s |"
		echo "|---|---|---|---|---|---|---|---|"
		# ratio to what this round allowed: the drive rate, or md5sum's
		# rate when the CPU and the disk gave less.
		w6row() { # NAME FIRSTCOL CPUCOL
			local f=$2
			echo "| $1 | $(col "$f" "${W6[@]}" | medrange) | $(col $((f + 1)) "${W6[@]}" | medrange) |" \
				"$(printf '%s\n' "${W6[@]}" | awk -v b="$BIGSIZE" -v f="$f" '{ print b / ($(f + 1) - $f) / 1e6 }' | medrange) |" \
				"$(printf '%s\n' "${W6[@]}" | awk -v b="$BIGSIZE" -v f="$f" -v r=$((400 << 20)) '{ print (b / r) / ($(f + 1) - $f) }' | medrange) |" \
				"$(printf '%s\n' "${W6[@]}" | awk -v b="$BIGSIZE" '{ print b / $3 / 1e6 }' | medrange) |" \
				"$(printf '%s\n' "${W6[@]}" | awk -v b="$BIGSIZE" -v f="$f" -v r=$((400 << 20)) '{ m = b / $3; if (m > r) m = r; print (b / m) / ($(f + 1) - $f) }' | medrange) |" \
				"$(col "$3" "${W6[@]}" | medrange) |"
		}
		w6row "$(basename "$BIN"), ${#W6[@]} rounds" 1 6
		[[ -z $BASEBIN ]] || w6row "$BASEBIN, same rounds" 4 7
	fi
	if ((${#W7[@]} > 0)); then
		echo
		echo "| four offline files of $(numfmt --to=iec $((BIGSIZE7 / 4))), one pass, time scale 1, 400 MiB/s | first byte s | last byte s | streaming MB/s | of the drive rate | md5sum MB/s (same round) |"
		echo "|---|---|---|---|---|---|"
		w7row() { # NAME FIRSTCOL
			local f=$2
			echo "| $1 | $(col "$f" "${W7[@]}" | medrange) | $(col $((f + 1)) "${W7[@]}" | medrange) |" \
				"$(printf '%s\n' "${W7[@]}" | awk -v b="$BIGSIZE7" -v f="$f" '{ print b / ($(f + 1) - $f) / 1e6 }' | medrange) |" \
				"$(printf '%s\n' "${W7[@]}" | awk -v b="$BIGSIZE7" -v f="$f" -v r=$((400 << 20)) '{ print (b / r) / ($(f + 1) - $f) }' | medrange) |" \
				"$(printf '%s\n' "${W7[@]}" | awk -v b="$BIGSIZE7" '{ print b / $3 / 1e6 }' | medrange) |"
		}
		w7row "$(basename "$BIN"), ${#W7[@]} rounds" 1
		[[ -z $BASEBIN ]] || w7row "$BASEBIN, same rounds" 4
	fi
} | tee "${TAPEFS_BENCH_OUT:-/dev/null}"
