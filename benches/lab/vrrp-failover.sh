#!/bin/bash
# VRRP takeover time on this machine, ours (examples/vrrpd) and keepalived's, in the same run.
#
# Two network namespaces on a veth pair. The master (priority 150) is killed (KILL: SIGKILL, no
# priority-0 advert) or stopped (TERM: graceful, priority-0 advert); the time from the signal
# until the backup (priority 100) holds the VIP is printed, for each pair:
#   ka-ka   keepalived master, keepalived backup (as shared/lab/anchor-vrrp-failover.sh)
#   lb-lb   vrrpd master, vrrpd backup
#   ka-lb   keepalived master, vrrpd backup (our takeover from keepalived)
# The VIP is polled with `ip addr` every 2 ms, the same for every pair. vrrpd runs with --accept,
# keepalived's default without vrrp_strict (no nftables rules on either side).
#
# Usage: benches/lab/vrrp-failover.sh [RUNS]                  the table: v2 1 s, v3 100 ms, v3 10 ms
#        benches/lab/vrrp-failover.sh one PAIR V INT KILL|TERM one measurement (INT in seconds)
#        benches/lab/vrrp-failover.sh stability PAIR SECS      v3 10 ms pair left alone SECS seconds:
#                                                              counts state changes after settling
#                                                              (RT=1: both daemons under chrt -f 50;
#                                                              RT=native: their own real-time options,
#                                                              keepalived vrrp_rt_priority 50 +
#                                                              vrrp_no_swap, vrrpd --realtime 50
#                                                              --no-swap)
#        benches/lab/vrrp-failover.sh stability-all SECS       ka-ka and lb-lb, RT=native and default
#                                                              scheduling: four pairs at the same time
#        benches/lab/vrrp-failover.sh cpu SECS                 255 VRIDs at 1 s in one driver thread:
#                                                              its CPU share over SECS seconds
# Needs root, keepalived, iproute2, python3; builds vrrpd in release mode (or set VRRPD=path).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v keepalived >/dev/null || { echo "missing keepalived (apt-get install keepalived)"; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)"; exit 2; }
if [ -z "${VRRPD:-}" ]; then
  cargo build --release --example vrrpd -q
  VRRPD=$PWD/target/release/examples/vrrpd
fi

# one PAIR V INT SIG -> prints seconds
one() {
  local pair=$1 V=$2 I=$3 SIG=$4
  local p=lbf$$ d; d=$(mktemp -d)
  (
    cleanup() {
      set +e
      for f in "$d"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
      sleep 0.1; ip netns del ${p}a 2>/dev/null; ip netns del ${p}b 2>/dev/null; rm -rf "$d"
    }
    trap cleanup EXIT
    ip netns add ${p}a; ip netns add ${p}b
    ip link add ${p}va type veth peer name ${p}vb
    ip link set ${p}va netns ${p}a; ip link set ${p}vb netns ${p}b
    ip -n ${p}a addr add 10.204.0.1/24 dev ${p}va; ip -n ${p}b addr add 10.204.0.2/24 dev ${p}vb
    ip -n ${p}a link set ${p}va up; ip -n ${p}b link set ${p}vb up
    local ms; ms=$(python3 -c "print(round($I*1000))")
    start() { # side impl prio
      local n=$1 impl=$2 prio=$3
      if [ "$impl" = ka ]; then
        printf 'global_defs { router_id R%s\n}\nvrrp_instance V1 { state BACKUP\n interface %sv%s\n version %s\n virtual_router_id 51\n priority %s\n advert_int %s\n virtual_ipaddress { 10.204.0.100/24 } }\n' \
          $n $p $n "$V" $prio "$I" >"$d/k$n.conf"
        ip netns exec ${p}$n keepalived -n -l -D --vrrp -f "$d/k$n.conf" -p "$d/$n.pid" -r "$d/${n}r.pid" >"$d/$n.log" 2>&1 &
      else
        ip netns exec ${p}$n "$VRRPD" --interface ${p}v$n --vrid 51 --priority $prio --vip 10.204.0.100/24 \
          --version "$V" --interval-ms "$ms" --checksum pseudo-header --accept >"$d/$n.log" 2>&1 &
        echo $! >"$d/$n.pid"
      fi
    }
    start a "${pair%-*}" 150
    for _ in $(seq 1 500); do ip -n ${p}a addr show ${p}va | grep -q 10.204.0.100 && break; sleep 0.01; done
    start b "${pair#*-}" 100
    sleep "$(python3 -c "print(max(2.0, 5*$I))")"
    ip -n ${p}b addr show ${p}vb | grep -q 10.204.0.100 && { echo "backup holds the VIP before the failure" >&2; exit 1; }
    local t0 t1
    exec 2>/dev/null  # bash's "Killed" job notices
    t0=$(date +%s.%N)
    if [ "$SIG" = KILL ]; then
      # keepalived's VRRP child first: it gets SIGTERM (PR_SET_PDEATHSIG) when its parent dies
      # first, and would then resign gracefully.
      kill -9 $( [ -f "$d/ar.pid" ] && cat "$d/ar.pid") "$(cat "$d/a.pid")"
    else
      kill -TERM "$(cat "$d/a.pid")"
    fi
    until ip -n ${p}b addr show ${p}vb | grep -q 10.204.0.100; do sleep 0.002; done
    t1=$(date +%s.%N)
    python3 -c "print('%.3f' % ($t1-$t0))"
  )
}

