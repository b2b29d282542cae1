#!/usr/bin/env bash
# Mesh benchmark (prints figures, asserts nothing). The topology of wg-throughput.sh — two
# namespaces over one veth pair, 10.77.0.1 (ns1) <-> 10.77.0.2 (ns2) — with lattice-control
# (embedded DERP + STUN) in ns1 and one latticed in each namespace. In one run, side by side:
#   1. iperf3 TCP ns1 -> ns2 over the raw veth, wireguard-go, lattice-wg (wg-throughput.sh's setup)
#   2. the same through latticed, direct path (status shows direct)
#   3. the same through latticed over DERP (UDP between the two addresses dropped by iptables
#      in both namespaces; status shows relay)
#   4. `lattice up` to first ping: ns2's node joins (`lattice up --auth-key`, ns1's node already
#      up) until its first echo reply from ns1's tailnet address (ping -c 1 -W 1 in a loop)
#   5. DERP -> direct upgrade: both nodes relayed (UDP dropped), a ping every 0.2 s; time from
#      the moment UDP is allowed again until `lattice status` on ns1 shows ns2 direct
# then the ratios latticed direct / lattice-wg (goal >= 0.9) and DERP / direct (goal >= 0.5).
# Note the MTUs printed: the WireGuard pairs use 1420, latticed its own TUN MTU.
#
# Usage (root, after `pnpm exec tsc -b`): test/bench/mesh-throughput.sh  (or: pnpm bench:mesh)
#   WG_BENCH_TIME     seconds per iperf3 run (default 10)
#   LATTICE_WG_CMD, WG_REFERENCE_CMD, WG_BENCH_ARGS as in wg-throughput.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"
# shellcheck source=throughput-lib.sh
. "$here/throughput-lib.sh"

[[ $(id -u) == 0 ]] || { echo "mesh-throughput.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip wg iperf3 ss iptables ping; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found" >&2; exit 1; }
done
secs="${WG_BENCH_TIME:-10}"
lattice_cmd="${LATTICE_WG_CMD:-node $repo/daemon/bin/lattice-wg.js}"
reference_cmd="${WG_REFERENCE_CMD:-wireguard-go}"
read -ra extra <<<"${WG_BENCH_ARGS:-}"
# shellcheck source=programs-lib.sh
. "$here/programs-lib.sh"

lt_init
NS1="wgt-$LT_ID-m1"
NS2="wgt-$LT_ID-m2"
now_ms() { date +%s%3N; }
row() { printf '%-58s %10s %s\n' "$1" "$2" "${3:-}"; }

echo "Mesh throughput: one iperf3 TCP flow for $secs s, 2 namespaces over a veth pair"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r)"
setup_veth || { echo "could not build the veth topology" >&2; exit 1; }

raw=$(measure 10.77.0.2)
row "raw veth (no WireGuard)" "${raw:-failed}" "Mbit/s"
ref=""
if addr=$(wg_pair r "$reference_cmd" 78 2>"$LT_WORK/setup-r.log"); then ref=$(measure_wg r "$addr"); fi
row "wireguard-go, MTU 1420" "${ref:-failed}" "Mbit/s"
wg_pair_down r
lat=""
if addr=$(wg_pair l "$lattice_cmd" 79 2>"$LT_WORK/setup-l.log"); then lat=$(measure_wg l "$addr"); fi
row "lattice-wg, MTU 1420" "${lat:-failed}" "Mbit/s"
wg_pair_down l

for f in "${control[1]}" "${latticed[1]}" "${lattice[1]}"; do
	[[ -f $f ]] || { echo "$f missing: latticed/lattice not in this checkout or not built" >&2; exit 1; }
done

# --- the tailnet
cdir="$LT_WORK/control"
mkdir -p "$cdir"
bg control ip netns exec "$NS1" "${control[@]}" serve --listen 10.77.0.1:8080 --server-url http://10.77.0.1:8080 \
	--db "$cdir/lattice.db" --socket "$cdir/control.sock"
