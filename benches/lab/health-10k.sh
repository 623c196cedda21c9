#!/usr/bin/env bash
# The 10,000-target check of lb-health's reactor (BENCHMARKS.md, "lb-health"): 10 000 TCP
# listeners on 127.1.x.y, each checked every second from one thread, in a throwaway network
# namespace so that the nftables drop that measures detection latency never touches the
# host's firewall. Needs root.
#
#   benches/lab/health-10k.sh [TARGETS] [SECONDS] [KINDS]
#
# KINDS: the probe kinds to run one after the other in the same namespace, "connect syn" by
# default (connect probes; half-open SYN probes). HEALTH_RT=PRIO runs the checker thread
# under SCHED_FIFO at that priority (keepalived's checker_rt_priority).
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS="${1:-10000}"
SECONDS_RUN="${2:-30}"
KINDS="${3:-connect syn}"
[ "$(id -u)" -eq 0 ] || { echo "health-10k: needs root (network namespace, nftables)" >&2; exit 2; }

cargo build --release --bench health_scale >&2
BIN=$(ls -t target/release/deps/health_scale-* | grep -v '\.d$' | head -1)

NS="lb-hc10k-$$"
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# 10k listeners + the probes in flight + their accepted ends: as many fds as allowed.
ulimit -n "$(ulimit -Hn)"
for KIND in $KINDS; do
    ip netns exec "$NS" "$BIN" --bench --targets "$TARGETS" --seconds "$SECONDS_RUN" --nft --probe "$KIND" \
        ${HEALTH_RT:+--realtime "$HEALTH_RT"}
done
