#!/usr/bin/env bash
# Interface lifecycle against a real peer: the link going down (and a packet arriving while it
# is), up again, a move to another namespace and back, and a private-key change, with A the
# implementation under test and B the reference.
#
#   [link]       tunnel up (A initiated); `ip link set A down`; B pings once (A must drop it
#                and live on: no exit, interface and UAPI socket still there); `up`; pings
#                both ways are answered. Then A's link moves to another namespace (it arrives
#                down), B pings once, A is brought up there and traffic flows, and back again.
#   [key change] tunnel up (A initiated just now); B learns A's new public key; `wg set A
#                private-key NEW`; A pings every 0.2 s until the first reply: prints the time
#                to the first reply and requires it under 1 s (REKEY_TIMEOUT is 5 s: a stale
#                "last initiation sent" time shows as ~5 s).
#
# With WG_LIFECYCLE_REFERENCE=1 (default) the same checks also run with the reference as A,
# for comparison (its figures are printed too; its checks are prefixed with [reference]).
#
# Usage (root): test/netns/lifecycle.sh
#   WG_IMPL_A   default `node <repo>/daemon/bin/lattice-wg.js`
#   WG_IMPL_B   default `wireguard-go`
#   WG_LIFECYCLE_ONLY=link|key  run only the [link] or the [key change] checks
#   WG_LIFECYCLE_REFERENCE=0    skip the reference-as-A run
#   WG_START_TIMEOUT, WG_VERBOSE, WG_KEEP_LOGS: see netns.sh
# Output and exit status as netns.sh ("ok - NAME" / "not ok - NAME", final "1..N").
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || { echo "not ok - lifecycle.sh must run as root (network namespaces, TUN)"; exit 1; }
impl_a="${WG_IMPL_A:-node $repo/daemon/bin/lattice-wg.js}"
impl_b="${WG_IMPL_B:-wireguard-go}"
for tool in ip wg ping; do
	command -v "$tool" >/dev/null || { echo "not ok - required tool '$tool' not found"; exit 1; }
done

LC_NET=192.168.245

# lc_alive: A's process runs, its interface exists in namespace $1, its UAPI socket answers.
lc_alive() {
	local ns=$1 pid
	pid=$(<"$LT_WORK/$LC_A.pid")
	kill -0 "$pid" || { echo "$LC_A's process $pid has exited"; return 1; }
	ip -n "$ns" link show dev "$LC_A" >/dev/null || { echo "$LC_A is gone from $ns"; return 1; }
	wg show "$LC_A" >/dev/null || { echo "$LC_A's UAPI socket does not answer"; return 1; }
}

# lc_up_in NS: gives A's link its address in NS and brings it up.
lc_up_in() {
	ip -n "$1" addr add "$LC_NET.1/24" dev "$LC_A" 2>/dev/null || true
	ip -n "$1" link set up dev "$LC_A"
}

# lc_one_ping_to_a: B sends one echo request to A, whose link is down (no reply expected).
lc_one_ping_to_a() {
	if ip netns exec "$LC2" ping -n -c 1 -W 1 "$LC_NET.1"; then
		echo "A answered although its link is down"
		return 1
	fi
	# Whatever A's edge does with it happens now; give its 1 s link poll time to run too.
	sleep 1.5
}

lc_setup() {
	ns_add "$LC0"
	ns_add "$LC1"
	ns_add "$LC2"
	ns_add "$LC3"
	wg_create "$LC0" "$LC_IMPL_A" "$LC_A"
	wg_move "$LC0" "$LC_A" "$LC1"
	wg_create "$LC0" "$LC_IMPL_B" "$LC_B"
	wg_move "$LC0" "$LC_B" "$LC2"
	gen_keys "$LC_A"
	gen_keys "$LC_B"
	ip -n "$LC1" addr add "$LC_NET.1/24" dev "$LC_A"
	ip -n "$LC2" addr add "$LC_NET.2/24" dev "$LC_B"
	wg set "$LC_A" private-key "$(keyfile "$LC_A")" listen-port "$LC_PORT_A" \
		peer "$(pubkey_of "$LC_B")" allowed-ips "$LC_NET.2/32" endpoint "127.0.0.1:$LC_PORT_B"
	wg set "$LC_B" private-key "$(keyfile "$LC_B")" listen-port "$LC_PORT_B" \
		peer "$(pubkey_of "$LC_A")" allowed-ips "$LC_NET.1/32"
	ip -n "$LC1" link set up dev "$LC_A"
	ip -n "$LC2" link set up dev "$LC_B"
	ping_all "$LC1" "$LC_NET.2" -c 3 -i 0.2 -W 2
}

