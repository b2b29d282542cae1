# shellcheck shell=bash
# The checks of WireGuard's netns.sh (kernel tools/testing/selftests/wireguard/netns.sh, as
# ported to wireguard-go's tests/netns.sh), written as functions over two implementations.
# Source lib.sh first. Entry points: run_pair_suite IMPL1 IMPL2 TAG, run_uapi_stress IMPL TAG.
#
# Topology of the first part (the UDP endpoints of both interfaces on ns0's loopback):
#
#   ns1: wg1 192.168.241.1/24 fd00::1/24     ns0: lo 127.0.0.1 ::1       ns2: wg2 .2 / fd00::2
#        (TUN moved here from ns0)                UDP :10000 (wg1's daemon)     (TUN moved here)
#                                                 UDP :20000 (wg2's daemon)
#
# Then NAT (ns1 -> router ns0 with SNAT -> ns2) and a direct veth (source address handling),
# where each daemon runs in the namespace that holds its interface.

# suite_names TAG: namespace and interface names for one run (interface names <= 15 bytes and
# unique per run, because /var/run/wireguard/IFNAME.sock is shared by the whole machine).
suite_names() {
	NS0="wgt-$LT_ID-${1}0"
	NS1="wgt-$LT_ID-${1}1"
	NS2="wgt-$LT_ID-${1}2"
	IF1="w${1}1-$LT_ID"
	IF2="w${1}2-$LT_ID"
}

# configure_peers: addresses, keys, listen ports 10000/20000, allowed IPs, links up.
configure_peers() {
	ip -n "$NS1" addr add 192.168.241.1/24 dev "$IF1"
	ip -n "$NS1" addr add fd00::1/24 dev "$IF1"
	ip -n "$NS2" addr add 192.168.241.2/24 dev "$IF2"
	ip -n "$NS2" addr add fd00::2/24 dev "$IF2"
	wg set "$IF1" private-key "$(keyfile k1)" listen-port 10000 \
		peer "$PUB2" preshared-key "$(keyfile psk)" allowed-ips 192.168.241.2/32,fd00::2/128
	wg set "$IF2" private-key "$(keyfile k2)" listen-port 20000 \
		peer "$PUB1" preshared-key "$(keyfile psk)" allowed-ips 192.168.241.1/32,fd00::1/128
	wg showconf "$IF1"
	wg showconf "$IF2"
	ip -n "$NS1" link set up dev "$IF1"
	ip -n "$NS2" link set up dev "$IF2"
	until_true 5 eval '[[ $(ip -n "$NS1" -o link show dev "$IF1") == *",UP"* && $(ip -n "$NS2" -o link show dev "$IF2") == *",UP"* ]]'
}

create_namespaces() {
	ns_add "$NS0"
	ns_add "$NS1"
	ns_add "$NS2"
}

delete_both() {
	wg_delete "$NS1" "$IF1"
	wg_delete "$NS2" "$IF2"
}

configure_veth() {
	configure_peers
	veth_setup
}

# Creates both interfaces: the daemons run in ns0 and the TUNs move to ns1/ns2.
create_in_ns0() {
	wg_create "$NS0" "$IMPL1" "$IF1"
	wg_move "$NS0" "$IF1" "$NS1"
	wg_create "$NS0" "$IMPL2" "$IF2"
	wg_move "$NS0" "$IF2" "$NS2"
}

# Creates both interfaces with each daemon in the namespace of its interface.
create_in_place() {
	wg_create "$NS1" "$IMPL1" "$IF1"
	wg_create "$NS2" "$IMPL2" "$IF2"
}

stats() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }

# The stats counters of the TUN move with 10 pings (84-byte IPv4 packets each way).
check_counters() {
	local rx0 tx0 rx tx
	rx0=$(stats "$NS2" "$IF2" rx_bytes)
	tx0=$(stats "$NS2" "$IF2" tx_bytes)
	ping_all "$NS2" 192.168.241.1 -c 10 -f -W 1
	rx=$(($(stats "$NS2" "$IF2" rx_bytes) - rx0))
	tx=$(($(stats "$NS2" "$IF2" tx_bytes) - tx0))
	echo "rx $rx bytes, tx $tx bytes"
	((rx >= 840 && tx >= 840 && rx < 2500 && tx < 2500))
}

