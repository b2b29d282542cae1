#!/usr/bin/env bash
# Subnet router benchmark (issue 10; prints figures, asserts nothing). Three namespaces:
#
#     A 10.66.0.1 ──veth── R 10.66.0.2   (lattice-control with embedded DERP + STUN in A)
#                          R 10.77.0.1 ──veth── H 10.77.0.2   (R's LAN; H runs no Lattice)
#
# latticed on A (`--accept-routes`) and on R (`--advertise-routes=10.77.0.0/24`, approved with
# `lattice-control nodes approve-routes`, ip_forward on in R's namespace only). One iperf3 TCP
# flow A -> X for each X, side by side:
#   1. R over the raw veth (no tunnel)                          — the ceiling
#   2. R's tailnet IP (direct WireGuard path)                  — direct tailnet throughput
#   3. H through the subnet router (SNAT, the default)         — tunnel + forward + MASQUERADE
#   4. H through the subnet router, --snat-subnet-routes=false  (H routes 100.64.0.0/10 via R)
# then the ratio subnet router / direct tailnet (3 / 2).
#
# Usage (root, after `pnpm exec tsc -b`): test/bench/routes-throughput.sh  (or: pnpm bench:routes)
#   WG_BENCH_TIME   seconds per iperf3 run (default 10)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"

[[ $(id -u) == 0 ]] || { echo "routes-throughput.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip iperf3 ss iptables ping; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found" >&2; exit 1; }
done
secs="${WG_BENCH_TIME:-10}"
# shellcheck source=programs-lib.sh
. "$here/programs-lib.sh"

lt_init
NSA="rtb-$LT_ID-a"
NSR="rtb-$LT_ID-r"
NSH="rtb-$LT_ID-h"
row() { printf '%-62s %10s %s\n' "$1" "$2" "${3:-}"; }

# measure SERVER_NS SERVER_ADDR: one TCP flow from A; prints Mbit/s (receiver side) or nothing.
measure() {
	local ns=$1 addr=$2 spid out
	ip netns exec "$ns" iperf3 -s -1 -B "$addr" >"$LT_WORK/server.out" 2>&1 </dev/null 3>&- &
	spid=$!
	until_true 5 eval '[[ $(ss -H -N "$ns" -tlnp "sport = :5201") == *iperf3* ]]' || { kill "$spid"; return 1; }
	out=$(timeout $((secs + 30)) ip netns exec "$NSA" iperf3 -c "$addr" -t "$secs" -f m 2>&1)
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	echo "$out" >>"$LT_WORK/iperf.log"
	iperf_receiver_mbits <<<"$out"
}

echo "Subnet router throughput: one iperf3 TCP flow for $secs s per row"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r)"
{
	ns_add "$NSA" && ns_add "$NSR" && ns_add "$NSH" &&
		ip -n "$NSA" link add eth0 type veth peer name eth0 netns "$NSR" &&
		ip -n "$NSA" addr add 10.66.0.1/24 dev eth0 && ip -n "$NSA" link set eth0 up &&
		ip -n "$NSR" addr add 10.66.0.2/24 dev eth0 && ip -n "$NSR" link set eth0 up &&
		ip -n "$NSR" link add lan type veth peer name eth0 netns "$NSH" &&
		ip -n "$NSR" addr add 10.77.0.1/24 dev lan && ip -n "$NSR" link set lan up &&
		ip -n "$NSH" addr add 10.77.0.2/24 dev eth0 && ip -n "$NSH" link set eth0 up &&
		ip netns exec "$NSA" sysctl -qw net.ipv4.ip_forward=0 &&
		ip netns exec "$NSR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 &&
		until_true 5 eval '[[ $(ip -n "$NSA" -o link show eth0) == *LOWER_UP* && $(ip -n "$NSH" -o link show eth0) == *LOWER_UP* ]]'
} || { echo "could not build the topology" >&2; exit 1; }

