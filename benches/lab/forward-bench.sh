#!/bin/bash
# Lab benchmark of lb-forward against the kernel on one topology, in one run:
#   client ns -> director ns -> real ns over veth pairs, 64-byte UDP frames from trafgen
#   (random source ports, so many flows), counted at the real server's interface.
# Measured, each with the generator on every CPU ("all") and on one CPU ("1 cpu", which leaves
# the other core to the forwarder):
#   1. kernel IPv4 forwarding (ip_forward=1): the kernel's fast path
#   2. nftables DNAT of the VIP to the real: the kernel doing what a NAT director does
#   3. examples/forwarder in NAT mode with --io pnet-per-frame --batch 1: the naive pnet loop
#      (receive one frame with pnet's next(), rewrite, send it with pnet's send_to()), the
#      baseline measured in the same run
#   4. examples/forwarder in NAT mode with --io pnet (batches of 64, recvmmsg / sendmmsg on
#      pnet's socket)
#   5. examples/forwarder in NAT mode with --io fast (TPACKET_V3 receive rings, PACKET_TX_RING)
#   6. the same with --realtime 10 --cpu LAST (the forwarding thread under SCHED_RR on the last
#      CPU, which trafgen's single process leaves free), as a datapath on a shared host is run
#   7. --io pnet and --io fast with --workers 2 (two forwarding threads, PACKET_FANOUT groups,
#      one shared connection table)
# and the ratios of 4 to 7 to nftables DNAT, to the naive loop (3) and to ip_forward. (The
# naive loop of shared/lab/README.md did 0.08 / 0.19 Mpps on an idle machine of this kind.)
# Needs root, iproute2, nftables, netsniff-ng (trafgen), ethtool and a Rust toolchain.
# Usage: benches/lab/forward-bench.sh [SECONDS]   (default 5)
# Environment: FORWARD_BENCH_BIN=PATH runs that forwarder binary instead of building one (to
# compare a before and an after build); FORWARD_BENCH_NAIVE_BIN=PATH runs the naive row with
# that binary (one that knows --io pnet-per-frame, when FORWARD_BENCH_BIN is an older build);
# FORWARD_BENCH_ONLY="nft fast" runs only the rows whose key is listed (keys: fwd nft naive
# pnet fast fast-rt pnet-2w fast-2w); FORWARD_BENCH_EXTRA="--realtime 10 --cpu 1" adds those
# arguments to the rows that have none of their own (naive, pnet, fast), e.g. to give each
# forwarder the same CPU; FORWARD_BENCH_CPU=N prints, after each row, how busy CPU N was and
# its busy time per frame delivered (the forwarder's cost per frame when it runs alone there).
set -euo pipefail
secs=${1:-5}
only=${FORWARD_BENCH_ONLY:-fwd nft naive pnet fast fast-rt pnet-2w fast-2w}
last_cpu=$(( $(nproc) - 1 ))
for t in ip nft trafgen ethtool; do command -v $t >/dev/null || { echo "missing $t"; exit 2; }; done
cd "$(dirname "$0")/../.."
if [ -n "${FORWARD_BENCH_BIN:-}" ]; then
  fwd=$FORWARD_BENCH_BIN
else
  command -v cargo >/dev/null || { echo "missing cargo"; exit 2; }
  cargo build -q --release --example forwarder
  fwd=$(pwd)/target/release/examples/forwarder