# The traffic checks of netns.sh's tests(), labelled with LABEL; with "big" also pings of the
# largest size the inner MTU allows, without fragmentation.
traffic_checks() {
	local label=$1 mtu
	mtu=$(ip -n "$NS1" -o link show dev "$IF1" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
	check "$label ping v4 ns2->ns1" ping_all "$NS2" 192.168.241.1 -c 10 -f -W 1
	check "$label ping v4 ns1->ns2" ping_all "$NS1" 192.168.241.2 -c 10 -f -W 1
	check "$label ping v6 ns2->ns1" ping_all "$NS2" fd00::1 -c 10 -f -W 1
	check "$label ping v6 ns1->ns2" ping_all "$NS1" fd00::2 -c 10 -f -W 1
	check "$label ping v4 size $((mtu - 28)) ns1->ns2" ping_all "$NS1" 192.168.241.2 -c 3 -i 0.2 -W 2 -M do -s $((mtu - 28))
	check "$label ping v6 size $((mtu - 48)) ns2->ns1" ping_all "$NS2" fd00::1 -c 3 -i 0.2 -W 2 -M do -s $((mtu - 48))
	check "$label tcp v4 ns1->ns2" iperf "$label tcp v4 ns1->ns2" "$NS2" 192.168.241.2 "$NS1" -Z
	check "$label tcp v6 ns2->ns1" iperf "$label tcp v6 ns2->ns1" "$NS1" fd00::1 "$NS2" -Z
	check "$label udp v4 ns2->ns1" iperf "$label udp v4 ns2->ns1" "$NS1" 192.168.241.1 "$NS2" -Z -u -b 0
	check "$label udp v6 ns1->ns2" iperf "$label udp v6 ns1->ns2" "$NS2" fd00::2 "$NS1" -Z -u -b 0
}

set_mtu() {
	ip -n "$NS1" link set dev "$IF1" mtu "$1"
	ip -n "$NS2" link set dev "$IF2" mtu "$1"
}

set_endpoints() {
	wg set "$IF1" peer "$PUB2" endpoint "$1"
	wg set "$IF2" peer "$PUB1" endpoint "$2"
}

endpoint_is() { # IFNAME PUB EXPECTED
	local got
	got=$(wg show "$1" endpoints)
	echo "wg show $1 endpoints: $got (want $2	$3)"
	[[ $got == "$2	$3" ]]
}

# Roaming: wg1 moves to a new source address and port; wg2 must learn it from authenticated
# data packets alone.
check_roaming_v4() {
	ip -n "$NS0" -4 addr del 127.0.0.1/8 dev lo
	ip -n "$NS0" -4 addr add 127.212.121.99/8 dev lo
	wg set "$IF1" listen-port 9999
	wg set "$IF1" peer "$PUB2" endpoint 127.0.0.1:20000
	ping_all "$NS1" fd00::2 -c 1 -W 2
	endpoint_is "$IF2" "$PUB1" 127.212.121.99:9999
}

check_roaming_v6() {
	wg set "$IF1" listen-port 9998
	wg set "$IF1" peer "$PUB2" endpoint '[::1]:20000'
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
	endpoint_is "$IF2" "$PUB1" '[::1]:9998'
}

# Cryptokey routing as a reverse-path filter: with 192.168.241.0/24 on wg2's peer, a UDP
# datagram from 192.168.241.2 arrives; once another peer claims 192.168.241.2/32 the same
# datagram (authenticated by wg2's key) is dropped, though it still updates the endpoint.
check_crypto_rp_allowed() {
	wg set "$IF1" peer "$PUB2" allowed-ips 192.168.241.0/24
	udp_listen "$NS1" 1111 "$LT_WORK/ncat.out"
	local pid=$LT_LAST_PID
	udp_send "$NS2" 192.168.241.1 1111 X
	until_true 3 grep -qx X "$LT_WORK/ncat.out"
	kill "$pid" 2>/dev/null || true
}

check_crypto_rp_dropped() {
	gen_keys specific
	wg set "$IF1" peer "$(pubkey_of specific)" allowed-ips 192.168.241.2/32
	wg set "$IF2" listen-port 9997
	udp_listen "$NS1" 1111 "$LT_WORK/ncat.out"
	local pid=$LT_LAST_PID
	udp_send "$NS2" 192.168.241.1 1111 X
	sleep 1.5
	kill "$pid" 2>/dev/null || true
	if [[ -s $LT_WORK/ncat.out ]]; then
		echo "datagram from 192.168.241.2 was delivered though a more specific peer owns it"
		return 1
	fi
	wg set "$IF1" peer "$(pubkey_of specific)" remove
	endpoint_is "$IF1" "$PUB2" '[::1]:9997'
}

# NAT: ns1 --vethc/vethrc-- ns0 (router, SNAT 192.168.1.0/24 -> 10.0.0.1) --vethrs/veths-- ns2.
# The conntrack UDP timeout is 2 s; a 1 s persistent keepalive from wg1 keeps the mapping, so
# wg2 can still reach wg1 after 3 s of silence.
nat_setup() {
	ip -n "$NS0" link add vethrc type veth peer name vethc
	ip -n "$NS0" link add vethrs type veth peer name veths
	ip -n "$NS0" link set vethc netns "$NS1"
	ip -n "$NS0" link set veths netns "$NS2"
	ip -n "$NS0" addr add 192.168.1.1/24 dev vethrc
	ip -n "$NS0" addr add 10.0.0.1/24 dev vethrs
	ip -n "$NS0" link set vethrc up
	ip -n "$NS0" link set vethrs up
	ip -n "$NS1" addr add 192.168.1.100/24 dev vethc
	ip -n "$NS1" link set vethc up
	ip -n "$NS1" route add default via 192.168.1.1
	ip -n "$NS2" addr add 10.0.0.100/24 dev veths
	ip -n "$NS2" link set veths up
	ip netns exec "$NS0" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward &&
		echo 2 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout &&
		echo 2 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream'
	ip netns exec "$NS0" iptables -t nat -A POSTROUTING -s 192.168.1.0/24 -d 10.0.0.0/24 -j SNAT --to 10.0.0.1
	until_true 5 eval '[[ $(ip -n "$NS0" -o link show vethrs) == *LOWER_UP* && $(ip -n "$NS1" -o link show vethc) == *LOWER_UP* && $(ip -n "$NS2" -o link show veths) == *LOWER_UP* ]]'
}

check_nat() {
	wg set "$IF1" peer "$PUB2" endpoint 10.0.0.100:20000 persistent-keepalive 1
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
	ping_all "$NS2" 192.168.241.1 -c 1 -W 2
	endpoint_is "$IF2" "$PUB1" 10.0.0.1:10000
}

check_nat_keepalive() {
	sleep 3
	ping_all "$NS2" 192.168.241.1 -c 1 -W 2
}

# Direct veth ns1 <-> ns2 for the source address checks.
veth_setup() {
	ip -n "$NS1" link add veth1 type veth peer name veth2
	ip -n "$NS1" link set veth2 netns "$NS2"
	ip netns exec "$NS1" sh -c 'echo 0 > /proc/sys/net/ipv6/conf/veth1/accept_dad; echo 1 > /proc/sys/net/ipv4/conf/veth1/promote_secondaries'
	ip netns exec "$NS2" sh -c 'echo 0 > /proc/sys/net/ipv6/conf/veth2/accept_dad'
}

veth_wait_up() {
	until_true 5 eval '[[ $(ip -n "$NS1" -o link show veth1) == *LOWER_UP* && $(ip -n "$NS2" -o link show veth2) == *LOWER_UP* ]]'
}

# Not overly sticky: when wg1's source address disappears it must fall over to the new one.
check_source_fallover() {
	ip -n "$NS1" addr add 10.0.0.1/24 dev veth1
	ip -n "$NS1" addr add fd00:aa::1/96 dev veth1
	ip -n "$NS2" addr add 10.0.0.2/24 dev veth2
	ip -n "$NS2" addr add fd00:aa::2/96 dev veth2
	ip -n "$NS1" link set veth1 up
	ip -n "$NS2" link set veth2 up
	veth_wait_up
	wg set "$IF1" peer "$PUB2" endpoint 10.0.0.2:20000
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
	ip -n "$NS1" addr add 10.0.0.10/24 dev veth1
	ip -n "$NS1" addr del 10.0.0.1/24 dev veth1
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
	wg set "$IF1" peer "$PUB2" endpoint '[fd00:aa::2]:20000'
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
	ip -n "$NS1" addr add fd00:aa::10/96 dev veth1
	ip -n "$NS1" addr del fd00:aa::1/96 dev veth1
	ping_all "$NS1" 192.168.241.2 -c 1 -W 2
}

# Reply to sender: ns1 has two addresses of each family; whichever one wg2 sends to, wg1 must
# answer from it (else wg2 would roam its endpoint to wg1's default source address).
check_reply_to_sender() {
	ip -n "$NS1" link set veth1 down
	ip -n "$NS2" link set veth2 down
	ip -n "$NS1" addr flush dev veth1
	ip -n "$NS2" addr flush dev veth2
	ip -n "$NS1" addr add 10.0.0.1/24 dev veth1
	ip -n "$NS1" addr add 10.0.0.2/24 dev veth1
	ip -n "$NS1" addr add fd00:aa::1/96 dev veth1
	ip -n "$NS1" addr add fd00:aa::2/96 dev veth1
	ip -n "$NS2" addr add 10.0.0.3/24 dev veth2
	ip -n "$NS2" addr add fd00:aa::3/96 dev veth2
	ip -n "$NS1" link set veth1 up
	ip -n "$NS2" link set veth2 up
	veth_wait_up
	local ep
	for ep in 10.0.0.1:10000 '[fd00:aa::1]:10000' 10.0.0.2:10000 '[fd00:aa::2]:10000'; do
		wg set "$IF2" peer "$PUB1" endpoint "$ep"
		ping_all "$NS2" 192.168.241.1 -c 1 -W 2
		endpoint_is "$IF2" "$PUB1" "$ep"
	done
}

# run_pair_suite IMPL1 IMPL2 TAG: every two-peer check of netns.sh with IMPL1 as wg1 (ns1) and
# IMPL2 as wg2 (ns2). TAG (one letter) keeps the names of successive runs apart.
run_pair_suite() {
	IMPL1=$1
	IMPL2=$2
	suite_names "$3"
	local who="[wg1=${IMPL1##*/} wg2=${IMPL2##*/}]"
	info "$who namespaces $NS0 $NS1 $NS2, interfaces $IF1 $IF2"
	gen_keys k1 && gen_keys k2 && wg genpsk >"$LT_WORK/psk.key" || return 1
	PUB1=$(pubkey_of k1)
	PUB2=$(pubkey_of k2)
	require "$who create namespaces" create_namespaces
	require "$who create $IF1/$IF2 in ns0, move to ns1/ns2" create_in_ns0
	require "$who configure peers over ns0 loopback" configure_peers

	local orig_mtu big_mtu
	orig_mtu=$(ip -n "$NS1" -o link show dev "$IF1" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
	big_mtu=$((34816 - 1500 + orig_mtu))

	set_endpoints 127.0.0.1:20000 127.0.0.1:10000
	check "$who stats counters (handshake initiated by wg2)" check_counters
	traffic_checks "$who outer v4 mtu $orig_mtu"
	check "$who set mtu $big_mtu" set_mtu "$big_mtu"
	traffic_checks "$who outer v4 mtu $big_mtu"
	set_mtu "$orig_mtu"

	set_endpoints '[::1]:20000' '[::1]:10000'
	traffic_checks "$who outer v6 mtu $orig_mtu"
	set_mtu "$big_mtu"
	traffic_checks "$who outer v6 mtu $big_mtu"
	set_mtu "$orig_mtu"

	check "$who roaming: new v4 source address and port" check_roaming_v4
	check "$who roaming: new v6 port" check_roaming_v6
	check "$who crypto-RP: allowed source delivered" check_crypto_rp_allowed
	check "$who crypto-RP: more specific peer steals the source" check_crypto_rp_dropped
	ip -n "$NS0" -4 addr add 127.0.0.1/8 dev lo 2>/dev/null
	check "$who delete $IF1: daemon exits, socket removed" wg_delete "$NS1" "$IF1"
	check "$who delete $IF2: daemon exits, socket removed" wg_delete "$NS2" "$IF2"

	require "$who create $IF1 in ns1, $IF2 in ns2 (NAT topology)" create_in_place
	require "$who configure peers (NAT topology)" configure_peers
	require "$who router ns0 with SNAT" nat_setup
	check "$who NAT: wg2 learns the translated endpoint (handshake initiated by wg1)" check_nat
	check "$who NAT: persistent keepalive keeps the mapping" check_nat_keepalive
	ip netns exec "$NS0" iptables -t nat -F
	ip -n "$NS0" link del vethrc
	ip -n "$NS0" link del vethrs
	check "$who delete interfaces (NAT topology)" delete_both

	require "$who create $IF1 in ns1, $IF2 in ns2 (veth topology)" create_in_place
	require "$who configure peers (veth topology)" configure_veth
	# Opt-in: Debian's wireguard-go 0.0.20220316 fails this one on current kernels (sendmsg with
	# a stale IP_PKTINFO source returns ENETUNREACH and it only retries on EINVAL), and an
	# implementation that lets the kernel choose the source passes it trivially.
	if [[ -n ${WG_FALLOVER_CHECK:-} ]]; then
		check "$who source address: falls over when the old one is removed" check_source_fallover
	fi
	check "$who source address: replies from the address the peer sent to" check_reply_to_sender
	ip -n "$NS1" link del veth1
	check "$who delete interfaces (veth topology)" delete_both
	ns_del "$NS1"
	ns_del "$NS2"
	ns_del "$NS0"
}
