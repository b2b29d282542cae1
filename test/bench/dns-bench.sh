#!/usr/bin/env bash
# MagicDNS benchmark (issue 10; figures, not a test): queries/s and p50/p99 latency of
# latticed's quad-100 (100.100.100.100) vs a local dnsmasq answering the same names, from a
# Node load generator (test/bench/dns-load.mjs: CONC workers, one query in flight each) in
# the client's namespace. Topology: two namespaces over a veth pair (as the other benches),
# lattice-control and latticed "client" in ns1, latticed "server" in ns2 (a peer, so the
# tailnet name asked is a peer's). dnsmasq runs in ns1 on 10.77.0.1:53 and is both
#   - the baseline ("dnsmasq" column: asked directly, it answers the same names from
#     --address/--host-record, no upstream), and
#   - quad-100's upstream (client's resolv.conf names it), so a forwarded name costs
#     quad-100 + one dnsmasq round trip.
# Rows: tailnet name (server.<domain>) over UDP and TCP, forwarded name (www.bench.example)
# over UDP and TCP. Ratios are quad-100 / dnsmasq, for q/s (higher is better) and for p99
# (lower is better). The load generator shares the 2 cores with both servers: at these
# rates it is often the bottleneck, so compare rows, not absolute numbers.
# Usage (root, after `pnpm exec tsc -b`): test/bench/dns-bench.sh  (or: pnpm bench:dns)
#   DNS_BENCH_SECONDS (default 3), DNS_BENCH_CONC (default 32)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"
# shellcheck source=throughput-lib.sh
. "$here/throughput-lib.sh"

[[ $(id -u) == 0 ]] || { echo "dns-bench.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip dnsmasq; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found (apt-get install dnsmasq-base)" >&2; exit 1; }
done
secs="${DNS_BENCH_SECONDS:-3}"
conc="${DNS_BENCH_CONC:-32}"
# shellcheck source=programs-lib.sh
. "$here/programs-lib.sh"

lt_init
NS1="dnsb-$LT_ID-s1"
NS2="dnsb-$LT_ID-s2"
setup_veth || { echo "could not build the veth topology" >&2; exit 1; }
ip -n "$NS1" link set lo up
ip -n "$NS2" link set lo up

cdir="$LT_WORK/control"
mkdir -p "$cdir"
bg control ip netns exec "$NS1" "${control[@]}" serve --listen 10.77.0.1:8080 --server-url http://10.77.0.1:8080 \
	--db "$cdir/lattice.db" --socket "$cdir/control.sock"
until_true 30 grep -q "admin socket" "$LT_WORK/control.log" || { echo "lattice-control did not start" >&2; exit 1; }
adm() { "${control[@]}" --socket "$cdir/control.sock" "$@"; }
adm users create bench >/dev/null
key=$(adm keys create --user bench --preapproved --reusable 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')

printf 'nameserver 10.77.0.1\n' >"$LT_WORK/resolv1.conf"
node_start() { # N NS
	local n=$1 ns=$2
	mkdir -p "$LT_WORK/state$n"
	bg "latticed$n" ip netns exec "$ns" "${latticed[@]}" --state "$LT_WORK/state$n" --socket "$LT_WORK/n$n.sock" --resolv-conf "$LT_WORK/resolv$n.conf"
	until_true 30 eval 'ip netns exec "$ns" "${lattice[@]}" --socket "$LT_WORK/n$n.sock" status --json 2>/dev/null | grep -q BackendState'
}
lat() { local n=$1; shift; ip netns exec "$([[ $n == 1 ]] && echo "$NS1" || echo "$NS2")" "${lattice[@]}" --socket "$LT_WORK/n$n.sock" "$@"; }
node_start 1 "$NS1" && node_start 2 "$NS2" || { echo "latticed did not start" >&2; lt_dump_logs >&2; exit 1; }
lat 1 up --login-server http://10.77.0.1:8080 --auth-key "$key" --hostname client >/dev/null || { echo "lattice up (client) failed" >&2; exit 1; }
lat 2 up --login-server http://10.77.0.1:8080 --auth-key "$key" --hostname server >/dev/null || { echo "lattice up (server) failed" >&2; exit 1; }
ip2=$(lat 2 ip -4)
domain=$(lat 1 status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).MagicDNSSuffix))')
tailname="server.$domain"

