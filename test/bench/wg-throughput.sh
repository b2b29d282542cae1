#!/usr/bin/env bash
# WireGuard throughput benchmark (prints figures, asserts nothing): two network namespaces over
# a veth pair; one iperf3 TCP flow ns1 -> ns2 for the same duration over
#   1. the raw veth (baseline),
#   2. wireguard-go on both ends,
#   3. lattice-wg on both ends,
# then the ratio lattice-wg / wireguard-go. Each daemon runs in the namespace of its interface;
# TUN MTU 1420 on both implementations.
#
# Usage (root): test/bench/wg-throughput.sh      (or: pnpm bench:wg)
#   WG_BENCH_TIME     seconds per iperf3 run (default 10)
#   LATTICE_WG_CMD    default `node <repo>/daemon/bin/lattice-wg.js` (needs `pnpm build` first)
#   WG_REFERENCE_CMD  default `wireguard-go`
#   WG_BENCH_ARGS     extra iperf3 client arguments (e.g. "-P 2"), default none
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"

[[ $(id -u) == 0 ]] || { echo "wg-throughput.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip wg iperf3 ss; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found" >&2; exit 1; }
done
secs="${WG_BENCH_TIME:-10}"
lattice_cmd="${LATTICE_WG_CMD:-node $repo/daemon/bin/lattice-wg.js}"
reference_cmd="${WG_REFERENCE_CMD:-wireguard-go}"
read -ra extra <<<"${WG_BENCH_ARGS:-}"

lt_init
NS1="wgt-$LT_ID-b1"
NS2="wgt-$LT_ID-b2"

# measure SERVER_ADDR: one TCP flow ns1 -> ns2; prints Mbit/s (receiver side) or nothing.
measure() {
	local addr=$1 spid out
	ip netns exec "$NS2" iperf3 -s -1 -B "$addr" >"$LT_WORK/server.out" 2>&1 </dev/null 3>&- &
	spid=$!
	until_true 5 eval '[[ $(ss -H -N "$NS2" -tlnp "sport = :5201") == *iperf3* ]]' || { kill "$spid"; return 1; }
	out=$(timeout $((secs + 30)) ip netns exec "$NS1" iperf3 -c "$addr" -t "$secs" -f m "${extra[@]}" 2>&1)
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	echo "$out" >>"$LT_WORK/iperf.log"
	iperf_receiver_mbits <<<"$out"
}

setup_veth() {
	ns_add "$NS1" && ns_add "$NS2" || return 1
	ip -n "$NS1" link add veth1 type veth peer name veth2 || return 1
	ip -n "$NS1" link set veth2 netns "$NS2"
	ip -n "$NS1" addr add 10.77.0.1/24 dev veth1
	ip -n "$NS2" addr add 10.77.0.2/24 dev veth2
	ip -n "$NS1" link set veth1 up
	ip -n "$NS2" link set veth2 up
	until_true 5 eval '[[ $(ip -n "$NS1" -o link show veth1) == *LOWER_UP* && $(ip -n "$NS2" -o link show veth2) == *LOWER_UP* ]]'
}

# wg_pair TAG CMD: interfaces on both ends with CMD; prints the ns2 inner address on success.
wg_pair() {
	local tag=$1 cmd=$2 if1="b${1}1-$LT_ID" if2="b${1}2-$LT_ID" net="192.168.$3"
	wg_create "$NS1" "$cmd" "$if1" >&2 || return 1
	wg_create "$NS2" "$cmd" "$if2" >&2 || return 1
	gen_keys "$if1" && gen_keys "$if2" || return 1
	wg set "$if1" private-key "$(keyfile "$if1")" listen-port 10000 \
		peer "$(pubkey_of "$if2")" allowed-ips "$net.2/32" endpoint 10.77.0.2:20000 || return 1
	wg set "$if2" private-key "$(keyfile "$if2")" listen-port 20000 \
		peer "$(pubkey_of "$if1")" allowed-ips "$net.1/32" endpoint 10.77.0.1:10000 || return 1
	ip -n "$NS1" addr add "$net.1/24" dev "$if1"
	ip -n "$NS2" addr add "$net.2/24" dev "$if2"
	ip -n "$NS1" link set dev "$if1" mtu 1420 up
	ip -n "$NS2" link set dev "$if2" mtu 1420 up
	ping_all "$NS1" "$net.2" -c 3 -i 0.2 -W 2 >&2 || return 1
	# A userspace tunnel: a TUN device, and a WireGuard handshake has really happened.
	[[ $(ip -n "$NS1" -d -o link show dev "$if1") == *" tun type tun "* ]] || { echo "$if1 is not a TUN device" >&2; return 1; }
	[[ $(wg show "$if1" latest-handshakes | awk '{ print $2 }') -gt 0 ]] || { echo "$if1: no handshake" >&2; return 1; }
	echo "$net.2"
}