until_true 30 grep -q "admin socket:" "$LT_WORK/control.log" || { echo "lattice-control did not start:" >&2; tail "$LT_WORK/control.log" >&2; exit 1; }
"${control[@]}" --socket "$cdir/control.sock" users create bench >/dev/null
key=$("${control[@]}" --socket "$cdir/control.sock" keys create --user bench --reusable --preapproved 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')

node_start() { # N NS
	local n=$1 ns=$2
	mkdir -p "$LT_WORK/state$n"
	bg "latticed$n" ip netns exec "$ns" "${latticed[@]}" --state "$LT_WORK/state$n" --socket "$LT_WORK/n$n.sock"
	# (eval sees the locals, not the positional parameters)
	until_true 30 eval 'ip netns exec "$ns" "${lattice[@]}" --socket "$LT_WORK/n$n.sock" status --json | grep -q BackendState'
}
lat1() { ip netns exec "$NS1" "${lattice[@]}" --socket "$LT_WORK/n1.sock" "$@"; }
lat2() { ip netns exec "$NS2" "${lattice[@]}" --socket "$LT_WORK/n2.sock" "$@"; }
# status_of N PEER: the `lattice status` line of PEER on node N.
status_of() { "lat$1" status 2>/dev/null | awk -v p="$2" '{ for (i = 1; i <= NF; i++) if ($i == p) print }'; }
block_udp() { # -A | -D
	ip netns exec "$NS1" iptables "$1" OUTPUT -p udp -d 10.77.0.2 -j DROP
	ip netns exec "$NS1" iptables "$1" INPUT -p udp -s 10.77.0.2 -j DROP
	ip netns exec "$NS2" iptables "$1" OUTPUT -p udp -d 10.77.0.1 -j DROP
	ip netns exec "$NS2" iptables "$1" INPUT -p udp -s 10.77.0.1 -j DROP
}

node_start 1 "$NS1" && node_start 2 "$NS2" || { echo "latticed did not start" >&2; lt_dump_logs >&2; exit 1; }
lat1 up --login-server http://10.77.0.1:8080 --auth-key "$key" --hostname n1 >/dev/null || { echo "lattice up (n1) failed" >&2; exit 1; }
ip1=$(lat1 ip -4)

# 4. `lattice up` to first ping (n2 joins; n1 is up)
t0=$(now_ms)
lat2 up --login-server http://10.77.0.1:8080 --auth-key "$key" --hostname n2 >/dev/null || { echo "lattice up (n2) failed" >&2; exit 1; }
up_ms=$(( $(now_ms) - t0 ))
first_ping=""
until_true 60 ip netns exec "$NS2" ping -c 1 -W 1 "$ip1" && first_ping=$(( $(now_ms) - t0 ))
ip2=$(lat2 ip -4)
mtu=$(ip -n "$NS1" -o link show | awk '/tun/ || /lattice0/ { for (i = 1; i <= NF; i++) if ($i == "mtu") print $(i + 1) }' | head -n 1)

# 2. direct
direct=""
if until_true 60 eval '[[ $(status_of 1 n2) == *direct* ]]'; then direct=$(measure "$ip2"); fi
row "latticed direct ($(status_of 1 n2 | grep -o 'direct [^ ,;]*')), MTU ${mtu:-?}" "${direct:-failed}" "Mbit/s"

# 3. DERP
block_udp -A
derp=""
# Keep traffic flowing so the direct path is noticed dead.
until_true 90 eval 'ip netns exec "$NS1" ping -c 1 -W 1 -q "$ip2" >/dev/null; [[ $(status_of 1 n2) == *relay* && $(status_of 1 n2) != *direct* ]]' &&
	derp=$(measure "$ip2")
row "latticed over DERP ($(status_of 1 n2 | grep -o 'relay "[^"]*"'))" "${derp:-failed}" "Mbit/s"

# 5. DERP -> direct upgrade
upgrade=""
if [[ $(status_of 1 n2) == *relay* ]]; then
	ip netns exec "$NS1" ping -i 0.2 -W 1 "$ip2" >/dev/null 2>&1 &
	pinger=$!
	block_udp -D
	t0=$(now_ms)
	until_true 120 eval '[[ $(status_of 1 n2) == *direct* ]]' && upgrade=$(( $(now_ms) - t0 ))
	kill "$pinger" 2>/dev/null
	wait "$pinger" 2>/dev/null
else
	block_udp -D
fi

row "lattice up -> first ping reply (up returned after $up_ms ms)" "${first_ping:-failed}" "ms"
row "DERP -> direct after UDP is allowed again" "${upgrade:-failed}" "ms"
if [[ -n $direct && -n $lat ]]; then
	awk -v d="$direct" -v l="$lat" 'BEGIN { printf "%-58s %10.2f (goal >= 0.9)\n", "ratio latticed direct / lattice-wg", d / l }'
fi
if [[ -n $direct && -n $derp ]]; then
	awk -v d="$direct" -v r="$derp" 'BEGIN { printf "%-58s %10.2f (goal >= 0.5)\n", "ratio latticed DERP / direct", r / d }'
fi
[[ -n $direct ]]
