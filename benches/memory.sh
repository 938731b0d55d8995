#!/usr/bin/env bash
# Issue 6, benchmark 4 (load part): weft's resident memory with 5,000
# concurrent HTTP/2 connections, and after they close.
#
# nginx (TLS with an ECDSA P-256 key, one worker, 12,000 worker connections)
# on loopback; `h2load -c 5000 --rps 1` keeps 5,000 HTTP/2 connections open
# with one request per second each for DURATION seconds. weft captures the
# whole host (both ends are probed: 10,000 flows) with JSON output to a file.
# VmRSS is sampled before, at the end of the load (peak of the samples), and
# every 10 s after the connections close, up to AFTER seconds (weft closes
# idle flows after 120 s).
#
# Usage (root): bash benches/memory.sh [DURATION] [AFTER]   (default 20 150)
# WEFT_ARGS: extra weft flags (e.g. "--workers 1"); WEFT_BIN: a weft binary
# to measure instead of building this tree's. MEMORY_DETAIL=1: keep
# /proc/PID/smaps from the 1-s sample with the most RSS and print it by part
# (heap, other anonymous, ring, files).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
AFTER=${2:-150}
N=5000

command -v h2load >/dev/null || { echo "needs h2load: apt-get install nghttp2-client" >&2; exit 1; }
ulimit -n 20000
if [ -n "${WEFT_BIN:-}" ]; then
  WEFT=$WEFT_BIN   # a binary to compare, used as it is
else
  cargo build --release -q -p weft
  WEFT=$PWD/target/release/weft
fi

work=$(mktemp -d /tmp/weft-bench.XXXXXX)
chmod 755 "$work"
WPID=
cleanup() {
  kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  [ -n "$WPID" ] && kill -INT "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $work/logs/error.log warn;
pid $work/nginx.pid;
events { worker_connections 12000; }
http {
  access_log off;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f;
  uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$PORT ssl http2 backlog=8192;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /small { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"
sleep 0.5

rss() { awk '/VmRSS/ {print $2}' "/proc/$WPID/status"; }
# RssAnon: weft's own heap and stacks. The rest of VmRSS is file-backed:
# the executable and the ring buffer's pages (mapped from the kernel,
# counted once touched, and counted twice: the data area is mapped twice).
anon() { awk '/RssAnon/ {print $2}' "/proc/$WPID/status"; }
# shellcheck disable=SC2086
"$WEFT" --json --interface lo ${WEFT_ARGS:-} > "$work/events.ndjson" 2> "$work/err" &
WPID=$!
for _ in $(seq 1 1500); do grep -q ready "$work/err" && break; sleep 0.01; done
grep -q ready "$work/err" || { cat "$work/err" >&2; exit 1; }
sleep 1
idle=$(rss); idle_anon=$(anon)

h2load -c "$N" -m 1 --rps 1 -D "$DURATION" "https://127.0.0.1:$PORT/small" > "$work/h2load.out" 2>&1 &
H=$!
peak=0; peak_anon=0; conns=0
while kill -0 $H 2>/dev/null; do
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  a=$(anon); [ "$a" -gt "$peak_anon" ] && peak_anon=$a
  if [ -n "${MEMORY_DETAIL:-}" ] && [ "$r" -ge "$peak" ]; then cp "/proc/$WPID/smaps" "$work/smaps.peak"; fi
  c=$(ss -Htn state established "( sport = :$PORT )" | wc -l); [ "$c" -gt "$conns" ] && conns=$c
  sleep 1
done
wait $H || true
end=$(rss)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$WPID/status")   # the kernel's exact peak
if [ -n "${MEMORY_DETAIL:-}" ]; then
  # Mappings by part at the highest 1-s sample: [heap] is glibc's main
  # arena; anonymous mappings are its other arena (weft allows two) and the
  # threads' stacks; the ring buffer is the anon_inode:bpf-map mapping.
  python3 - "$work/smaps.peak" <<'PY'
import re, sys
parts = {}
name = None
for line in open(sys.argv[1]):
    m = re.match(r"[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        name = m.group(1).strip() or "[anon: other arenas, stacks]"
        if name.startswith("/") and "anon_inode" not in name:
            name = "[files]"
    elif line.startswith("Rss:"):
        parts[name] = parts.get(name, 0) + int(line.split()[1])
for n, kb in sorted(parts.items(), key=lambda x: -x[1]):
    if kb >= 256:
        print(f"  smaps at peak sample: {n:28} {kb / 1024:7.1f} MiB")
PY
fi
after=""
for t in $(seq 10 10 "$AFTER"); do sleep 10; after+="${t}s:$(( $(rss) / 1024 )) (anon $(( $(anon) / 1024 ))) "; done

echo "5,000 HTTP/2 connections (h2load -c $N -m 1 --rps 1 -D $DURATION), weft --json, whole host:"
grep -E "^requests:|^finished in" "$work/h2load.out" | sed 's/^/  h2load: /'
echo "  established server-side connections seen (max of 1-s samples): $conns"
echo "  VmRSS idle before: $((idle / 1024)) MiB (RssAnon $((idle_anon / 1024)) MiB); peak (VmHWM, exact): $((hwm / 1024)) MiB; 1-s samples: VmRSS $((peak / 1024)) MiB, RssAnon $((peak_anon / 1024)) MiB; when h2load ended: $((end / 1024)) MiB"
echo "  VmRSS after the connections closed (MiB): $after"
echo "  JSON events written: $(wc -l < "$work/events.ndjson")"
kill -INT "$WPID"; wait "$WPID" || true; WPID=
echo "weft's statistics:"
grep -vE " 0$" "$work/err" | sed 's/^/  /'
