#!/usr/bin/env bash
# Real-peer WireGuard checks in network namespaces, after WireGuard's netns.sh (the kernel's
# tools/testing/selftests/wireguard/netns.sh as ported to wireguard-go's tests/netns.sh):
# ping and iperf3 (TCP/UDP, v4/v6) over IPv4 and IPv6 outer transport at the default and a
# 34 KB inner MTU, stats counters, roaming, the cryptokey reverse-path filter, NAT with
# persistent keepalive, source address handling, and UAPI stress through `wg`.
#
# Usage (root): test/netns/netns.sh
#   WG_IMPL_1   command creating wg1 (ns1 side), default `wireguard-go`
#   WG_IMPL_2   command creating wg2 (ns2 side), default `wireguard-go`
#               e.g. WG_IMPL_1="node $PWD/daemon/bin/lattice-wg.js" (from the repo root)
#               The command is run as `CMD -f IFNAME` (and `CMD IFNAME` for the daemon-mode
#               check); the UAPI stress part runs once per distinct command.
#   WG_IPERF_TIME     seconds per iperf3 run (default 2)
#   WG_START_TIMEOUT  seconds to wait for an interface and its UAPI socket (default 30)
#   WG_VERBOSE=1      show the output of passing checks too
#   WG_FALLOVER_CHECK=1  also run upstream's "source address falls over" check (see suite.sh)
#   WG_KEEP_LOGS=1    keep the scratch directory (daemon logs) after the run
# Output: one "ok - NAME" or "not ok - NAME" line per check, "# " diagnostics (throughput
# figures), a final "1..N" plan. Exit status 0 only when every check passed.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=suite.sh
. "$here/suite.sh"
# shellcheck source=uapi.sh
. "$here/uapi.sh"

[[ $(id -u) == 0 ]] || { echo "not ok - netns.sh must run as root (network namespaces, TUN)"; exit 1; }
impl1="${WG_IMPL_1:-wireguard-go}"
impl2="${WG_IMPL_2:-wireguard-go}"
for tool in ip wg iperf3 ping ncat ss iptables; do
	command -v "$tool" >/dev/null || { echo "not ok - required tool '$tool' not found"; exit 1; }
done

lt_init
info "WG_IMPL_1=$impl1"
info "WG_IMPL_2=$impl2"
run_pair_suite "$impl1" "$impl2" a
run_uapi_stress "$impl1" u
[[ $impl2 == "$impl1" ]] || run_uapi_stress "$impl2" v
lt_finish
