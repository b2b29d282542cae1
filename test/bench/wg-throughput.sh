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
# shellcheck source=throughput-lib.sh
. "$here/throughput-lib.sh"

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
