#!/usr/bin/env bash
# Nothing lost silently (issue 6, benchmark 2): weft's HTTP transactions
# against what the load generator itself completed.
#
#   1. the floor's rate: h2load against nginx under `weft --bench-floor`
#      (every hook, empty programs) gives the request rate (b) sustains;
#   2. at that rate: h2load sends a fixed number of requests (-n) paced at
#      (b)'s rate while `weft --json` runs; every request h2load counts as
#      succeeded must appear exactly once as a complete http event on the
#      client side (h2load's pid) and once on the server side (nginx's
#      worker), and every loss counter must stay 0;
#   3. past it: unpaced, 64 KiB responses, with a ring buffer too small
#      for the load (--ring-size), so records are lost: the reported transactions
#      plus the ones weft flags as damaged (data_lost / incomplete) plus the
#      HTTP/2 requests it counts as lost whole (stream ids skipped after a
#      gap, or after the last header block seen up to the connection's last
#      stream per the kernel's end record; HTTP/1.1: request calls lost
#      whole with no response) are set
#      against the completed ones, beside the counted drops.
#
# HTTP/2 (h2load) and HTTP/1.1 (h2load --h1).
#
# Usage (root): bash benches/completeness.sh [REQUESTS] [RING]
#   (default 40000 requests per run, 256K ring for step 3)
# Output: a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-40000}
SMALL_RING=${2:-256K}

command -v h2load >/dev/null || { echo "needs h2load: apt-get install nghttp2-client" >&2; exit 1; }
. benches/lib.sh
bench_setup
bench_nginx

worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)

# h2load's "requests: ... succeeded" count, and its pid, for the given flags.
run_h2load() { # out-file, path, flags...
  local out=$1 path=$2; shift 2
  h2load "$@" "https://127.0.0.1:$PORT/$path" > "$out" 2>&1 &
  LOADPID=$!
  wait "$LOADPID" || true
}

# "<client complete> <client damaged> <server complete> <server damaged>" in
# $work/events.ndjson for the load's pid and nginx's worker.
count_events() {
  python3 - "$work/events.ndjson" "$LOADPID" "$worker" <<'PY'
import json, sys
path, client, server = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = {(client, True): 0, (client, False): 0, (server, True): 0, (server, False): 0}
for line in open(path, errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event", {}).get("action") != "http-transaction":
        continue
    pid = e.get("process", {}).get("pid")
    if pid not in (client, server):
        continue
    w = e.get("weft", {}).get("http", {})
    ok = w.get("complete") is True and not w.get("data_lost")
    n[(pid, ok)] += 1
print(n[(client, True)], n[(client, False)], n[(server, True)], n[(server, False)])
PY
}

succeeded() { awk '/^requests:/ {for (i = 1; i <= NF; i++) if ($(i+1) ~ /^succeeded/) print $i}' "$1"; }
finished_rps() { awk '/^finished in/ {gsub(",", "", $4); print int($4)}' "$1"; }
# The loss counters of weft's exit summary that are not zero, as
# "name=value, ..." ("none" when all are 0). Rows that are not losses
# (failed non-blocking reads, nested calls, ...) are left out.
losses() {
  python3 - "$work/err" <<'PY'
import re, sys
NOT_LOST = ("non-TCP fds", "without a known socket", "calls that failed", "nested library",
            "not decoded", "HPACK unknown references", "transactions incomplete")
rows, inside = [], False
for line in open(sys.argv[1], errors="replace"):
    if "drops and losses" in line:
        inside = True
        continue
    m = re.match(r"^\s{4}(.*\S)\s+(\d+)$", line) if inside else None
    if not m:
        continue
    what, value = m.group(1), int(m.group(2))
    if value and not any(k in what for k in NOT_LOST):
        rows.append(f"{what}={value}")
print(", ".join(rows) or "none")
PY
}

echo "requests per run: $N; nginx 1 worker; h2load -c4 -m10 (HTTP/2), -c4 (HTTP/1.1)"
echo
echo "| load | step | rate (req/s) | completed (h2load) | client: complete / damaged | server: complete / damaged | unexplained | loss counters |"
echo "|---|---|---|---|---|---|---|---|"
for proto in h2 h1; do
  flags=(-c4 -m10); [ "$proto" = h1 ] && flags=(--h1 -c4 -m1)
  name="h2load HTTP/2"; [ "$proto" = h1 ] && name="h2load --h1 HTTP/1.1"

  start_weft --bench-floor
  run_h2load "$work/floor.out" small "${flags[@]}" -n "$N"
  stop_weft
  rate=$(finished_rps "$work/floor.out")
  per_client=$(( rate / 4 )); [ "$per_client" -lt 1 ] && per_client=1

  for step in at past; do
    if [ "$step" = at ]; then
      start_weft --json
      run_h2load "$work/load.out" small "${flags[@]}" -n "$N" --rps "$per_client"
    else
      start_weft --json --ring-size "$SMALL_RING"
      run_h2load "$work/load.out" big "${flags[@]}" -n "$N"
    fi
    sleep 1
    stop_weft
    done_n=$(succeeded "$work/load.out")
    read -r cc cd sc sd < <(count_events)
    lost=$(losses)
    unseen=$(awk '/requests lost whole in gaps/ {n += $NF} END {print n + 0}' "$work/err")
    gap=$(( (done_n - cc - cd) + (done_n - sc - sd) - ${unseen:-0} ))
    label="at (b)'s rate"; [ "$step" = past ] && label="past it: 64 KiB responses, ring $SMALL_RING"
    got=$(finished_rps "$work/load.out")
    [ "$step" = at ] && got="$got (paced at $rate)"
    echo "| $name | $label | $got | $done_n | $cc / $cd | $sc / $sd | $gap | $lost |"
    cp "$work/err" "$work/summary.$proto.$step"
  done
done
echo
echo "'unexplained' = (completed - client events) + (completed - server events) - requests"
echo "counted as lost whole (HTTP/2: stream ids skipped after a gap, and after the last header"
echo "block a decoder saw up to the connection's last stream the kernel walked; HTTP/1.1: request"
echo "calls lost whole that no response answered); 0 means every completed"
echo "request was reported on both ends, complete or flagged damaged, or counted as lost."
echo
echo "weft's exit summary of the last run:"
echo '```'
cat "$work/err"
echo '```'