stability() {
  local pair=$1 secs=$2 p=lbs$BASHPID d rt=() ka_rt='' lb_rt=() label=''; d=$(mktemp -d)
  case "${RT:-0}" in
    1) rt=(chrt -f 50); label=' (chrt -f 50)' ;;
    native) ka_rt=' vrrp_rt_priority 50\n vrrp_no_swap\n'; lb_rt=(--realtime 50 --no-swap)
            label=' (vrrp_rt_priority 50 + vrrp_no_swap / --realtime 50 --no-swap)' ;;
  esac
  (
    cleanup() { set +e; for f in "$d"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done; sleep 0.1; ip netns del ${p}a; ip netns del ${p}b; rm -rf "$d"; }
    trap cleanup EXIT
    ip netns add ${p}a; ip netns add ${p}b
    ip link add ${p}va type veth peer name ${p}vb
    ip link set ${p}va netns ${p}a; ip link set ${p}vb netns ${p}b
    ip -n ${p}a addr add 10.205.0.1/24 dev ${p}va; ip -n ${p}b addr add 10.205.0.2/24 dev ${p}vb
    ip -n ${p}a link set ${p}va up; ip -n ${p}b link set ${p}vb up
    for n in a b; do
      prio=$([ $n = a ] && echo 150 || echo 100)
      if [ "$pair" = ka-ka ]; then
        printf "global_defs { router_id R%s\n$ka_rt}\nvrrp_instance V1 { state BACKUP\n interface %sv%s\n version 3\n virtual_router_id 51\n priority %s\n advert_int 0.01\n virtual_ipaddress { 10.205.0.100/24 } }\n" $n $p $n $prio >"$d/k$n.conf"
        ip netns exec ${p}$n "${rt[@]}" keepalived -n -l -D --vrrp -f "$d/k$n.conf" -p "$d/$n.pid" -r "$d/${n}r.pid" >"$d/$n.log" 2>&1 &
      else
        ip netns exec ${p}$n "${rt[@]}" "$VRRPD" --interface ${p}v$n --vrid 51 --priority $prio --vip 10.205.0.100/24 --interval-ms 10 --accept "${lb_rt[@]}" >"$d/$n.log" 2>&1 &
        echo $! >"$d/$n.pid"
      fi
      sleep 1
    done
    sleep 2
    changes() { if [ "$pair" = ka-ka ]; then grep -h "Entering \(MASTER\|BACKUP\|FAULT\) STATE" "$d"/a.log "$d"/b.log || true; else grep -h " \(MASTER\|BACKUP\|FAULT\) " "$d"/a.log "$d"/b.log || true; fi; }
    before=$(changes | wc -l)
    sleep "$secs"
    after=$(changes | wc -l)
    echo "$pair v3 10 ms$label, ${secs} s at steady state: $((after - before)) state changes (after settling with $before)"
    [ "$after" -gt "$before" ] && { echo "the first changes after settling:"; changes | sort | sed -n "$((before + 1)),$((before + 6))p"; }
    exec 2>/dev/null
  )
}

case "${1:-}" in
  cpu)
    LB_VRRP_CPU_SECS="$2" cargo test -q --release -p lb-vrrp --features linux --test driver \
      driver_runs_255_vrids_on_one_thread -- --nocapture 2>&1 | grep "VRIDs at"
    ;;
  one) one "$2" "$3" "$4" "$5" ;;
  stability) stability "$2" "$3" ;;
  stability-all)
    for rt in native 0; do
      for pair in ka-ka lb-lb; do RT=$rt stability $pair "$2" & done
    done
    wait
    ;;
  *)
    runs=${1:-5}
    echo "VRRP takeover: seconds from the master's signal until the backup holds the VIP (median, min-max of $runs runs)"
    printf '%-18s %-6s %-22s %-22s %-22s\n' scenario signal ka-ka lb-lb ka-lb
    for sc in "2 1" "3 0.1" "3 0.01"; do
      set -- $sc
      for sig in KILL TERM; do
        row=()
        for pair in ka-ka lb-lb ka-lb; do
          vals=()
          for _ in $(seq 1 "$runs"); do vals+=("$(one $pair "$1" "$2" $sig)"); done
          row+=("$(python3 -c "import statistics,sys; v=sorted(map(float,sys.argv[1:])); print('%.3f (%.3f-%.3f)' % (statistics.median(v), v[0], v[-1]))" "${vals[@]}")")
        done
        printf '%-18s %-6s %-22s %-22s %-22s\n' "v$1 advert ${2}s" $sig "${row[@]}"
      done
    done
    ;;
esac
