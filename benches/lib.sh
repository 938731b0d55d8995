# Shared by the benchmarks (sourced, not run): a work directory, a TLS nginx
# on loopback, and weft started and stopped with its time to `ready`.
#
#   bench_setup                   builds weft (release), makes $work, sets
#                                 $WEFT; everything is cleaned up at exit
#   bench_nginx [KEY] [CONNS] [LISTEN_EXTRA] [HTTP_EXTRA]
#                                 nginx with /small (3 bytes) and /big
#                                 (64 KiB) on $PORT; KEY rsa (default) or ec
#   start_weft ARGS...            weft ARGS > $work/events.ndjson (or > $WEFT_OUT); sets WPID
#                                 and START (seconds to ready)
#   stop_weft                     SIGINT and wait
#   wrk_rps PATH / h2_rps PATH    req/s of wrk -t1 -c4 (HTTP/1.1) / h2load
#                                 -c4 -m10 (HTTP/2) on /PATH for $SECS s
#                                 (wrk's p99 latency in us: $work/wrk_p99)

bench_cleanup() {
  kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  [ -n "${WPID:-}" ] && kill -INT "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${BPF_STATS_WAS:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_WAS" 2>/dev/null
  rm -rf "$work"
}

bench_setup() {
  cargo build --release -q -p weft
  WEFT=$PWD/target/release/weft
  work=$(mktemp -d /tmp/weft-bench.XXXXXX)
  chmod 755 "$work"   # nginx workers run as nobody: they must read big.txt
  WPID=
  BENCH_PIDS=()       # more processes of the benchmark's own, stopped at exit
  # The kernel's per-program statistics cost every BPF run two clock reads:
  # off while throughput is measured (a tool that left them on would bias
  # every mode but (a)); weft's --metrics turns them on for its own run only.
  BPF_STATS_WAS=$(cat /proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true)
  [ "$BPF_STATS_WAS" = 1 ] && sysctl -qw kernel.bpf_stats_enabled=0
  trap bench_cleanup EXIT
}

bench_nginx() {
  local key=${1:-rsa} conns=${2:-1024} listen_extra=${3:-} http_extra=${4:-}
  if [ "$key" = ec ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
      -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  else
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
      -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  fi
  python3 -c 'import base64, os, sys; open(sys.argv[1], "w").write(base64.b64encode(os.urandom(49152)).decode())' "$work/big.txt"
  chmod 644 "$work/big.txt"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/logs"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $((conns + 8000));
error_log $work/logs/error.log warn;
pid $work/nginx.pid;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f;
  uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  $http_extra
  server {
    listen 127.0.0.1:$PORT ssl http2 $listen_extra;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location = /small { default_type text/plain; return 200 "ok\n"; }
    location = /big { alias $work/big.txt; default_type text/plain; }
  }
}
CONF
  nginx -p "$work" -c "$work/nginx.conf"
  sleep 0.5
  local size; size=$(curl -sk "https://127.0.0.1:$PORT/big" | wc -c)
  [ "$size" = 65536 ] || { echo "nginx serves $size bytes for /big, not 65536" >&2; exit 1; }
}

start_weft() {
  : > "$work/err"
  local t0; t0=$(date +%s.%N)
  # The packet path goes on lo only (the benchmarks run on loopback; weft
  # never puts programs on the machine's NIC from a benchmark) unless the
  # caller chose (--interface, --no-tc).
  local pp=(--interface lo)
  case " $* " in *" --interface"*|*" --no-tc "*) pp=();; esac
  "$WEFT" "${pp[@]}" "$@" > "${WEFT_OUT:-$work/events.ndjson}" 2> "$work/err" &
  WPID=$!
  for _ in $(seq 1 3000); do grep -q ready "$work/err" && break; sleep 0.005; done
  grep -q ready "$work/err" || { cat "$work/err" >&2; exit 1; }
  START=$(echo "$(date +%s.%N) - $t0" | bc)
}

stop_weft() { kill -INT "$WPID"; wait "$WPID" || true; WPID=; }

# wrk_rps also leaves wrk's 99th-percentile latency, in us, in $work/wrk_p99.
wrk_rps() {
  wrk -t1 -c4 -d"${SECS}s" --latency "https://127.0.0.1:$PORT/$1" 2>/dev/null | awk -v f="$work/wrk_p99" '
    /Requests\/sec/ {print $2}
    /^ +99%/ {v = $2; m = 1; if (v ~ /ms$/) m = 1000; else if (v ~ /[0-9]s$/) m = 1000000
              sub(/[a-z]+$/, "", v); print v * m > f}'
}
h2_rps() { h2load -c4 -m10 -D "$SECS" "https://127.0.0.1:$PORT/$1" 2>/dev/null | awk '/^finished in/ {gsub(",","",$4); print $4}'; }
