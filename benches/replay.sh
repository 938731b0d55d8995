#!/usr/bin/env bash
# The user-space pipeline alone, without the kernel (issue 6, benchmark 3):
# real ring-buffer records are recorded once (`weft --record`) while load
# generators talk to nginx, then replayed (`weft --replay`) as fast as the
# stages go. Figures are per CPU-second of weft's process (all threads), so
# they are per-core rates whatever the machine is doing.
#
#   assemble+decode: --bench-discard (events built, then dropped unencoded)
#   end to end:      --json > /dev/null
#
# Loads: h2load (HTTP/2) and wrk (HTTP/1.1), 3-byte responses (many small
# TLS records: the per-record cost), and wrk with 64 KiB responses (MB/s).
#
# Usage (root, for the recording): bash benches/replay.sh [REQUESTS]
#   (default 50000 requests per load). Output: a Markdown table on stdout.
# Set KEEP=DIR to keep the recordings in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}

command -v wrk >/dev/null && command -v h2load >/dev/null || {
  echo "needs wrk and h2load: apt-get install wrk nghttp2-client" >&2; exit 1; }
. benches/lib.sh
bench_setup
bench_nginx

record() { # name, then the load command
  local name=$1; shift
  start_weft --record "$work/$name.weftrec" --bench-discard --ring-size 64M
  "$@" > "$work/$name.load" 2>&1
  sleep 0.5
  stop_weft
  if grep -Eq "ring buffer full: .* [1-9]" "$work/err"; then
    echo "warning: the $name recording lost records (counted):" >&2; grep -E "full" "$work/err" >&2
  fi
}
record h2small h2load -n "$N" -c 4 -m 10 "https://127.0.0.1:$PORT/small"
record h1small wrk -t1 -c4 -d"$((N / 8000 + 1))s" "https://127.0.0.1:$PORT/small"
record h1big wrk -t1 -c4 -d"$((N / 40000 + 2))s" "https://127.0.0.1:$PORT/big"
[ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/*.weftrec "$KEEP"/

replay() { # name, mode flags...; prints "calls bytes events cpu calls/s events/s MB/s"
  local name=$1; shift
  "$WEFT" --replay "$work/$name.weftrec" --workers 1 "$@" > /dev/null 2> "$work/replay.err"
  python3 - "$work/replay.err" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"replayed \d+ records \((\d+) library calls, (\d+) bytes\) into (\d+) events in [\d.]+ s \(([\d.]+) CPU-s: (\d+) calls/s, (\d+) events/s, ([\d.]+) MB/s", t)
if not m: sys.exit("no replay summary in:\n" + t)
print(*m.groups())
PY
}

echo "requests per load: $N; weft --replay --workers 1; rates per CPU-second of weft (all threads)"
echo
echo "| recording | TLS calls | events | stage | CPU s | calls/s | events/s | MB/s |"
echo "|---|---|---|---|---|---|---|---|"
for name in h2small h1small h1big; do
  for stage in discard json; do
    case $stage in
      discard) r=$(replay $name --bench-discard); label="assemble+decode" ;;
      json) r=$(replay $name --json); label="end to end (JSON)" ;;
    esac
    read -r recs bytes events cpu rps eps mbs <<< "$r"
    echo "| $name | $recs | $events | $label | $cpu | $rps | $eps | $mbs |"
  done
done
