# shellcheck shell=bash
# Rekey without losing the session, between two implementations, each one as the initiator.
# Source lib.sh first. Entry point: run_rekey IMPL_A IMPL_B.
#
# REKEY_AFTER_TIME is 120 s of real time and no implementation offers a way to shorten it (the
# timers are internal; wireguard-go is a static Go binary, so no faketime either), so the check
# waits: two pairs run side by side for WG_REKEY_WAIT seconds (default 130) with a ping every
# 0.2 s through each. Pair X: A (ns1) initiates to B (ns2); pair Y: B (ns1) initiates to A (ns2).
# Only the ns1 side is given an endpoint, so it is certainly the initiator, and it is the
# initiator that rekeys after 120 s. Afterwards every ping must have been answered and
# `wg show IF latest-handshakes` must have advanced on both ends of both pairs.

rekey_latest() { wg show "$1" latest-handshakes | awk '{ print $2 }'; }

# rekey_pair IF1 IF2 NET PORT1 PORT2: keys, addresses NET.1/NET.2, endpoint on IF1 only, up,
# first handshake (from ns1).
rekey_pair() {
	local if1=$1 if2=$2 net=$3 p1=$4 p2=$5
	gen_keys "$if1"
	gen_keys "$if2"
	ip -n "$RK1" addr add "$net.1/24" dev "$if1"
	ip -n "$RK2" addr add "$net.2/24" dev "$if2"
	wg set "$if1" private-key "$(keyfile "$if1")" listen-port "$p1" \
		peer "$(pubkey_of "$if2")" allowed-ips "$net.2/32" endpoint "127.0.0.1:$p2"
	wg set "$if2" private-key "$(keyfile "$if2")" listen-port "$p2" \
		peer "$(pubkey_of "$if1")" allowed-ips "$net.1/32"
	ip -n "$RK1" link set up dev "$if1"
	ip -n "$RK2" link set up dev "$if2"
	ping_all "$RK1" "$net.2" -c 3 -i 0.2 -W 2
	endpoint_is "$if2" "$(pubkey_of "$if1")" "127.0.0.1:$p1"
}

rekey_setup() {
	ns_add "$RK0"
	ns_add "$RK1"
	ns_add "$RK2"
	wg_create "$RK0" "$RK_A" "$XA"
	wg_move "$RK0" "$XA" "$RK1"
	wg_create "$RK0" "$RK_B" "$XB"
	wg_move "$RK0" "$XB" "$RK2"
	wg_create "$RK0" "$RK_B" "$YB"
	wg_move "$RK0" "$YB" "$RK1"
	wg_create "$RK0" "$RK_A" "$YA"
	wg_move "$RK0" "$YA" "$RK2"
	rekey_pair "$XA" "$XB" 192.168.243 11000 21000
	rekey_pair "$YB" "$YA" 192.168.244 11001 21001
}

# rekey_ping_result NAME FILE: every ping answered.
rekey_ping_result() {
	cat "$2"
	[[ $(<"$2") =~ ([0-9]+)\ packets\ transmitted,\ ([0-9]+)\ received ]] || { echo "no ping summary"; return 1; }
	echo "$1: ${BASH_REMATCH[0]}"
	[[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]
}

rekey_advanced() { # IFNAME BEFORE
	local now
	now=$(rekey_latest "$1")
	echo "$1 latest handshake: $2 -> $now"
	info "$1: latest handshake advanced by $((now - $2)) s"
	((now > $2))
}

rekey_wait() {
	local wait=${WG_REKEY_WAIT:-130} ifname
	for ifname in "$XA" "$XB" "$YB" "$YA"; do
		echo "$(rekey_latest "$ifname")" >"$LT_WORK/$ifname.hs0"
	done
	info "rekey: pinging through both pairs for $wait s (REKEY_AFTER_TIME is 120 s)"
	ip netns exec "$RK1" ping -q -c $((wait * 5)) -i 0.2 -W 2 192.168.243.2 >"$LT_WORK/rekey-x.out" 2>&1 </dev/null 3>&- &
	local px=$!
	ip netns exec "$RK1" ping -q -c $((wait * 5)) -i 0.2 -W 2 192.168.244.2 >"$LT_WORK/rekey-y.out" 2>&1 </dev/null 3>&- &
	local py=$!
	wait "$px" "$py" || true
}

rekey_check_pair() { # LABEL IF_INITIATOR IF_RESPONDER PING_OUT
	rekey_ping_result "$1" "$4"
	rekey_advanced "$2" "$(<"$LT_WORK/$2.hs0")"
	rekey_advanced "$3" "$(<"$LT_WORK/$3.hs0")"
}

# run_rekey IMPL_A IMPL_B
run_rekey() {
	RK_A=$1
	RK_B=$2
	RK0="wgt-$LT_ID-k0"
	RK1="wgt-$LT_ID-k1"
	RK2="wgt-$LT_ID-k2"
	XA="wxa-$LT_ID"
	XB="wxb-$LT_ID"
	YA="wya-$LT_ID"
	YB="wyb-$LT_ID"
	local a=${RK_A##*/} b=${RK_B##*/}
	require "[rekey] two pairs: $a->$b ($XA->$XB), $b->$a ($YB->$YA), first handshakes" rekey_setup
	rekey_wait
	check "[rekey] $a initiator rekeys after 120 s, no ping lost ($XA->$XB)" \
		rekey_check_pair "$a->$b" "$XA" "$XB" "$LT_WORK/rekey-x.out"
	check "[rekey] $b initiator rekeys after 120 s, no ping lost ($YB->$YA)" \
		rekey_check_pair "$b->$a" "$YB" "$YA" "$LT_WORK/rekey-y.out"
	ns_del "$RK1"
	ns_del "$RK2"
	ns_del "$RK0"
}
