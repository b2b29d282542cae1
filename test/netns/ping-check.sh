#!/usr/bin/env bash
# Self-test of lib.sh's ping_all against a scripted responder (echo-responder.mjs on a TUN in a
# namespace of ours), IPv4 and IPv6:
#   - the premise: plain `ping -c 10 -f -W 1` reports a reply that comes 30 ms late as lost
#     (iputils waits 2 x max RTT after its last probe, not -W, once it has seen a reply);
#   - ping_all counts that reply (it reached the namespace's stack) and passes;
#   - ping_all still fails when the reply never comes (a real loss).
# Usage (root, after `pnpm build`): test/netns/ping-check.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $(id -u) == 0 ]] || { echo "not ok - ping-check.sh must run as root (network namespaces, TUN)"; exit 1; }
lt_init
NS="wgt-$LT_ID-p"
IF="pt-$LT_ID"

start_responder() {
	ns_add "$NS"
	: >"$LT_WORK/responder.log"
	ip netns exec "$NS" node "$here/echo-responder.mjs" "$IF" >"$LT_WORK/responder.log" 2>&1 </dev/null 3>&- &
	until_true 10 grep -q ready "$LT_WORK/responder.log" || { cat "$LT_WORK/responder.log"; return 1; }
	ip -n "$NS" addr add 10.77.0.1/24 dev "$IF"
	ip -n "$NS" addr add fd77::1/64 dev "$IF" nodad
	ip -n "$NS" link set up dev "$IF"
}

# The premise: ping itself gives up on the late reply (else this self-test proves nothing).
plain_ping_misses_late_reply() {
	local out
	out=$(ip netns exec "$NS" ping -c 10 -f -W 1 "$1" 2>&1) || true
	echo "$out"
	sleep 0.2 # let the late reply land before the next check reads the counter
	[[ $out == *"10 packets transmitted, 9 received"* ]]
}

late_reply_counts() {
	local out
	out=$(ping_all "$NS" "$1" -c 10 -f -W 1 3>&1)
	echo "$out"
	[[ $out == *"late replies: 1 of 10"* ]]
}

lost_reply_fails() {
	! ping_all "$NS" "$1" -c 10 -f -W 1 -s 64
}

require "responder on $IF in $NS" start_responder
for addr in 10.77.0.2 fd77::2; do
	check "plain ping -f reports the 30 ms late reply to $addr as lost" plain_ping_misses_late_reply "$addr"
	check "ping_all counts the late reply from $addr" late_reply_counts "$addr"
	check "ping_all fails when the reply from $addr never comes" lost_reply_fails "$addr"
done
lt_finish
