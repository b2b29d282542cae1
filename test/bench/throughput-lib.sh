# shellcheck shell=bash
# Shared by the throughput benchmarks (wg-throughput.sh, mesh-throughput.sh): two namespaces
# NS1, NS2 over one veth pair (10.77.0.1 <-> 10.77.0.2), iperf3 TCP measurements ns1 -> ns2 and
# WireGuard pairs (wireguard-go or lattice-wg) on it. Source after ../netns/lib.sh and lt_init;
# the caller sets NS1, NS2, secs (seconds per iperf3 run) and the array extra (iperf3 args).

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