lc_link_down_up() {
	ip -n "$LC1" link set down dev "$LC_A"
	lc_one_ping_to_a
	lc_alive "$LC1"
	ip -n "$LC1" link set up dev "$LC_A"
	ping_all "$LC1" "$LC_NET.2" -c 3 -i 0.2 -W 2
	ping_all "$LC2" "$LC_NET.1" -c 3 -i 0.2 -W 2
	lc_alive "$LC1"
}

lc_netns_move() {
	ip -n "$LC1" link set dev "$LC_A" netns "$LC3"
	until_true 5 ip -n "$LC3" link show dev "$LC_A"
	lc_one_ping_to_a
	lc_alive "$LC3"
	lc_up_in "$LC3"
	ping_all "$LC3" "$LC_NET.2" -c 3 -i 0.2 -W 2
	ping_all "$LC2" "$LC_NET.1" -c 3 -i 0.2 -W 2
	ip -n "$LC3" link set dev "$LC_A" netns "$LC1"
	until_true 5 ip -n "$LC1" link show dev "$LC_A"
	lc_one_ping_to_a
	lc_up_in "$LC1"
	ping_all "$LC1" "$LC_NET.2" -c 3 -i 0.2 -W 2
	ping_all "$LC2" "$LC_NET.1" -c 3 -i 0.2 -W 2
	lc_alive "$LC1"
}

lc_key_change() {
	# A initiates a fresh handshake just now (its "last initiation sent" time is recent).
	wg set "$LC_A" peer "$(pubkey_of "$LC_B")" remove
	wg set "$LC_A" peer "$(pubkey_of "$LC_B")" allowed-ips "$LC_NET.2/32" endpoint "127.0.0.1:$LC_PORT_B"
	ping_all "$LC1" "$LC_NET.2" -c 1 -W 2
	gen_keys "$LC_A-new"
	wg set "$LC_B" peer "$(pubkey_of "$LC_A")" remove peer "$(pubkey_of "$LC_A-new")" allowed-ips "$LC_NET.1/32"
	wg set "$LC_A" private-key "$(keyfile "$LC_A-new")"
	local t0 t1 ms rc=0
	t0=$(date +%s%N)
	# One echo request every 0.2 s until the first reply (at most 8 s).
	ip netns exec "$LC1" ping -n -c 1 -i 0.2 -w 8 "$LC_NET.2" || rc=$?
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	((rc == 0)) || { echo "no reply within 8 s of the key change"; info "key change: $LC_NAME_A: no reply within 8 s"; return 1; }
	echo "first reply after $ms ms"
	info "key change: $LC_NAME_A: first reply $ms ms after 'wg set private-key' (peer: $LC_NAME_B)"
	((ms < 1000)) || { echo "first reply after $ms ms (want < 1000)"; return 1; }
	ping_all "$LC2" "$LC_NET.1" -c 3 -i 0.2 -W 2
}

# run_lifecycle IMPL_A IMPL_B PREFIX N
run_lifecycle() {
	LC_IMPL_A=$1
	LC_IMPL_B=$2
	local p=$3 n=$4
	LC_NAME_A=${LC_IMPL_A##*/}
	LC_NAME_B=${LC_IMPL_B##*/}
	LC0="wgt-$LT_ID-l${n}0"
	LC1="wgt-$LT_ID-l${n}1"
	LC2="wgt-$LT_ID-l${n}2"
	LC3="wgt-$LT_ID-l${n}3"
	LC_A="wla$n-$LT_ID"
	LC_B="wlb$n-$LT_ID"
	LC_PORT_A=$((12000 + n))
	LC_PORT_B=$((22000 + n))
	require "$p[lifecycle] $LC_NAME_A ($LC_A) <-> $LC_NAME_B ($LC_B): tunnel up, A initiated" lc_setup
	if [[ ${WG_LIFECYCLE_ONLY:-link} == link ]]; then
		check "$p[link] $LC_NAME_A: a packet while its link is down is dropped, the daemon lives on; after up, pings both ways" lc_link_down_up
		check "$p[link] $LC_NAME_A: link moved to another namespace (arrives down) and back: lives on, traffic after up in each" lc_netns_move
	fi
	if [[ ${WG_LIFECYCLE_ONLY:-key} == key ]]; then
		check "$p[key change] $LC_NAME_A: first reply within 1 s of 'wg set private-key' (peer knows the new key)" lc_key_change
	fi
	ns_del "$LC1"
	ns_del "$LC2"
	ns_del "$LC3"
	ns_del "$LC0"
}

lt_init
info "WG_IMPL_A=$impl_a"
info "WG_IMPL_B=$impl_b"
run_lifecycle "$impl_a" "$impl_b" "" 1
if [[ ${WG_LIFECYCLE_REFERENCE:-1} == 1 ]]; then
	run_lifecycle "$impl_b" "$impl_b" "[reference] " 2
fi
lt_finish
