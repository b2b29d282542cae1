#!/usr/bin/env bash
# Subnet router benchmark (prints figures, asserts nothing; issue 10's "throughput through a
# subnet router vs direct tailnet throughput"). Namespaces:
#   A (lattice-control + latticed, 10.77.0.1) <-veth-> R (latticed, 10.77.0.2; router)
#   R (lan1 10.88.0.1) <-veth-> H (10.88.0.5, default route via R; no latticed)
# R advertises 10.88.0.0/24 (approved with `lattice-control nodes approve-routes`), A accepts
# routes (RouteAll). Prefs are set over the LocalAPI (curl --unix-socket). One iperf3 TCP flow
# A -> target each, for WG_BENCH_TIME s (default 10):
#   1. raw veth A -> R (no tunnel)
#   2. A -> R's tailnet address (direct tailnet path)
#   3. A -> H through R's subnet route, SNAT (MASQUERADE at R)
#   4. the same with NoSNAT (H routes the tailnet range back via R)
# then the ratio subnet router / direct tailnet.
#
# Usage (root, after `pnpm exec tsc -b`): test/bench/routes-throughput.sh  (or: pnpm bench:routes)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"
# shellcheck source=throughput-lib.sh
. "$here/throughput-lib.sh"

[[ $(id -u) == 0 ]] || { echo "routes-throughput.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip iperf3 ss iptables curl; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found" >&2; exit 1; }
done
secs="${WG_BENCH_TIME:-10}"
extra=()
control=(node "$repo/coordination/dist/main.js")
latticed=(node "$repo/daemon/bin/latticed.js")
for f in "${control[1]}" "${latticed[1]}"; do [[ -f $f ]] || { echo "$f missing: run pnpm exec tsc -b" >&2; exit 1; }; done

lt_init
NS1="routes-$LT_ID-a"
NS2="routes-$LT_ID-r"
NS3="routes-$LT_ID-h"
row() { printf '%-58s %10s %s\n' "$1" "$2" "${3:-}"; }
# api N METHOD PATH [JSON]: a LocalAPI call to node N (1 = A, 2 = R).
api() {
	local ns sock="$LT_WORK/n$1.sock"
	ns=$([[ $1 == 1 ]] && echo "$NS1" || echo "$NS2")
	ip netns exec "$ns" curl -sf --unix-socket "$sock" -X "$2" -H "Host: local-tailscaled.sock" ${4:+-d "$4"} "http://local-tailscaled.sock/localapi/v0/$3"
}
# measure_at NS ADDR: one TCP flow from A to an iperf3 server in NS bound to ADDR; Mbit/s or nothing.
measure_at() {
	local ns=$1 addr=$2 spid out
	ip netns exec "$ns" iperf3 -s -1 -B "$addr" >"$LT_WORK/server.out" 2>&1 </dev/null 3>&- &
	spid=$!
	until_true 5 eval '[[ $(ss -H -N "$ns" -tlnp "sport = :5201") == *iperf3* ]]' || { kill "$spid"; return 1; }
	out=$(timeout $((secs + 30)) ip netns exec "$NS1" iperf3 -c "$addr" -t "$secs" -f m 2>&1)
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	echo "$out" >>"$LT_WORK/iperf.log"
	iperf_receiver_mbits <<<"$out"
}

echo "Subnet router throughput: one iperf3 TCP flow for $secs s"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r)"
setup_veth || { echo "could not build the veth topology" >&2; exit 1; }
ns_add "$NS3" || exit 1
ip -n "$NS2" link add lan1 type veth peer name eth0 netns "$NS3"
ip -n "$NS2" addr add 10.88.0.1/24 dev lan1
ip -n "$NS2" link set lan1 up
ip -n "$NS3" addr add 10.88.0.5/24 dev eth0
ip -n "$NS3" link set eth0 up
ip -n "$NS3" route add default via 10.88.0.1
ip netns exec "$NS2" sysctl -qw net.ipv4.ip_forward=1

raw=$(measure_at "$NS2" 10.77.0.2)
row "raw veth A -> R (no tunnel)" "${raw:-failed}" "Mbit/s"

cdir="$LT_WORK/control"
mkdir -p "$cdir"
bg control ip netns exec "$NS1" "${control[@]}" serve --listen 10.77.0.1:8080 --server-url http://10.77.0.1:8080 \
	--db "$cdir/lattice.db" --socket "$cdir/control.sock"
until_true 30 grep -q "admin socket" "$LT_WORK/control.log" || { echo "lattice-control did not start" >&2; exit 1; }
"${control[@]}" --socket "$cdir/control.sock" users create bench >/dev/null
key=$("${control[@]}" --socket "$cdir/control.sock" keys create --user bench --reusable --preapproved 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')
for n in 1 2; do
	ns=$([[ $n == 1 ]] && echo "$NS1" || echo "$NS2")
	mkdir -p "$LT_WORK/state$n"
	bg "latticed$n" ip netns exec "$ns" "${latticed[@]}" --state "$LT_WORK/state$n" --socket "$LT_WORK/n$n.sock" --resolv-conf "$LT_WORK/resolv$n.conf"
	until_true 30 api "$n" GET status || { echo "latticed $n did not start" >&2; lt_dump_logs >&2; exit 1; }
done
api 1 POST up "{\"ControlURL\":\"http://10.77.0.1:8080\",\"AuthKey\":\"$key\",\"Hostname\":\"a\",\"RouteAll\":true}" >/dev/null
api 2 POST up "{\"ControlURL\":\"http://10.77.0.1:8080\",\"AuthKey\":\"$key\",\"Hostname\":\"r\",\"AdvertiseRoutes\":[\"10.88.0.0/24\"]}" >/dev/null
until_true 30 eval '[[ $(api 2 GET status) == *\"BackendState\":\"Running\"* ]]' || { echo "R not running" >&2; exit 1; }
ipr=$(api 2 GET status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).TailscaleIPs[0]))')
"${control[@]}" --socket "$cdir/control.sock" nodes approve-routes r 10.88.0.0/24 >/dev/null
until_true 30 eval '[[ $(ip -n "$NS1" route show table 52) == *10.88.0.0/24* ]]' || { echo "A did not get R's route" >&2; exit 1; }
until_true 30 ip netns exec "$NS1" ping -c 1 -W 1 10.88.0.5 || { echo "H unreachable through R" >&2; lt_dump_logs >&2; exit 1; }
until_true 30 ip netns exec "$NS1" ping -c 1 -W 1 "$ipr"

direct=$(measure_at "$NS2" "$ipr")
row "latticed A -> R tailnet address (direct)" "${direct:-failed}" "Mbit/s"
snat=$(measure_at "$NS3" 10.88.0.5)
row "latticed A -> H through R's subnet route (SNAT)" "${snat:-failed}" "Mbit/s"
api 2 PATCH prefs '{"NoSNAT":true}' >/dev/null
until_true 10 eval '! ip netns exec "$NS2" iptables -t nat -S lattice-postrouting | grep -q MASQUERADE'
nosnat=$(measure_at "$NS3" 10.88.0.5)
row "latticed A -> H through R's subnet route (NoSNAT)" "${nosnat:-failed}" "Mbit/s"
if [[ -n $direct && -n $snat ]]; then
	awk -v d="$direct" -v s="$snat" 'BEGIN { printf "%-58s %10.2f\n", "ratio subnet router (SNAT) / direct tailnet", s / d }'
fi
[[ -n $direct && -n $snat ]]
