#!/usr/bin/env bash
# weft's cost, as ratios measured in one run (the machine is noisy: modes are
# interleaved round by round and medians compared).
#
#   (a) none:  no probes at all
#   (b) floor: `weft --bench-floor`: every hook weft uses, with programs that
#              return at once: the kernel's trap cost, the floor of any
#              uprobe-based sensor
#   (b') copy: `weft --bench-floor copy`: (b), but the TLS library probes
#              copy each call's plaintext to the ring (weft reads and drops
#              it): the floor of any plaintext sensor, no correlation,
#              decoding or output
#   (c) weft:  `weft --json > file`: full capture, decoding and JSON output
#   (c0) weft > /dev/null: (c), but the JSON lines go to /dev/null: every
#              event is still encoded and written; only the file system's
#              part (page cache, writeback of the ~1.8 KB per event) is not
#              paid, so (c)/(c0) is what storing the output costs
#   (d) background: (c) with `--background` (weft's threads in SCHED_IDLE:
#              only CPU time the load leaves over; losses counted)
#   (b2) floor again, last in each round: an A/A pair with (b). Its ratio
#              says how far two measurements of the same thing land apart
#              in this run; a ratio nearer to another than that is noise
#
# Ratios are medians of the per-round ratios (each round's modes run back to
# back, so a slow spell of the VM moves both sides of a round together).
#
# Load: nginx (TLS, HTTP/1.1 + h2) on loopback; wrk (HTTP/1.1) and h2load
# (HTTP/2) against a small and a 64 KiB response. Both ends are OpenSSL
# programs, so both are probed. Also: wrk's 99th-percentile latency per
# mode (what a traced client waits at worst), weft's start-up time to `ready` and
# its idle RSS.
#
# Usage (root): bash benches/overhead.sh [ROUNDS] [SECONDS]   (default 3 5)
# WEFT_ARGS adds arguments to (c), e.g. WEFT_ARGS=--no-plaintext to measure
# without the socket-syscall capture (bpf/plain.bpf.c).
# Output: a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}

command -v wrk >/dev/null && command -v h2load >/dev/null || {
  echo "needs wrk and h2load: apt-get install wrk nghttp2-client" >&2; exit 1; }
. benches/lib.sh
bench_setup
bench_nginx


declare -A R
for round in $(seq 1 "$ROUNDS"); do
  for mode in none floor copy weft null background floor2; do
    case $mode in
      none) ;;
      floor) start_weft --bench-floor; R[start_floor]+="$START " ;;
      floor2) start_weft --bench-floor ;;
      null) WEFT_OUT=/dev/null start_weft --json ${WEFT_ARGS:-} ;;
      copy) start_weft --bench-floor copy ;;
      weft) start_weft --json ${WEFT_ARGS:-}; R[start_weft]+="$START "
            sleep 1; R[rss_idle]+="$(awk '/VmRSS/ {print $2}' /proc/$WPID/status) " ;;
      background) start_weft --json --background ${WEFT_ARGS:-} ;;
    esac
    for t in small big; do
      R[wrk_${t}_$mode]+="$(wrk_rps $t) "
      R[p99_${t}_$mode]+="$(cat "$work/wrk_p99") "
      R[h2_${t}_$mode]+="$(h2_rps $t) "
    done
    if [ "$mode" != none ]; then
      [ "$mode" = weft ] && R[events]+="$(wc -l < "$work/events.ndjson") "
      [ "$mode" = background ] && R[events_bg]+="$(wc -l < "$work/events.ndjson") "
      stop_weft
      [ "$mode" = null ] && R[events_null]+="$(awk '/events written/ {print $NF; exit}' "$work/err") "
      [ "$mode" = weft ] && R[stats]="$(cat "$work/err")"
      [ "$mode" = copy ] && R[copies]+="$(awk '/capture floor/ {print $3}' "$work/err") "
      [ "$mode" = background ] && R[lost_bg]+="$(grep -E 'ring buffer full|queue full' "$work/err" | awk '{n += $NF} END {print n + 0}') "
    fi
  done
done

python3 - "$ROUNDS" "$SECS" <<PY
import statistics, sys
R = {k: [float(x) for x in v.split()] for k, v in {
$(for k in "${!R[@]}"; do [ "$k" = stats ] && continue; echo "  '$k': '${R[$k]}',"; done)
}.items()}
med = lambda k: statistics.median(R[k])
def ratio(key, x, y):
    """Median over rounds of mode x / mode y for load key."""
    return statistics.median(a / b for a, b in zip(R[f"{key}_{x}"], R[f"{key}_{y}"]))
loads = [(f"{tool}_{t}", f"{name}, {size}") for tool, name in (("wrk", "wrk HTTP/1.1"), ("h2", "h2load HTTP/2"))
         for t, size in (("small", "3 B"), ("big", "64 KiB"))]
print(f"rounds: {sys.argv[1]}, {sys.argv[2]} s per measurement; req/s (medians)")
print()
print("| load | (a) no probes | (b) floor | (b') copy | (c) weft | (c0) weft > /dev/null | (d) --background | (b2) floor again |")
print("|---|---|---|---|---|---|---|---|")
for key, label in loads:
    cells = " | ".join(f"{med(f'{key}_{m}'):.0f}" for m in ("none", "floor", "copy", "weft", "null", "background", "floor2"))
    print(f"| {label} | {cells} |")
print()
print("ratios: medians of the rounds' own ratios; (b2)/(b) is the A/A pair: its range is this run's noise")
print()
print("| load | (c)/(b) | (c)/(a) | (b)/(a) | (b')/(b) | (c)/(b') | (c0)/(b) | (c)/(c0) | (d)/(b) | (b2)/(b) [min, max] |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key, label in loads:
    aa = [a / b for a, b in zip(R[f"{key}_floor2"], R[f"{key}_floor"])]
    r = lambda x, y: f"{ratio(key, x, y):.3f}"
    print(f"| {label} | **{r('weft', 'floor')}** | {r('weft', 'none')} | {r('floor', 'none')} | {r('copy', 'floor')} | "
          f"{r('weft', 'copy')} | {r('null', 'floor')} | {r('weft', 'null')} | {r('background', 'floor')} | "
          f"{statistics.median(aa):.3f} [{min(aa):.3f}, {max(aa):.3f}] |")
print()
print("wrk's 99th-percentile latency, us (medians): what the traced client waits at worst")
print()
print("| load | (a) no probes | (b) floor | (b') copy | (c) weft | (c0) weft > /dev/null | (d) --background | (b2) floor again |")
print("|---|---|---|---|---|---|---|---|")
for t, size in (("small", "3 B"), ("big", "64 KiB")):
    cells = " | ".join(f"{med(f'p99_{t}_{m}'):.0f}" for m in ("none", "floor", "copy", "weft", "null", "background", "floor2"))
    print(f"| wrk HTTP/1.1, {size} | {cells} |")
print()
print(f"start-up to ready (release): floor {med('start_floor'):.2f} s, weft {med('start_weft'):.2f} s")
print(f"idle RSS (1 s after ready): {med('rss_idle')/1024:.1f} MiB")
print(f"library calls copied per (b') run (median): {med('copies'):.0f}")
print(f"JSON events written per weft run (median): {med('events'):.0f}; to /dev/null: {med('events_null'):.0f}; with --background: {med('events_bg'):.0f}")
print(f"records lost with --background (ring or queue full, per run): {' '.join(str(int(x)) for x in R['lost_bg'])}")
PY
echo
echo "last weft run's statistics:"
echo '```'
echo "${R[stats]}"
echo '```'
