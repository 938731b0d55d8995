#!/usr/bin/env bash
# The packet path's cost: run time per packet of weft's TC programs (the
# kernel's own BPF statistics, read from weft's --metrics), and the rate of
# a TCP ping-pong (100-byte messages, one connection) and of a bulk
# transfer between two network namespaces over a veth pair, with weft
# --no-tc and with weft's TC programs on both veths (rounds interleaved,
# medians compared: the machine is noisy). Both modes run weft, so its
# syscall hooks (which every write pays) cancel out: the ratio is the
# packet path's alone.
# Everything runs in namespaces this script creates and deletes; weft's
# programs go on the two veths only (--interface).
#
# Usage (root): bash benches/packets.sh [ROUNDS]   (default 3)
#   WEFT=path/to/weft overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
if [ -z "${WEFT:-}" ]; then
  cargo build --release -q -p weft
  WEFT=$PWD/target/release/weft
fi
tag=wpb$$
A=$tag-a B=$tag-b
cleanup() {
  [ -n "${WPID:-}" ] && kill -INT "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add "${tag}a" netns "$A" type veth peer name "${tag}b" netns "$B"
ip -n "$A" addr add 10.79.0.1/24 dev "${tag}a"; ip -n "$B" addr add 10.79.0.2/24 dev "${tag}b"
ip -n "$A" link set "${tag}a" up; ip -n "$B" link set "${tag}b" up

SERVER='
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.79.0.2", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept()
    while True:
        d = c.recv(1 << 20)
        if not d: break
        if len(d) <= 100: c.sendall(d)
    c.close()
'
CLIENT='
import socket, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("10.79.0.2", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = time.time()
if mode == "pingpong":
    n = 0
    while time.time() - t < 3:
        s.sendall(b"p" * 100); s.recv(100); n += 1
    print(n / (time.time() - t))
else:
    buf = b"b" * (1 << 20); n = 0
    while time.time() - t < 3:
        s.sendall(buf); n += len(buf)
    print(n / (time.time() - t) / 1e6)
s.close()
'
PORT=$((20000 + RANDOM % 10000))
ip netns exec "$B" python3 -c "$SERVER" "$PORT" & SPID=$!
trap 'kill $SPID 2>/dev/null; cleanup' EXIT
sleep 0.5
MPORT=$((30000 + RANDOM % 10000))
metric() { # program -> "runs seconds"
  curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v p="$1" '
    $0 ~ "weft_bpf_program_runs_total\\{program=\""p"\"" {r=$2}
    $0 ~ "weft_bpf_program_run_seconds_total\\{program=\""p"\"" {s=$2}
    END {printf "%d %.9f\n", r, s}'
}
declare -A R
for round in $(seq 1 "$ROUNDS"); do
  for mode in none weft; do
    if [ $mode = weft ]; then pp=(--interface "${tag}*"); else pp=(--no-tc); fi
    "$WEFT" --json "${pp[@]}" --metrics "127.0.0.1:$MPORT" > /dev/null 2> /tmp/$tag.err &
    WPID=$!
    for _ in $(seq 1 3000); do grep -q ready /tmp/$tag.err && break; sleep 0.01; done
    sleep 1.2
    if [ $mode = weft ]; then
      read -r r0i s0i < <(metric weft_tc_ingress); read -r r0e s0e < <(metric weft_tc_egress)
    fi
    R[pp_$mode]+="$(ip netns exec "$A" python3 -c "$CLIENT" pingpong "$PORT") "
    R[bulk_$mode]+="$(ip netns exec "$A" python3 -c "$CLIENT" bulk "$PORT") "
    if [ $mode = weft ]; then
      sleep 1.2
      read -r r1i s1i < <(metric weft_tc_ingress); read -r r1e s1e < <(metric weft_tc_egress)
      per() { awk -v s="$1" -v r="$2" 'BEGIN { printf "%.1f", (r > 0 ? s * 1e9 / r : 0) }'; }
      R[ns_in]+="$(per "$(awk -v a="$s1i" -v b="$s0i" 'BEGIN{print a-b}')" $((r1i - r0i))) "
      R[ns_eg]+="$(per "$(awk -v a="$s1e" -v b="$s0e" 'BEGIN{print a-b}')" $((r1e - r0e))) "
      R[runs]+="$((r1i - r0i + r1e - r0e)) "
    fi
    kill -INT "$WPID"; wait "$WPID" || true; WPID=
  done
done
python3 - "${R[pp_none]}" "${R[pp_weft]}" "${R[bulk_none]}" "${R[bulk_weft]}" "${R[ns_in]}" "${R[ns_eg]}" "${R[runs]}" <<'EOF'
import statistics, sys
m = lambda s: statistics.median(float(x) for x in s.split())
pn, pw, bn, bw, ni, ne, runs = (m(a) for a in sys.argv[1:])
print("| measure | weft --no-tc | weft, TC on both veths | ratio |")
print("|---|---|---|---|")
print(f"| TCP ping-pong, 100 B, msgs/s | {pn:.0f} | {pw:.0f} | {pw/pn:.3f} |")
print(f"| bulk transfer, MB/s | {bn:.0f} | {bw:.0f} | {bw/bn:.3f} |")
print(f"\nTC program run time per packet (median of rounds): ingress {ni:.0f} ns, egress {ne:.0f} ns "
      f"({runs:.0f} program runs per round, both veths)")
EOF
