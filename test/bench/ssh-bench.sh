#!/usr/bin/env bash
# SSH benchmark (issue 9; figures, not a test): Lattice SSH (latticed --ssh on the tailnet's
# :22) vs OpenSSH's sshd on the SAME tailnet path (ns2's tailnet address, port 2222, a
# /usr/sbin/sshd started here with its own config and host key). Topology as mesh-throughput.sh:
# two namespaces over a veth pair, lattice-control in ns1, one latticed in each; ns2 is
# tag:server with --ssh. From ns1, as root, with the stock OpenSSH client:
#   1. scp (SFTP mode) of a 512 MiB file ns1 -> ns2: MB/s
#   2. time to `ssh host true`: median of 10 sequential runs (new connection each)
#   3. 100 parallel `ssh host true`: p50 / p99 of their wall times
# Usage (root, after `pnpm exec tsc -b`): test/bench/ssh-bench.sh  (or: pnpm bench:ssh)
#   SSH_BENCH_MIB  file size in MiB (default 512)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"
# shellcheck source=throughput-lib.sh
. "$here/throughput-lib.sh"

[[ $(id -u) == 0 ]] || { echo "ssh-bench.sh must run as root (network namespaces, TUN)" >&2; exit 1; }
for tool in ip ssh scp ssh-keygen /usr/sbin/sshd; do
	command -v "$tool" >/dev/null || { echo "required tool '$tool' not found" >&2; exit 1; }
done
mib="${SSH_BENCH_MIB:-512}"
# shellcheck source=programs-lib.sh
. "$here/programs-lib.sh"

lt_init
NS1="wgt-$LT_ID-s1"
NS2="wgt-$LT_ID-s2"
now_ms() { date +%s%3N; }
row() { printf '%-52s %12s %12s %s\n' "$1" "$2" "$3" "${4:-}"; }
echo "SSH benchmark: 2 namespaces over a veth pair, latticed direct path, OpenSSH client from ns1"
echo "CPU: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r); $(ssh -V 2>&1)"
setup_veth || { echo "could not build the veth topology" >&2; exit 1; }

cdir="$LT_WORK/control"
mkdir -p "$cdir"
bg control ip netns exec "$NS1" "${control[@]}" serve --listen 10.77.0.1:8080 --server-url http://10.77.0.1:8080 \
	--db "$cdir/lattice.db" --socket "$cdir/control.sock"
until_true 30 grep -q "admin socket:" "$LT_WORK/control.log" || { echo "lattice-control did not start" >&2; exit 1; }
adm() { "${control[@]}" --socket "$cdir/control.sock" "$@"; }
adm users create bench >/dev/null
cat >"$LT_WORK/policy.json" <<P
{"tagOwners": {"tag:server": ["bench@"]},
 "acls": [{"action": "accept", "src": ["bench@"], "dst": ["tag:server:*"]}],
 "ssh": [{"action": "accept", "src": ["bench@"], "dst": ["tag:server"], "users": ["root"]}]}
P
adm policy set "$LT_WORK/policy.json" >/dev/null || { echo "policy set failed" >&2; exit 1; }
ukey=$(adm keys create --user bench --preapproved 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')
skey=$(adm keys create --user bench --preapproved --tags tag:server 2>>"$LT_WORK/admin.log" | grep -o 'lkey-[^ ]*')
node_start() { # N NS
	local n=$1 ns=$2
	mkdir -p "$LT_WORK/state$n"
	bg "latticed$n" ip netns exec "$ns" "${latticed[@]}" --state "$LT_WORK/state$n" --socket "$LT_WORK/n$n.sock"
	until_true 30 eval 'ip netns exec "$ns" "${lattice[@]}" --socket "$LT_WORK/n$n.sock" status --json | grep -q BackendState'
}
lat1() { ip netns exec "$NS1" "${lattice[@]}" --socket "$LT_WORK/n1.sock" "$@"; }
lat2() { ip netns exec "$NS2" "${lattice[@]}" --socket "$LT_WORK/n2.sock" "$@"; }
node_start 1 "$NS1" && node_start 2 "$NS2" || { echo "latticed did not start" >&2; lt_dump_logs >&2; exit 1; }
lat1 up --login-server http://10.77.0.1:8080 --auth-key "$ukey" --hostname client >/dev/null || { echo "lattice up (client) failed" >&2; exit 1; }
lat2 up --login-server http://10.77.0.1:8080 --auth-key "$skey" --hostname server --ssh >/dev/null || { echo "lattice up (server) failed" >&2; exit 1; }
ip2=$(lat2 ip -4)
until_true 30 eval 'ip netns exec "$NS1" ping -c 1 -W 1 "$ip2" >/dev/null' || { echo "no tailnet path to $ip2" >&2; exit 1; }

# OpenSSH's sshd on the server's tailnet address, port 2222, root by key.
ssh-keygen -q -t ed25519 -N "" -f "$LT_WORK/client_key"
ssh-keygen -q -t ed25519 -N "" -f "$LT_WORK/sshd_host_key"
cp "$LT_WORK/client_key.pub" "$LT_WORK/authorized_keys"
cat >"$LT_WORK/sshd_config" <<S
Port 2222
ListenAddress $ip2
HostKey $LT_WORK/sshd_host_key
PidFile $LT_WORK/sshd.pid
AuthorizedKeysFile $LT_WORK/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200:100:300
MaxSessions 200
Subsystem sftp /usr/lib/openssh/sftp-server
S
mkdir -p /run/sshd
bg sshd ip netns exec "$NS2" /usr/sbin/sshd -D -e -f "$LT_WORK/sshd_config"
until_true 20 eval '[[ $(ss -H -N "$NS2" -tln "sport = :2222") == *2222* ]]' || { echo "sshd did not start" >&2; exit 1; }
until_true 30 eval 'ip netns exec "$NS1" ssh-keyscan -T 3 -p 22 "$ip2" 2>/dev/null | grep -q ssh-ed25519' || { echo "Lattice SSH does not answer" >&2; exit 1; }

opts=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=30 -i "$LT_WORK/client_key")
S() { ip netns exec "$NS1" ssh "${opts[@]}" -p "$1" "root@$ip2" "${@:2}"; }

