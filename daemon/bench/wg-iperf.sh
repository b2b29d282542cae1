#!/usr/bin/env bash
# Throughput of two userspace WireGuard interfaces on this machine: one per private
# network namespace, joined by a veth pair, one iperf3 TCP flow each way.
#
#   bash daemon/bench/wg-iperf.sh [A-impl] [B-impl] [seconds]
#
# A-impl / B-impl: "lattice" (node daemon/bin/lattice-wg.js, built with `tsc -b`) or
# "wireguard-go" (Debian's). Defaults: lattice lattice 8. Needs root, iproute2, wg,
# iperf3. Namespaces and interfaces are named with this shell's pid and removed on exit.
set -euo pipefail
A_IMPL=${1:-lattice}
B_IMPL=${2:-lattice}
SECS=${3:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
P=$$
A=lwbA$P; B=lwbB$P; IA=lwba$P; IB=lwbb$P
umask 077
KEYDIR=$(mktemp -d)
cleanup() {
  for ns in $A $B; do ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.3
  ip netns del $A 2>/dev/null || true
  ip netns del $B 2>/dev/null || true
  rm -rf "$KEYDIR"
}
trap cleanup EXIT

start() { # ns ifname impl
  case $3 in
    lattice) ip netns exec "$1" node "$ROOT/daemon/bin/lattice-wg.js" "$2" ;;
    wireguard-go) WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec "$1" wireguard-go "$2" 2>/dev/null ;;
    *) echo "unknown implementation: $3 (lattice or wireguard-go)" >&2; exit 2 ;;
  esac
}

ip netns add $A; ip netns add $B
ip link add va$P netns $A type veth peer name vb$P netns $B
ip -n $A addr add 10.251.0.1/24 dev va$P; ip -n $A link set va$P up; ip -n $A link set lo up
ip -n $B addr add 10.251.0.2/24 dev vb$P; ip -n $B link set vb$P up; ip -n $B link set lo up
start $A $IA "$A_IMPL"
start $B $IB "$B_IMPL"
wg genkey > "$KEYDIR/a"; wg genkey > "$KEYDIR/b"
ip netns exec $A wg set $IA private-key "$KEYDIR/a" listen-port 51820 \
  peer "$(wg pubkey < "$KEYDIR/b")" allowed-ips 10.252.0.2/32 endpoint 10.251.0.2:51821
ip netns exec $B wg set $IB private-key "$KEYDIR/b" listen-port 51821 \
  peer "$(wg pubkey < "$KEYDIR/a")" allowed-ips 10.252.0.1/32 endpoint 10.251.0.1:51820
ip -n $A addr add 10.252.0.1/24 dev $IA; ip -n $A link set $IA up
ip -n $B addr add 10.252.0.2/24 dev $IB; ip -n $B link set $IB up
ip netns exec $A ping -c 2 -W 3 10.252.0.2 >/dev/null

ip netns exec $B iperf3 -s -1 -D >/dev/null; sleep 0.5
printf '%s -> %s: ' "$A_IMPL" "$B_IMPL"
ip netns exec $A iperf3 -c 10.252.0.2 -t "$SECS" -f m | awk '/receiver/ {print $7, $8}'
ip netns exec $A iperf3 -s -1 -D >/dev/null; sleep 0.5
printf '%s -> %s: ' "$B_IMPL" "$A_IMPL"
ip netns exec $B iperf3 -c 10.252.0.1 -t "$SECS" -f m | awk '/receiver/ {print $7, $8}'
