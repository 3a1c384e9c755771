#!/usr/bin/env bash
# bench_rss.sh - the daemon's resident memory as the archive grows (issue
# 10: ≤ 100 MB, and the same at 100,000 and 1,000,000 files). The real
# binary and a real mount: batches of TAPEFS_BENCH_RSS_FILES small files
# are put with `tapefs put -f LIST` (sealed on return), migrated to the
# virtual library (--time-scale 0), and listed through the mount (ls -lR,
# find -printf %s); the daemon's VmRSS is read after each step, and its
# high-water mark (VmHWM) at the end. Run by `make bench` after `make build`.
#
#   TAPEFS_BENCH_RSS_FILES    files per batch (default 100000)
#   TAPEFS_BENCH_RSS_BATCHES  batches (default 1; 10 makes 1,000,000 files)
#   TAPEFS_BENCH_DIR          where the files and the home go (default /var/tmp)
#   TAPEFS_BIN                the binary (default bin/tapefs)
#   TAPEFS_BENCH_RSS_PROFILE=DIR  also save the daemon's heap profile
#                             after each batch there (go tool pprof)
#   TAPEFS_BENCH_RSS_IDLE     seconds to wait after each listing before the
#                             row "idle" (default 45: the mount drops the
#                             kernel's entries of trees idle for 30 s, and
#                             the catalog's mapped pages every 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TAPEFS_BIN:-$PWD/bin/tapefs}
N=${TAPEFS_BENCH_RSS_FILES:-100000}
B=${TAPEFS_BENCH_RSS_BATCHES:-1}
PROF=${TAPEFS_BENCH_RSS_PROFILE:-}
IDLE=${TAPEFS_BENCH_RSS_IDLE:-45}
WORK=$(mktemp -d "${TAPEFS_BENCH_DIR:-/var/tmp}/tapefs-bench-rss.XXXXXX")
MNT=$WORK/mnt
DAEMON=
cleanup() {
	set +e
	[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf 'bench_rss: %s\n' "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

log "creating $N files under $WORK/src"
mkdir -p "$WORK/src" "$MNT"
(cd "$WORK/src" && seq 0 $((N - 1)) | awk '{d = sprintf("d%03d", int($1 / 1000)); if (!(d in made)) { system("mkdir -p " d); made[d] = 1 }; f = d "/f" $1; print $1 > f; close(f)}')

# A free loopback port for the profiles.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TAPEFS_PPROF=127.0.0.1:$port "$BIN" mount --home "$WORK/home" --http '' --time-scale 0 --settle 1s --flush-age 1s \
	--cartridge-size 2G --cartridges 40 "$MNT" 2>"$WORK/mount.err" &
DAEMON=$!
for _ in $(seq 300); do grep -qs "tapefs: mounted at $MNT\$" "$WORK/mount.err" && break; sleep 0.2; done
grep -qs "tapefs: mounted at $MNT\$" "$WORK/mount.err" || die "no mount: $(tail -5 "$WORK/mount.err")"

rss() { awk '$1 == "VmRSS:" { printf "%.0f", $2 / 1024 }' "/proc/$DAEMON/status"; }
# rssparts: anonymous memory (the heap, stacks) and file pages mapped (the
# catalog's bbolt file, which the kernel can drop at any time), MB.
rssparts() { awk '$1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 } END { printf "%.0f / %.0f", a / 1024, f / 1024 }' "/proc/$DAEMON/status"; }
hwm() { awk '$1 == "VmHWM:" { printf "%.0f", $2 / 1024 }' "/proc/$DAEMON/status"; }
# heap: the Go heap in use and the heap the runtime holds from the OS, MB.
heap() {
	curl -fsS "http://127.0.0.1:$port/debug/pprof/heap?debug=1" | awk '
		$2 == "HeapInuse" { u = $4 } $2 == "HeapSys" { s = $4 } $2 == "HeapReleased" { r = $4 }
		END { printf "%.0f/%.0f", u / 1048576, (s - r) / 1048576 }'
}
ROWS=()
PEAK=0
# sample: remembers the largest RSS seen while waiting (and, with
# TAPEFS_BENCH_RSS_PROFILE, the heap profile taken then).
sample() {
	local r
	r=$(rss)
	if ((r > PEAK)); then
		PEAK=$r
		[ -n "$PROF" ] && mkdir -p "$PROF" && curl -fsS "http://127.0.0.1:$port/debug/pprof/heap" >"$PROF/heap.peak.pb.gz"
	fi
	return 0
}
row() { ROWS+=("| $1 | $2 | $(rss) | $(rssparts) | $(heap) |"); log "${ROWS[-1]}"; }

row "start" 0
total=0
for ((b = 1; b <= B; b++)); do
	# Every batch has its own names (the same files under another top
	# directory): put -f archives the paths listed.
	mv "$WORK/src" "$WORK/b$b"
	find "$WORK/b$b" -type f >"$WORK/list"
	t0=$(date +%s)
	"$BIN" put --home "$WORK/home" -f "$WORK/list" >"$WORK/id" &
	putpid=$!
	while kill -0 $putpid 2>/dev/null; do
		sample
		sleep 0.5
	done
	wait $putpid || die "put -f failed"
	id=$(cat "$WORK/id")
	total=$((total + N))
	row "batch $b ($id) sealed, $(($(date +%s) - t0)) s" $total
	for _ in $(seq 6000); do
		st=$("$BIN" ls --home "$WORK/home" -b "$id" -L batch -F json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["state"])')
		case $st in *SYNCED) break ;; esac
		[ "$st" = FAILED ] && die "batch $id FAILED"
		sample
		sleep 0.5
	done
	[[ $st == *SYNCED ]] || die "batch $id not on tape: $st"
	row "batch $b on tape" $total
	dir=$(ls -d "$MNT"/default/"$id")
	ls -lR "$dir" >/dev/null
	find "$dir" -printf '%s\n' >/dev/null
	row "batch $b listed (ls -lR, find)" $total
	[ -n "$PROF" ] && mkdir -p "$PROF" && curl -fsS "http://127.0.0.1:$port/debug/pprof/heap" >"$PROF/heap.$b.pb.gz"
	sleep "$IDLE"
	row "batch $b listed, idle $IDLE s" $total
	mv "$WORK/b$b" "$WORK/src"
	[ -n "$PROF" ] && curl -fsS "http://127.0.0.1:$port/debug/pprof/heap" >"$PROF/heap.$b.idle.pb.gz"
done
ls -lR "$MNT/default" >/dev/null
row "all listed again" $total
sleep "$IDLE"
row "all listed again, idle $IDLE s" $total
echo "| step | files in the catalog | daemon RSS MB | anon / file MB | Go heap in use / held MB |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo "daemon RSS high-water mark: $(hwm) MB (largest sampled while putting and migrating: $PEAK MB); load average $(cut -d' ' -f1-3 /proc/loadavg)"
