#!/usr/bin/env bash
# bench_meta.sh - metadata and sealing at local-disk cost (issue 10), with
# the real binary and a real mount, each figure against the same work on
# native disk in the same run. Run by `make bench` after `make build`.
#
#   1. `ls -lR`, `find` and `du -s` of a batch tree of DIRS directories of
#      FILES small files each (100 × 1,000 = 100,100 entries with the top
#      directory), cold, against the same tree on native disk; for
#      reference, the native tree through go-fuse's loopback example too
#      (what any FUSE file system pays).
#   2. The seal of a put/ entry of SEAL_FILES × 4 KiB: from `setfattr -n
#      user.tapefs.seal` until the batch is CACHED (every md5 recorded, its
#      bytes flushed), against `cp -r` of the same tree on native disk + sync.
#
# Cold = `sync; echo 3 >/proc/sys/vm/drop_caches` before each timed run:
# page cache, dentries and inodes (the kernel forgets the mount's entries
# and attributes too, FORGET reaches the daemon), and for the mount the
# catalog's pages as well; each mount run is followed by one with the
# catalog's pages still in memory (the other rows). Contenders are
# interleaved, the order rotated each round; each figure is the median of
# REPEAT rounds with the range.
#
#   TAPEFS_BENCH_META_DIRS   directories of the listed tree (default 100)
#   TAPEFS_BENCH_META_FILES  files per directory (default 1000)
#   TAPEFS_BENCH_SEAL_FILES  files of the sealed entry (default 100000)
#   TAPEFS_BENCH_REPEAT      rounds (default 3)
#   TAPEFS_BENCH_META_SKIP   "list" or "seal" to leave that part out
#   TAPEFS_BENCH_DIR         where the trees and the home go (default /var/tmp)
#   TAPEFS_BIN               the binary (default bin/tapefs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TAPEFS_BIN:-$ROOT/bin/tapefs}
GO=${GO:-go}
LOOPBACK=$ROOT/bin/loopback
DIRS=${TAPEFS_BENCH_META_DIRS:-100}
FILES=${TAPEFS_BENCH_META_FILES:-1000}
SEAL_FILES=${TAPEFS_BENCH_SEAL_FILES:-100000}
REPEAT=${TAPEFS_BENCH_REPEAT:-3}
SKIP=${TAPEFS_BENCH_META_SKIP:-}
BASE=${TAPEFS_BENCH_DIR:-/var/tmp}

log() { printf 'bench_meta: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
for tool in cp ls find du setfattr getfattr awk sync; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x $BIN ]] || die "$BIN is missing: run make build first"
{ sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || die "cannot drop caches (needs root): cold figures impossible"
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

W=$(mktemp -d "$BASE/tapefs-bench-meta.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT" "$W/native"
TPID= LPID=
LBMNT=$W/lb
cleanup() {
	set +e
	[[ -n $TPID ]] && kill -TERM "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	grep -qs " $MNT " /proc/self/mountinfo && umount -l "$MNT" 2>/dev/null
	grep -qs " $LBMNT " /proc/self/mountinfo && umount -l "$LBMNT" 2>/dev/null
	[[ -n $LPID ]] && kill -TERM "$LPID" 2>/dev/null && wait "$LPID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
log "work directory $W ($(df -h --output=source,fstype,avail "$W" | tail -1 | tr -s ' '))"

# No settle timer; migration starts at once (--flush-age 1s) and is waited
# for outside the timed parts, so that it competes with nothing measured.
"$BIN" mount --home "$W/home" --http '' --time-scale 0 --settle 1h --flush-age 1s "$MNT" 2>"$W/tapefs.err" &
TPID=$!
# mounted WHAT PID OUTPUT LINE: waits up to 60 s for LINE in OUTPUT of the
# daemon PID, or dies with that output if it exits first.
mounted() {
	for _ in $(seq 600); do
		grep -qF "$4" "$3" && return 0
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "$1 exited"; }
		sleep 0.1
	done
	die "$1 not mounted after 60 s"
}
mounted "the daemon" "$TPID" "$W/tapefs.err" "tapefs: mounted at $MNT"
PUT=$MNT/default/put

# seal ENTRY: seals put/ENTRY, prints the new batch's ID once it is CACHED
# (or further) and the seconds from the setfattr to then on stderr's
# neighbour: SEALED_S.
seal() {
	local before id state t0 i
	before=$(ls "$MNT/default")
	t0=$(now)
	setfattr -n user.tapefs.seal "$PUT/$1"
	id=
	for ((i = 0; i < 360000; i++)); do
		if [[ -z $id ]]; then
			for x in $(ls "$MNT/default"); do
				[[ $x == put ]] && continue
				grep -qx "$x" <<<"$before" && continue
				id=$x
			done
		fi
		if [[ -n $id ]]; then
			state=$(getfattr --absolute-names --only-values -n user.tapefs.state "$MNT/default/$id" 2>/dev/null || true)
			case $state in
			FAILED) die "batch $id of $1 FAILED" ;;
			CACHED | SYNCING | CACHED_SYNCED | SYNCED) break ;;
			esac
		fi
		sleep 0.02
	done
	SEALED_S=$(since "$t0")
	SEALED_ID=$id
}

