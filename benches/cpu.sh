#!/usr/bin/env bash
# Where a mode's throughput goes: for each mode in turn, one load's req/s,
# the whole machine's busy CPU per request, its idle share, and the CPU per
# request of nginx's worker and of weft's threads (/proc, ticks of 10 ms:
# use runs of several seconds). A mode that lowers req/s without raising the
# busy CPU per request left the CPUs idle (waits) rather than busy.
#
# Usage (root): bash benches/cpu.sh TOOL PATH SECONDS MODE...
#   TOOL  h2 (h2load -c4 -m10) or wrk (wrk -t1 -c4)
#   PATH  small (3 bytes) or big (64 KiB)
#   MODE  none | floor | copy | weft | null (weft --json > /dev/null) |
#         background; repeat modes for interleaved rounds, e.g.
#         bash benches/cpu.sh h2 small 6 floor weft null floor weft null
# WEFT_ARGS adds arguments to weft, null and background.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n 2,15p "$0" >&2; exit 2; }
TOOL=$1 PATH_=$2 SECS=$3
shift 3
case $TOOL in h2|wrk) ;; *) echo "TOOL: h2 or wrk" >&2; exit 2;; esac
case $PATH_ in small|big) ;; *) echo "PATH: small or big" >&2; exit 2;; esac
for m in "$@"; do
  case $m in none|floor|copy|weft|null|background) ;; *) echo "unknown mode: $m" >&2; exit 2;; esac
done
command -v wrk >/dev/null && command -v h2load >/dev/null || {
  echo "needs wrk and h2load: apt-get install wrk nghttp2-client" >&2; exit 1; }
. benches/lib.sh
bench_setup
bench_nginx
NGW=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# busy and idle (idle + iowait) ticks of all CPUs
cpu() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }

echo "$TOOL $PATH_, ${SECS} s per mode; CPU in us per request"
for mode in "$@"; do
  WPID=
  case $mode in
    none) ;;
    floor) start_weft --bench-floor ;;
    copy) start_weft --bench-floor copy ;;
    weft) start_weft --json ${WEFT_ARGS:-} ;;
    null) WEFT_OUT=/dev/null start_weft --json ${WEFT_ARGS:-} ;;
    background) start_weft --json --background ${WEFT_ARGS:-} ;;
  esac
  sleep 0.5
  read -r b0 i0 < <(cpu); n0=$(ticks "$NGW"); w0=0; [ -n "$WPID" ] && w0=$(ticks "$WPID")
  rps=$("${TOOL}_rps" "$PATH_")
  read -r b1 i1 < <(cpu); n1=$(ticks "$NGW"); w1=0; [ -n "$WPID" ] && w1=$(ticks "$WPID")
  [ -n "$WPID" ] && stop_weft
  python3 - "$mode" "${rps:-0}" "$SECS" "$(nproc)" $((b1 - b0)) $((i1 - i0)) $((n1 - n0)) $((w1 - w0)) <<'PY'
import sys
mode, rps, secs, ncpu = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
busy, idle, ngx, weft = (int(x) for x in sys.argv[5:9])
n = max(rps * secs, 1)
us = lambda t: t * 1e4 / n  # 10 ms ticks -> us per request
print(f"{mode:10s} {rps:9.0f} req/s  busy {us(busy):6.2f}  idle {idle / (100 * secs * ncpu):6.1%}"
      f"  nginx {us(ngx):6.2f}  weft {us(weft):5.2f}  rest {us(busy - ngx - weft):6.2f}")
PY
done