# tunnel_bytes TAG: bytes the ns2 end received through WireGuard (wg show transfer).
tunnel_bytes() { wg show "b${1}2-$LT_ID" transfer | awk '{ print $2 }'; }

# measure_wg TAG ADDR: the iperf3 figure, if the tunnel carried at least the bytes iperf3 reports.
measure_wg() {
	local before after mbit
	before=$(tunnel_bytes "$1")
	mbit=$(measure "$2")
	[[ -n $mbit ]] || { echo "iperf3 gave no figure (see iperf.log)" >>"$LT_WORK/measure-$1.log"; return 1; }
	after=$(tunnel_bytes "$1")
	echo "$1: $((after - before)) bytes received through WireGuard for $mbit Mbit/s" >>"$LT_WORK/measure-$1.log"
	awk -v b="$((after - before))" -v m="$mbit" -v t="$secs" 'BEGIN { exit !(m > 0 && b * 8 >= m * 1e6 * t * 0.9) }' || {
		echo "wg show transfer does not account for the iperf3 figure" >>"$LT_WORK/measure-$1.log"
		return 1
	}
	echo "$mbit"
}

wg_pair_down() {
	local if1="b${1}1-$LT_ID" if2="b${1}2-$LT_ID"
	ip -n "$NS1" link del dev "$if1" 2>/dev/null
	ip -n "$NS2" link del dev "$if2" 2>/dev/null
}

echo "WireGuard throughput: one iperf3 TCP flow for $secs s, 2 namespaces over a veth pair"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r)"
setup_veth || { echo "could not build the veth topology" >&2; exit 1; }

raw=$(measure 10.77.0.2)
printf '%-58s %10s Mbit/s\n' "raw veth (no WireGuard)" "${raw:-failed}"

ref=""
if addr=$(wg_pair r "$reference_cmd" 78 2>"$LT_WORK/setup-r.log"); then
	ref=$(measure_wg r "$addr")
fi
printf '%-58s %10s Mbit/s\n' "wireguard-go ($reference_cmd)" "${ref:-failed}"
wg_pair_down r

lat=""
if [[ $lattice_cmd == "node $repo/daemon/bin/lattice-wg.js" && ! -f $repo/daemon/dist/wg/main.js ]]; then
	lat_reason="not built ($repo/daemon/dist/wg/main.js missing: run pnpm build)"
elif addr=$(wg_pair l "$lattice_cmd" 79 2>"$LT_WORK/setup-l.log"); then
	lat=$(measure_wg l "$addr")
	[[ -n $lat ]] || lat_reason="iperf3 failed through it: $(tail -n 1 "$LT_WORK/measure-l.log" 2>/dev/null)"
else
	lat_reason="not runnable: $(tail -n 1 "$LT_WORK/setup-l.log")"
fi
if [[ -n $lat ]]; then
	printf '%-58s %10s Mbit/s\n' "lattice-wg ($lattice_cmd)" "$lat"
else
	printf '%-58s %s\n' "lattice-wg ($lattice_cmd)" "$lat_reason"
fi
wg_pair_down l

if [[ -n $lat && -n $ref ]]; then
	awk -v l="$lat" -v r="$ref" 'BEGIN { printf "%-58s %10.2f\n", "ratio lattice-wg / wireguard-go", l / r }'
fi
[[ -n $ref ]]