# wait_synced ID: waits until batch ID is on tape (CACHED_SYNCED).
wait_synced() {
	local state i
	for ((i = 0; i < 36000; i++)); do
		state=$(getfattr --absolute-names --only-values -n user.tapefs.state "$MNT/default/$1" 2>/dev/null || true)
		[[ $state == FAILED ]] && die "batch $1 FAILED"
		[[ $state == CACHED_SYNCED ]] && return 0
		sleep 0.1
	done
	die "batch $1 not on tape after an hour"
}

# rounds FN...: each function REPEAT times, the order rotated each round;
# each prints the seconds it measured, kept in T_<FN>.
rounds() {
	local r i n=$# name t names=("$@")
	for name in "${names[@]}"; do eval "T_$name=()"; done
	for ((r = 0; r < REPEAT; r++)); do
		for ((i = 0; i < n; i++)); do
			name=${names[(i + r) % n]}
			"$name"
			t=$RESULT
			eval "T_$name+=(\"\$t\")"
		done
	done
}
# stats FN: MED, LO, HI of FN's rounds (seconds).
stats() {
	local arr="T_$1[@]"
	local ts=("${!arr}")
	MED=$(printf '%s\n' "${ts[@]}" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	LO=$(printf '%s\n' "${ts[@]}" | sort -g | head -1)
	HI=$(printf '%s\n' "${ts[@]}" | sort -g | tail -1)
}
ROWS=()
# row NAME TAPEFS_FN NATIVE_FN TARGET [LOOPBACK_FN]: ratio = native time /
# tapefs time (speed relative to native; 1 is native speed); the same
# ratio of the loopback for reference.
row() {
	local mt lt ht mn ln hn lb="–"
	stats "$2"; mt=$MED lt=$LO ht=$HI
	stats "$3"; mn=$MED ln=$LO hn=$HI
	if [[ -n ${5:-} ]]; then
		stats "$5"
		lb=$(awk -v m="$MED" -v l="$LO" -v h="$HI" -v mn="$mn" 'BEGIN { printf "%.2f s (%.2f–%.2f): %.2f", m, l, h, mn / m }')
	fi
	ROWS+=("$(awk -v name="$1" -v mt="$mt" -v lt="$lt" -v ht="$ht" -v mn="$mn" -v ln="$ln" -v hn="$hn" -v tg="$4" -v lb="$lb" 'BEGIN {
		printf "| %s | %.2f s (%.2f–%.2f) | %.2f s (%.2f–%.2f) | %.2f | %s | %s |", name, mt, lt, ht, mn, ln, hn, mn / mt, lb, tg }')")
	log "${ROWS[-1]}"
}
LOAD0=$(cut -d' ' -f1 /proc/loadavg)

# 1. Listing a batch tree.
if [[ $SKIP != list ]]; then
	ENTRIES=$((DIRS * FILES + DIRS))
	log "1. ls -lR / find / du -s of $ENTRIES entries, cold, $REPEAT rounds"
	make_tree() {
		mkdir -p "$1"
		(cd "$1" && awk -v d="$DIRS" -v f="$FILES" 'BEGIN {
			for (i = 0; i < d; i++) { dir = sprintf("d%03d", i); system("mkdir " dir)
				for (j = 0; j < f; j++) { p = dir "/f" j; printf "%d\n", i * f + j > p; close(p) } } }')
	}
	make_tree "$W/native/tree"
	log "   building go-fuse's loopback example into bin/loopback, mounted on the native tree"
	"$GO" build -o "$LOOPBACK" github.com/hanwen/go-fuse/v2/example/loopback
	mkdir -p "$LBMNT"
	"$LOOPBACK" -directmountstrict "$LBMNT" "$W/native" >"$W/loopback.out" 2>&1 &
	LPID=$!
	mounted "the loopback" "$LPID" "$W/loopback.out" "Mounted!"
	# Into put/ beside the daemon (the staging directory is put/'s
	# backing store, same disk): a copy through the mount would time
	# nothing here and take minutes.
	cp -a "$W/native/tree" "$W/home/cache/put/default/tree"
	seal tree
	LISTID=$SEALED_ID
	log "   batch $LISTID sealed in $SEALED_S s"
	# Listed once it is on tape: its migration must not compete.
	wait_synced "$LISTID"
	B=$MNT/default/$LISTID/tree
	N=$W/native/tree
	L=$LBMNT/tree
	[[ $(find "$B" -mindepth 1 | wc -l) == "$ENTRIES" ]] || die "$B does not list $ENTRIES entries"
	# Same names, types, modes and file sizes (directory sizes differ).
	shape() { (cd "$1" && find . \( -type f -printf '%p f %s %m\n' \) -o -printf '%p %y %m\n' | sort); }
	diff <(shape "$N") <(shape "$B") >/dev/null || die "the batch tree differs from the native one"
	# quiesce waits (at most 10 s) until neither daemon has used CPU for
	# 0.3 s: dropping the caches makes the kernel FORGET every inode of
	# both mounts, and a daemon busy with that would be timed with
	# whichever contender runs next.
	quiesce() {
		local prev=-1 cur i
		for ((i = 0; i < 100; i++)); do
			cur=0
			for p in $TPID $LPID; do
				cur=$((cur + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
			done
			[[ $cur == "$prev" ]] && return 0
			prev=$cur
			sleep 0.3
		done
	}
	# timed CMD DIR: cold run of CMD on DIR, seconds in RESULT.
	timed() {
		local t0
		drop_caches
		quiesce
		t0=$(now)
		bash -c "$1 >/dev/null" _ "$2"
		RESULT=$(since "$t0")
	}
	LS='ls -lR "$1"'
	FIND='find "$1"'
	DU='du -s "$1"'
	# twice NAME CMD: the mount's run of CMD, cold twice over: first with
	# the catalog's pages dropped as well (the daemon hands its mapping of
	# them back every 10 s, and only then can the kernel drop them), then
	# at once again with them still in memory, as on a daemon that
	# listed something lately (kept in T_NAME_warm).
	twice() {
		local cold
		sleep 11
		timed "$2" "$B"
		cold=$RESULT
		timed "$2" "$B"
		eval "T_$1_warm+=(\"\$RESULT\")"
		RESULT=$cold
	}
	T_ls_tapefs_warm=() T_find_tapefs_warm=() T_du_tapefs_warm=()
	ls_tapefs() { twice ls_tapefs "$LS"; }
	ls_native() { timed "$LS" "$N"; }
	ls_loopback() { timed "$LS" "$L"; }
	find_tapefs() { twice find_tapefs "$FIND"; }
	find_native() { timed "$FIND" "$N"; }
	find_loopback() { timed "$FIND" "$L"; }
	du_tapefs() { twice du_tapefs "$DU"; }
	du_native() { timed "$DU" "$N"; }
	du_loopback() { timed "$DU" "$L"; }
	rounds ls_tapefs ls_native ls_loopback
	row "\`ls -lR\` of $ENTRIES entries, cold" ls_tapefs ls_native "≥ 0.5" ls_loopback
	row "\`ls -lR\`, cold but the catalog's pages in memory" ls_tapefs_warm ls_native "–"
	rounds find_tapefs find_native find_loopback
	row "\`find\` of $ENTRIES entries, cold" find_tapefs find_native "≥ 0.9" find_loopback
	row "\`find\`, cold but the catalog's pages in memory" find_tapefs_warm find_native "–"
	rounds du_tapefs du_native du_loopback
	row "\`du -s\` of $ENTRIES entries, cold" du_tapefs du_native "≥ 0.9" du_loopback
	row "\`du -s\`, cold but the catalog's pages in memory" du_tapefs_warm du_native "–"
	umount "$LBMNT" && wait "$LPID"
	LPID=
	rm -rf "$N"
fi

# 2. Sealing.
if [[ $SKIP != seal ]]; then
	log "2. seal of $SEAL_FILES × 4 KiB against cp -r + sync on native disk, $REPEAT rounds"
	SRC=$W/native/src
	mkdir -p "$SRC"
	# Distinct contents (every md5 differs), 4 KiB each, 1,000 per directory.
	(cd "$SRC" && awk -v n="$SEAL_FILES" 'BEGIN {
		pad = sprintf("%4088s", ""); gsub(/ /, "x", pad)
		for (i = 0; i < n; i++) {
			if (i % 1000 == 0) { dir = sprintf("d%03d", i / 1000); system("mkdir " dir) }
			p = dir "/f" i; printf "%07d\n%s", i, pad > p; close(p) } }')
	ROUND=0
	seal_tapefs() {
		ROUND=$((ROUND + 1))
		# Through the mount, as a user would; untimed.
		cp -r "$SRC" "$PUT/seal$ROUND"
		drop_caches
		seal "seal$ROUND"
		RESULT=$SEALED_S
		log "   seal of batch $SEALED_ID: $RESULT s"
		# Its migration (untimed) must not compete with the next round.
		wait_synced "$SEALED_ID"
		# tapefs rm: one soft delete (rm -r through the mount hides the
		# 100,000 entries one by one, minutes).
		"$BIN" rm --home "$W/home" -b "$SEALED_ID" >/dev/null
	}
	seal_native() {
		local t0
		rm -rf "$W/native/copy"
		drop_caches
		t0=$(now)
		cp -r "$SRC" "$W/native/copy"
		sync
		RESULT=$(since "$t0")
		log "   native cp -r + sync: $RESULT s"
	}
	rounds seal_tapefs seal_native
	row "seal of $SEAL_FILES × 4 KiB (setfattr to CACHED) vs cp -r + sync" seal_tapefs seal_native "≥ 0.5 (seal ≤ 2× cp -r)"
fi

echo
echo "$(date -u '+%Y-%m-%d %H:%M') UTC, $(uname -r), $(nproc) CPUs, load average $LOAD0 -> $(cut -d' ' -f1 /proc/loadavg); median of $REPEAT interleaved rounds (range); ratio = native time / tapefs time (1 = native speed)"
echo
echo "| benchmark | tapefs | native (same run) | ratio | go-fuse loopback (same run): ratio | target |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