raw=$(measure "$NSR" 10.66.0.2)
row "A -> R, raw veth (no tunnel)" "${raw:-failed}" "Mbit/s"

cdir="$LT_WORK/control"
mkdir -p "$cdir"
bg control ip netns exec "$NSA" "${control[@]}" serve --listen 10.66.0.1:8080 --server-url http://10.66.0.1:8080 \
	--db "$cdir/lattice.db" --socket "$cdir/control.sock"
until_true 30 grep -q "admin socket:" "$LT_WORK/control.log" || { echo "lattice-control did not start:" >&2; tail "$LT_WORK/control.log" >&2; exit 1; }
admin() { "${control[@]}" --socket "$cdir/control.sock" "$@"; }
admin users create bench >/dev/null
key=$(admin keys create --user bench --reusable --preapproved 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')

node_start() { # NAME NS
	local n=$1 ns=$2
	mkdir -p "$LT_WORK/state-$n"
	bg "latticed-$n" ip netns exec "$ns" "${latticed[@]}" --state "$LT_WORK/state-$n" --socket "$LT_WORK/$n.sock" --resolv-conf "$LT_WORK/$n-resolv.conf"
	until_true 30 eval 'ip netns exec "$ns" "${lattice[@]}" --socket "$LT_WORK/$n.sock" status --json | grep -q BackendState'
}
lat_a() { ip netns exec "$NSA" "${lattice[@]}" --socket "$LT_WORK/a.sock" "$@"; }
lat_r() { ip netns exec "$NSR" "${lattice[@]}" --socket "$LT_WORK/r.sock" "$@"; }

node_start a "$NSA" && node_start r "$NSR" || { echo "latticed did not start" >&2; lt_dump_logs >&2; exit 1; }
lat_r up --login-server http://10.66.0.1:8080 --auth-key "$key" --hostname r --advertise-routes=10.77.0.0/24 >/dev/null &&
	lat_a up --login-server http://10.66.0.1:8080 --auth-key "$key" --hostname a --accept-routes >/dev/null ||
	{ echo "lattice up failed" >&2; lt_dump_logs >&2; exit 1; }
rkey=$(lat_r status --json | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).Self.PublicKey))')
admin nodes approve-routes "$rkey" 10.77.0.0/24 >>"$LT_WORK/admin.log" 2>&1 || { echo "approve-routes failed" >&2; tail "$LT_WORK/admin.log" >&2; exit 1; }
ipr=$(lat_r ip -4)

direct=""
# (traffic first: a peer never talked to stays idle, without a path)
if until_true 60 eval 'ip netns exec "$NSA" ping -c 1 -W 1 -q "$ipr" >/dev/null; [[ $(lat_a status 2>/dev/null | awk "\$2 == \"r\"") == *direct* ]]'; then
	direct=$(measure "$NSR" "$ipr")
fi
row "A -> R's tailnet IP $ipr (direct path)" "${direct:-failed}" "Mbit/s"

subnet=""
if until_true 60 ip netns exec "$NSA" ping -c 1 -W 1 10.77.0.2; then subnet=$(measure "$NSH" 10.77.0.2); fi
row "A -> H 10.77.0.2 through the subnet router (SNAT)" "${subnet:-failed}" "Mbit/s"

nosnat=""
ip -n "$NSH" route add 100.64.0.0/10 via 10.77.0.1
if lat_r set --snat-subnet-routes=false && until_true 30 ip netns exec "$NSA" ping -c 1 -W 1 10.77.0.2; then nosnat=$(measure "$NSH" 10.77.0.2); fi
row "A -> H through the subnet router (--snat-subnet-routes=false)" "${nosnat:-failed}" "Mbit/s"

if [[ -n $direct && -n $subnet ]]; then
	awk -v d="$direct" -v s="$subnet" 'BEGIN { printf "%-62s %10.2f\n", "ratio subnet router (SNAT) / direct tailnet", s / d }'
fi
[[ -n $subnet ]]