fi
wanted() { [[ " $only " == *" $1 "* ]]; }
p=lfb$$
fpid=
cleanup() {
  set +e
  [ -n "$fpid" ] && kill "$fpid" 2>/dev/null && wait "$fpid" 2>/dev/null
  for n in c d r; do ip netns del $p$n 2>/dev/null; done
}
trap cleanup EXIT
for n in c d r; do ip netns add $p$n; ip -n $p$n link set lo up; done
ip link add ${p}c0 type veth peer name ${p}d0
ip link add ${p}d1 type veth peer name ${p}r0
ip link set ${p}c0 netns ${p}c; ip link set ${p}d0 netns ${p}d; ip link set ${p}d1 netns ${p}d; ip link set ${p}r0 netns ${p}r
ip -n ${p}c addr add 10.201.0.2/24 dev ${p}c0; ip -n ${p}d addr add 10.201.0.1/24 dev ${p}d0
ip -n ${p}d addr add 10.202.0.1/24 dev ${p}d1; ip -n ${p}r addr add 10.202.0.2/24 dev ${p}r0
for x in c:c0 d:d0 d:d1 r:r0; do ip -n $p${x%%:*} link set $p${x##*:} up; done
for x in c:c0 d:d0 d:d1 r:r0; do ip netns exec $p${x%%:*} ethtool -K $p${x##*:} tx off gso off gro off tso off >/dev/null 2>&1 || true; done
ip -n ${p}c route add default via 10.201.0.1; ip -n ${p}r route add default via 10.202.0.1
ip netns exec ${p}r nft add table ip sink
ip netns exec ${p}r nft add chain ip sink in '{ type filter hook input priority 0; }'
ip netns exec ${p}r nft add rule ip sink in udp dport 9 drop
dmac=$(ip -n ${p}d -br link show ${p}d0 | awk '{print $3}'); smac=$(ip -n ${p}c -br link show ${p}c0 | awk '{print $3}')
ip netns exec ${p}d sysctl -qw net.ipv4.ip_forward=1
ip netns exec ${p}c ping -c1 -W1 10.202.0.2 >/dev/null
declare -A pps
run() { # $1 key, $2 label, $3 destination address, $4 trafgen process count (empty: one per CPU)
  cfg=$(mktemp)
  printf '{ eth(da=%s, sa=%s), ipv4(saddr=10.201.0.2, daddr=%s, ttl=64), udp(sport=drnd(), dport=9), fill(0x41, 18) }\n' "$dmac" "$smac" "$3" >"$cfg"
  b=$(ip netns exec ${p}r cat /sys/class/net/${p}r0/statistics/rx_packets)
  t0=$(cpu_times)
  timeout "$secs" ip netns exec ${p}c trafgen --dev ${p}c0 --conf "$cfg" --cpp ${4:+-P $4} -q >/dev/null 2>&1 || true
  sleep 0.3
  a=$(ip netns exec ${p}r cat /sys/class/net/${p}r0/statistics/rx_packets)
  rm -f "$cfg"
  pps[$1]=$(( (a - b) / secs ))
  printf '%-40s %10d pps delivered\n' "$2" "${pps[$1]}"
  [ -z "${FORWARD_BENCH_CPU:-}" ] || awk -v t0="$t0" -v t1="$(cpu_times)" -v n=$((a - b)) \
    -v hz="$(getconf CLK_TCK)" -v cpu="$FORWARD_BENCH_CPU" 'BEGIN {
      split(t0, x); split(t1, y); busy = y[1] - x[1]; all = busy + y[2] - x[2]
      if (all > 0 && n > 0) printf "%40s cpu %s %3.0f %% busy, %.2f us busy a frame\n", "", cpu,
        100 * busy / all, busy * 1e6 / hz / n }'
}
# "BUSY IDLE" clock ticks of CPU FORWARD_BENCH_CPU so far (steal counts as neither).
cpu_times() {
  [ -n "${FORWARD_BENCH_CPU:-}" ] || return 0
  awk -v c="cpu${FORWARD_BENCH_CPU}" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}
if wanted fwd; then
  run fwd_all "kernel ip_forward, all cpus" 10.202.0.2
  run fwd_1 "kernel ip_forward, 1 cpu" 10.202.0.2 1
fi
ip netns exec ${p}d nft -f - <<NFT
table ip lbbench {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr 10.201.0.100 udp dport 9 dnat to 10.202.0.2
  }
}
NFT
if wanted nft; then
  run nft_all "nftables DNAT, all cpus" 10.201.0.100
  run nft_1 "nftables DNAT, 1 cpu" 10.201.0.100 1
fi
ip netns exec ${p}d nft delete table ip lbbench
# Our forwarder: the kernel must not forward too.
ip netns exec ${p}d sysctl -qw net.ipv4.ip_forward=0
for variant in naive:pnet-per-frame:1 pnet:pnet:64 fast:fast:64 "fast-rt:fast:64:--realtime 10 --cpu $last_cpu" \
    "pnet-2w:pnet:64:--workers 2" "fast-2w:fast:64:--workers 2"; do
  IFS=: read -r key io batch extra <<<"$variant"
  wanted "$key" || continue
  bin=$fwd
  [ "$key" = naive ] && bin=${FORWARD_BENCH_NAIVE_BIN:-$fwd}
  [ -n "$extra" ] || extra=${FORWARD_BENCH_EXTRA:-}
  log=$(mktemp)
  ip netns exec ${p}d "$bin" --interface ${p}d0 --interface ${p}d1 --service udp:10.201.0.100:9 \
    --scheduler rr --real 10.202.0.2:9,method=nat --io $io --batch $batch $extra 2>"$log" &
  fpid=$!
  for _ in $(seq 100); do grep -q ready "$log" && break; sleep 0.1; done
  grep -q ready "$log" || { cat "$log"; exit 1; }
  run ${key}_all "lb-forward NAT --io $io --batch $batch${extra:+ $extra}, all cpus" 10.201.0.100
  run ${key}_1 "lb-forward NAT --io $io --batch $batch${extra:+ $extra}, 1 cpu" 10.201.0.100 1
  kill -TERM $fpid; wait $fpid || true; fpid=
  rm -f "$log"
done
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo
printf '%-31s %14s %14s %14s\n' "ratio" "vs nft DNAT" "vs naive loop" "vs ip_forward"
for io in pnet pnet-2w fast fast-2w fast-rt; do
  wanted $io || continue
  for c in all 1; do
    printf '%-31s %14s %14s %14s\n' "lb-forward $io ($c cpu)" \
      "$(ratio "${pps[${io}_$c]:-}" "${pps[nft_$c]:-}")" "$(ratio "${pps[${io}_$c]:-}" "${pps[naive_$c]:-}")" \
      "$(ratio "${pps[${io}_$c]:-}" "${pps[fwd_$c]:-}")"
  done
done
