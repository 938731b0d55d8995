#!/usr/bin/env bash
# Issue 6, benchmarks 6, 5 and 4 (idle): targeted capture, start-up, memory.
# Ratios and medians from one run (the machine is noisy: modes are
# interleaved round by round).
#
#   targeted capture: nginx (TLS, one worker) + wrk (HTTP/1.1, 3 B) on
#     loopback, (a) no probes vs (t) `weft --comm curl --json > file`; a
#     curl is run before each (t) measurement and must be captured, and the
#     nginx worker's SSL_read must keep its original first byte (no int3).
#     The ratio is the median of the per-round ratios (a and t measured
#     back to back).
#   start-up: launch to `ready` with 200 extra running processes (sleep,
#     started here and stopped by pid), whole host vs `--pid` of one.
#   memory: VmRSS and its parts (smaps) of an idle weft 1 s after ready,
#     with the default ring and with --ring-size 4M.
#
# Usage (root): bash benches/targeted.sh [ROUNDS] [SECONDS]   (default 3 5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}

command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
. benches/lib.sh
bench_setup
bench_nginx
WORKER=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)

# First byte of SSL_read in the nginx worker, as the process sees it.
ssl_read_byte() {
  local lib base off
  lib=$(awk '/libssl\.so/ {print $6; exit}' "/proc/$WORKER/maps")
  base=$(awk -v l="$lib" '$6==l && $3=="00000000" {split($1,a,"-"); print a[1]; exit}' "/proc/$WORKER/maps")
  off=$(nm -D --defined-only "$lib" | awk '$3 ~ /^SSL_read(@|$)/ {print $1; exit}')
  dd if="/proc/$WORKER/mem" bs=1 skip=$((0x$base + 0x$off)) count=1 2>/dev/null | od -An -tx1 | tr -d ' \n'
}

wrk_rps() { wrk -t1 -c4 -d"${SECS}s" "https://127.0.0.1:$PORT/small" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }

declare -A R
# --- targeted capture (benchmark 6)
for _ in $(seq 1 "$ROUNDS"); do
  R[none]+="$(wrk_rps) "
  # --no-tc: what weft does by itself with a process filter (packet flows
  # are not tied to processes, so the packet path stays off unless
  # interfaces are named); without it start_weft would name lo.
  start_weft --json --comm curl --no-tc
  before=$(ssl_read_byte)
  # A curl started after weft, fetching twice (the first transfer of a
  # process born after weft may pass before its uprobes are in): it is
  # captured; then the load, with no curl running.
  curl -sk --rate 2/s "https://127.0.0.1:$PORT/small?curl" "https://127.0.0.1:$PORT/small?curl" >/dev/null
  sleep 1
  R[comm]+="$(wrk_rps) "
  R[worker_byte]+="$before/$(ssl_read_byte) "
  stop_weft
  R[curl_events]+="$(grep -c '"name":"curl"' "$work/events.ndjson" || true) "
  R[other_events]+="$(grep -vc '"name":"curl"' "$work/events.ndjson" || true) "
done

# --- start-up with 200 more processes (benchmark 5)
SLEEPERS=()
for _ in $(seq 1 200); do sleep 3600 & SLEEPERS+=($!); BENCH_PIDS+=($!); done
NPROC=$(ls -d /proc/[0-9]* | wc -l)
TARGET=${SLEEPERS[0]}
for _ in $(seq 1 "$ROUNDS"); do
  start_weft --json; R[start_all]+="$START "; stop_weft
  start_weft --json --pid "$TARGET"; R[start_pid]+="$START "; stop_weft
done
for p in "${SLEEPERS[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${SLEEPERS[@]}" 2>/dev/null || true
SLEEPERS=()

# --- idle memory (benchmark 4)
rss_parts() { # prints "total ring heap stacks other" in KiB
  python3 - "$WPID" <<'PY'
import sys, re
pid = sys.argv[1]
tot = {"ring": 0, "heap": 0, "stacks": 0, "binary": 0, "other": 0}
name = None
for line in open(f"/proc/{pid}/smaps"):
    f = line.split()
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        name = f[5] if len(f) > 5 else ""
        continue
    if f[0] == "Rss:":
        kb = int(f[1])
        if name.startswith("anon_inode:bpf"):  # the ring (data pages mapped twice) and mmapped maps
            tot["ring"] += kb
        elif name in ("[heap]", ""):
            tot["heap"] += kb  # brk heap and anonymous mappings (malloc arenas, stacks)
        elif name.startswith("/") and "weft" in name:
            tot["binary"] += kb
        else:
            tot["other"] += kb
status = open(f"/proc/{pid}/status").read()
rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
print(rss, tot["ring"], tot["heap"], tot["binary"], tot["other"], threads)
PY
}
for ring in 16M 4M; do
  for _ in $(seq 1 "$ROUNDS"); do
    start_weft --json --ring-size "$ring"; sleep 1
    read -r rss r h b o t < <(rss_parts)
    R[rss_$ring]+="$rss "; R[ring_$ring]+="$r "; R[anon_$ring]+="$h "; R[bin_$ring]+="$b "
    R[oth_$ring]+="$o "; R[thr_$ring]+="$t "
    stop_weft
  done
done

python3 - "$ROUNDS" "$SECS" "$NPROC" <<PY
import statistics, sys
raw = {
$(for k in "${!R[@]}"; do echo "  '$k': '${R[$k]}',"; done)
}
num = lambda k: [float(x) for x in raw[k].split()]
med = lambda k: statistics.median(num(k))
print(f"rounds: {sys.argv[1]}, {sys.argv[2]} s per wrk run, medians")
print()
print("targeted capture (wrk -t1 -c4, HTTP/1.1, 3 B, req/s):")
ratios = [t / a for a, t in zip(num('none'), num('comm'))]
print(f"  (a) no probes {med('none'):.0f}, (t) weft --comm curl {med('comm'):.0f}; (t)/(a) median of rounds {statistics.median(ratios):.3f} (rounds: {' '.join(f'{r:.3f}' for r in ratios)})")
print(f"  per round (a): {raw['none'].strip()}; (t): {raw['comm'].strip()}")
print(f"  nginx worker's SSL_read first byte before/after weft started: {raw['worker_byte'].strip()}")
print(f"  curl events per round: {raw['curl_events'].strip()}; events of other processes: {raw['other_events'].strip()}")
print()
print(f"start-up to ready with {sys.argv[3]} processes running: whole host {med('start_all'):.2f} s, --pid {med('start_pid'):.2f} s")
print(f"  per round: whole host {raw['start_all'].strip()}; --pid {raw['start_pid'].strip()}")
print()
for ring in ("16M", "4M"):
    print(f"idle RSS, --ring-size {ring}: {med('rss_'+ring)/1024:.1f} MiB "
          f"(BPF mmaps, the ring {med('ring_'+ring)/1024:.1f}, anonymous/heap {med('anon_'+ring)/1024:.1f}, "
          f"weft binary {med('bin_'+ring)/1024:.1f}, other {med('oth_'+ring)/1024:.1f} MiB; {med('thr_'+ring):.0f} threads)")
PY
