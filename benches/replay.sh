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
cargo build --release -q -p weft
WEFT=$PWD/target/release/weft

work=$(mktemp -d /tmp/weft-replay.XXXXXX)
chmod 755 "$work"   # nginx workers run as nobody
WPID=
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; [ -n "$WPID" ] && kill -INT $WPID 2>/dev/null; rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
python3 -c 'import base64, os, sys; open(sys.argv[1], "w").write(base64.b64encode(os.urandom(49152)).decode())' "$work/big.txt"
chmod 644 "$work/big.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/logs/error.log warn;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f;
  uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server {
    listen 127.0.0.1:$PORT ssl http2;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    keepalive_requests 1000000;
    location = /small { default_type text/plain; return 200 "ok\n"; }
    location = /big { alias $work/big.txt; default_type text/plain; }
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"
sleep 0.5

record() { # name, then the load command
  local name=$1; shift
  "$WEFT" --record "$work/$name.weftrec" --bench-discard --ring-size 64M > /dev/null 2> "$work/$name.err" &
  WPID=$!
  for _ in $(seq 1 600); do grep -q ready "$work/$name.err" && break; sleep 0.02; done
  grep -q ready "$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
  "$@" > "$work/$name.load" 2>&1
  sleep 0.5
  kill -INT $WPID; wait $WPID; WPID=
  if grep -Eq "ring buffer full|lost" "$work/$name.err"; then
    echo "warning: the $name recording lost records:" >&2; grep -E "full|lost" "$work/$name.err" >&2
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
