#!/usr/bin/env bash
# Interoperability between two WireGuard implementations in network namespaces: every
# two-peer check of netns.sh with A as wg1 and B as wg2, then with B as wg1 and A as wg2 (so
# each side initiates handshakes: the stats-counter ping starts from wg2, the NAT check from
# wg1), then a rekey (REKEY_AFTER_TIME, real time: ~130 s) with each side as the initiator and
# no ping lost. The UAPI stress checks involve one implementation only: they are in netns.sh.
#
# Usage (root): test/netns/interop.sh
#   WG_IMPL_A   default `node <repo>/daemon/bin/lattice-wg.js`
#   WG_IMPL_B   default `wireguard-go`
#   WG_REKEY_WAIT     seconds of pinging across the rekey (default 130; must exceed 120)
#   WG_IPERF_TIME, WG_START_TIMEOUT, WG_VERBOSE, WG_KEEP_LOGS, WG_FALLOVER_CHECK: see netns.sh
# Output and exit status as netns.sh ("ok - NAME" / "not ok - NAME", final "1..N").
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=suite.sh
. "$here/suite.sh"
# shellcheck source=rekey.sh
. "$here/rekey.sh"

[[ $(id -u) == 0 ]] || { echo "not ok - interop.sh must run as root (network namespaces, TUN)"; exit 1; }
impl_a="${WG_IMPL_A:-node $repo/daemon/bin/lattice-wg.js}"
impl_b="${WG_IMPL_B:-wireguard-go}"
for tool in ip wg iperf3 ping ncat ss iptables; do
	command -v "$tool" >/dev/null || { echo "not ok - required tool '$tool' not found"; exit 1; }
done

lt_init
info "WG_IMPL_A=$impl_a"
info "WG_IMPL_B=$impl_b"
run_pair_suite "$impl_a" "$impl_b" a
run_pair_suite "$impl_b" "$impl_a" b
run_rekey "$impl_a" "$impl_b"
lt_finish