bg dnsmasq ip netns exec "$NS1" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root --listen-address=10.77.0.1 \
	--bind-interfaces --port=53 --address=/bench.example/192.0.2.1 --host-record="$tailname,$ip2" --cache-size=1000 --dns-forward-max=1000 \
	--pid-file="$LT_WORK/dnsmasq.pid"
until_true 10 eval '[[ $(ip netns exec "$NS1" dig +short +time=1 +tries=1 @10.77.0.1 www.bench.example) == 192.0.2.1 ]]' || { echo "dnsmasq did not start" >&2; exit 1; }
until_true 20 eval '[[ $(ip netns exec "$NS1" dig +short +time=1 +tries=1 @100.100.100.100 "$tailname") == "$ip2" ]]' || { echo "MagicDNS does not answer $tailname" >&2; lt_dump_logs >&2; exit 1; }
[[ $(ip netns exec "$NS1" dig +short +time=1 +tries=1 @100.100.100.100 www.bench.example) == 192.0.2.1 ]] || { echo "MagicDNS does not forward" >&2; exit 1; }

load() { ip netns exec "$NS1" node "$here/dns-load.mjs" "$@" --conc "$conc" --seconds "$secs"; }
field() { node -e 'const o=JSON.parse(process.argv[1]);console.log(o[process.argv[2]])' "$1" "$2"; }
echo "MagicDNS benchmark: quad-100 (latticed) vs dnsmasq 2.x in the same namespace; $conc workers x ${secs}s, one query in flight each"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); Node $(node --version); $(dnsmasq --version | head -1)"
printf '%-34s %21s %21s %20s\n' "" "quad-100 q/s p50/p99" "dnsmasq q/s p50/p99" "quad/dnsmasq q/s p99"
for row in "tailnet name (UDP)|$tailname|" "tailnet name (TCP)|$tailname|--tcp" "forwarded name (UDP)|www.bench.example|" "forwarded name (TCP)|www.bench.example|--tcp"; do
	IFS='|' read -r label name flag <<<"$row"
	# shellcheck disable=SC2086
	q=$(load 100.100.100.100 "$name" $flag)
	# shellcheck disable=SC2086
	d=$(load 10.77.0.1 "$name" $flag)
	qq=$(field "$q" qps) qp50=$(field "$q" p50Ms) qp99=$(field "$q" p99Ms) qto=$(field "$q" timeouts)
	dq=$(field "$d" qps) dp50=$(field "$d" p50Ms) dp99=$(field "$d" p99Ms)
	printf '%-34s %7s %6.2f/%6.2fms %7s %6.2f/%6.2fms %6.2fx %6.2fx%s\n' "$label" "$qq" "$qp50" "$qp99" "$dq" "$dp50" "$dp99" \
		"$(awk -v a="$qq" -v b="$dq" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
		"$(awk -v a="$qp99" -v b="$dp99" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
		"$([[ $qto != 0 ]] && echo "  ($qto quad-100 timeouts)")"
done
metrics=$(node -e 'require("http").get({socketPath:process.argv[1],path:"/localapi/v0/metrics",headers:{Host:"local-tailscaled.sock"}},r=>{let s="";r.on("data",d=>s+=d).on("end",()=>console.log(s))})' "$LT_WORK/n1.sock")
echo "latticed MagicDNS counters: $(grep -oE 'magicdns_events_total\{event="(queries|forwarded|dropped|dropped_pending_full|forward_failed|tcp_accepted)"\} [0-9]+' <<<"$metrics" | sed -E 's/.*event="([a-z_]+)"\} /\1=/' | tr '\n' ' ')"
exit 0
