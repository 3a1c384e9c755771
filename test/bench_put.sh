#!/usr/bin/env bash
# bench_put.sh - `tapefs put -f LIST` of many small files (issue 8): files/s
# from the start of the command to the batch ID... and its sealing, which
# put waits for. Run by `make bench` after `make build`.
#
#   TAPEFS_BENCH_PUT_FILES  files in the list (default 100000)
#   TAPEFS_BENCH_DIR        where the files and the home go (default /var/tmp)
#   TAPEFS_BIN              the binary (default bin/tapefs)
#
# It prints the wall time, files/s, the CPU seconds of the command and of
# the daemon, and the load average, which on a shared machine says how much
# of the wall time was waiting for a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${TAPEFS_BIN:-$PWD/bin/tapefs}
N=${TAPEFS_BENCH_PUT_FILES:-100000}
WORK=$(mktemp -d "${TAPEFS_BENCH_DIR:-/var/tmp}/tapefs-bench-put.XXXXXX")
DAEMON=
cleanup() {
	[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf 'bench_put: %s\n' "$*" >&2; }

log "creating $N files under $WORK/src"
mkdir -p "$WORK/src"
(cd "$WORK/src" && seq 0 $((N - 1)) | awk '{d = sprintf("d%03d", int($1 / 1000)); if (!(d in made)) { system("mkdir -p " d); made[d] = 1 }; f = d "/f" $1; print $1 > f; close(f)}')
find "$WORK/src" -type f >"$WORK/list"

"$BIN" serve --home "$WORK/home" --http '' --time-scale 0 --flush-age 1h >"$WORK/serve.log" 2>&1 &
DAEMON=$!
for _ in $(seq 300); do [ -S "$WORK/home/tapefs.sock" ] && break; sleep 0.2; done
[ -S "$WORK/home/tapefs.sock" ] || { cat "$WORK/serve.log" >&2; exit 1; }

cpu() { awk '{print $14 + $15}' "/proc/$DAEMON/stat"; }
tck=$(getconf CLK_TCK)
c0=$(cpu)
load0=$(cut -d' ' -f1 /proc/loadavg)
sync
t0=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$WORK/time" "$BIN" put --home "$WORK/home" -f "$WORK/list" >"$WORK/out"
t1=$(date +%s.%N)
c1=$(cpu)
read -r cu cs <"$WORK/time"
awk -v n="$N" -v t0="$t0" -v t1="$t1" -v cu="$cu" -v cs="$cs" -v dc="$(((c1 - c0) / tck))" -v l0="$load0" -v l1="$(cut -d' ' -f1 /proc/loadavg)" -v id="$(cat "$WORK/out")" 'BEGIN {
	w = t1 - t0
	printf "| files | wall | files/s | put CPU (user+sys) | daemon CPU | load average |\n|---|---|---|---|---|---|\n"
	printf "| %d (batch %s) | %.1f s | %.0f | %.1f s | %d s | %s -> %s |\n", n, id, w, n / w, cu + cs, dc, l0, l1
}'