head -c "$((mib * 1024 * 1024))" /dev/urandom >"$LT_WORK/big"
want=$(sha256sum <"$LT_WORK/big" | cut -d' ' -f1)
scp_mbs() { # PORT: MB/s (MiB/s) of scp ns1 -> ns2, after checking the copy
	local t0 t1 dst="$LT_WORK/big.copy.$1"
	rm -f "$dst"
	t0=$(now_ms)
	ip netns exec "$NS1" scp -q "${opts[@]}" -P "$1" "$LT_WORK/big" "root@$ip2:$dst" || return 1
	t1=$(now_ms)
	[[ $(sha256sum <"$dst" | cut -d' ' -f1) == "$want" ]] || { echo "scp copy differs (port $1)" >&2; return 1; }
	rm -f "$dst"
	awk -v m="$mib" -v ms="$((t1 - t0))" 'BEGIN { printf "%.1f", m / (ms / 1000) }'
}
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; print a[i] }'; }
seq_true() { # PORT: the median ms of 10 sequential `ssh host true`
	local i t0
	for i in $(seq 10); do
		t0=$(now_ms)
		S "$1" true || { echo "ssh -p $1 true failed" >&2; return 1; }
		echo $(($(now_ms) - t0))
	done | pct 50
}
par_true() { # PORT: "p50 p99" ms of 100 parallel `ssh host true`
	local i out="$LT_WORK/par.$1"
	: >"$out"
	for i in $(seq 100); do
		(t0=$(now_ms); if S "$1" true; then echo $(($(now_ms) - t0)) >>"$out"; else echo fail >>"$out.fail"; fi) &
	done
	wait
	local fails=0
	[[ -f $out.fail ]] && fails=$(wc -l <"$out.fail")
	echo "$(pct 50 <"$out") $(pct 99 <"$out") $fails"
}

echo
row "" "Lattice SSH" "sshd :2222"
sl=$(scp_mbs 22); so=$(scp_mbs 2222)
row "scp $mib MiB ns1 -> ns2 (SFTP mode)" "${sl:-failed}" "${so:-failed}" "MiB/s"
tl=$(seq_true 22); to=$(seq_true 2222)
row "ssh host true, median of 10 sequential" "${tl:-failed}" "${to:-failed}" "ms"
read -r pl50 pl99 plf <<<"$(par_true 22)"
read -r po50 po99 pof <<<"$(par_true 2222)"
row "100 parallel ssh host true: p50" "$pl50" "$po50" "ms"
row "100 parallel ssh host true: p99" "$pl99" "$po99" "ms"
row "100 parallel ssh host true: failures" "$plf" "$pof"
[[ -n $sl && -n $so ]] && awk -v l="$sl" -v o="$so" 'BEGIN { printf "%-52s %12.2f (goal >= 1.0)\n", "ratio scp Lattice / sshd", l / o }'
[[ -n $tl && -n $to ]] && awk -v l="$tl" -v o="$to" 'BEGIN { printf "%-52s %12.2f (goal <= 1.0)\n", "ratio connect time Lattice / sshd", l / o }'
