#!/usr/bin/env bash
# A lab of several "PCs" on one Linux machine: network namespaces joined by veth pairs to a
# bridge in the root namespace (root only; see docs/multi-pc.md and docs/multi-host.md).
#
#   scripts/lab-netns.sh up N [PREFIX]     namespaces PREFIX1..PREFIXN, PC k at 10.NET.0.(10+k)/24
#   scripts/lab-netns.sh down [PREFIX]     remove them (and the bridge)
#   scripts/lab-netns.sh exec K CMD…       run CMD inside PC K (PREFIX from $LAB_NETNS_PREFIX)
#   scripts/lab-netns.sh kill K            kill every process inside PC K (a PC losing power)
#   scripts/lab-netns.sh addr K            print PC K's address
#
# NET is $LAB_NETNS_NET (default 77), the bridge $LAB_NETNS_BRIDGE (default slbr0).
# The root namespace is 10.NET.0.1 on the bridge: a delay proxy (benchmarks/netproxy.py) listening
# there stands for the network between PCs (this kernel has no netem qdisc). Namespaces share the
# kernel clock: give each node's host clock its own offset/drift with SENSORIUM_HOST_CLOCK_SKEW.
set -euo pipefail

cmd=${1:-}
prefix=${LAB_NETNS_PREFIX:-slpc}
bridge=${LAB_NETNS_BRIDGE:-slbr0}
net=${LAB_NETNS_NET:-77}

addr() { echo "10.$net.0.$((10 + $1))"; }

up() {
  local n=$1
  [ -n "${2:-}" ] && prefix=$2
  ip link show "$bridge" >/dev/null 2>&1 || {
    ip link add "$bridge" type bridge
    ip addr add "10.$net.0.1/24" dev "$bridge"
    ip link set "$bridge" up
  }
  for k in $(seq 1 "$n"); do
    local ns="$prefix$k" host_if="${prefix}v$k"
    ip netns list | grep -qw "$ns" && continue
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name eth0 netns "$ns"
    ip link set "$host_if" master "$bridge" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "$(addr "$k")/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip route add default via "10.$net.0.1"
  done
  echo "lab: $n PCs ${prefix}1..${prefix}$n on $bridge (10.$net.0.0/24)"
}

down() {
  [ -n "${1:-}" ] && prefix=$1
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix[0-9]*$" || true); do
    pids=$(ip netns pids "$ns" || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns"
  done
  ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge" || true
}

case "$cmd" in
  up) up "${2:?N}" "${3:-}" ;;
  down) down "${2:-}" ;;
  exec) k=${2:?K}; shift 2; exec ip netns exec "$prefix$k" "$@" ;;
  kill) pids=$(ip netns pids "$prefix${2:?K}" || true); [ -n "$pids" ] && kill -9 $pids || true ;;
  addr) addr "${2:?K}" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
