# shellcheck shell=bash
# Shared helpers for the real-peer WireGuard scripts (netns.sh, interop.sh, the benchmark).
#
# Source this file from bash, then call lt_init once. Everything it creates is named with the
# calling shell's pid ($$) and removed by the EXIT trap: the network namespaces, the processes
# started in them, the UAPI sockets in /var/run/wireguard and the scratch directory.
#
# A WireGuard implementation is given as a command line prefix (WG_IMPL_*), e.g. `wireguard-go`
# or `node /repo/daemon/bin/lattice-wg.js`; it is run as `<prefix> -f IFNAME` (foreground, the
# script keeps the pid) or `<prefix> IFNAME` (daemon mode), exactly like `wireguard-go`.
#
# Userspace WireGuard and namespaces: the process owns both the TUN file descriptor and the UDP
# socket, and the UDP socket lives in the namespace the process was started in. To put the UDP
# endpoints of two interfaces on one loopback (ns0) while the interfaces themselves sit in ns1
# and ns2, the daemon is started in ns0 (`ip netns exec ns0 IMPL -f wgX`) and the TUN it
# created is then moved with `ip -n ns0 link set wgX netns ns1`. The TUN fd keeps working across
# the move; the implementation must therefore (a) not take the move (RTM_DELLINK in ns0) for a
# deletion, and (b) learn that the link went up without netlink events from ns1 (wireguard-go
# polls the fd: a zero-length write fails with EIO while the link is down). Deleting the link
# in ns1 makes the TUN fd fail (EBADFD), which is how the process learns it must exit. The UAPI
# socket is a file, not a namespaced object, so `wg` finds it from any namespace.

LT_UAPI_DIR=/var/run/wireguard

# Output: check results on stdout ("ok - name" / "not ok - name"), "# " diagnostics; fd 3 is the
# real stdout so that checks (whose output is captured) can still print figures.
lt_init() {
	exec 3>&1
	umask 077
	export WG_HIDE_KEYS=never
	export LOG_LEVEL="${LOG_LEVEL:-verbose}"
	LT_ID=$$
	LT_WORK="$(mktemp -d "/tmp/lattice-netns-$LT_ID.XXXXXX")"
	: >"$LT_WORK/namespaces"
	: >"$LT_WORK/ifaces"
	LT_CHECKS=0
	LT_FAILED=0
	LT_START=$SECONDS
	trap lt_cleanup EXIT
	trap 'exit 130' INT TERM
}

info() { echo "# $*" >&3; }

# Kills what we started, deletes our namespaces and sockets.
lt_cleanup() {
	local rc=$?
	set +e
	[[ -n ${LT_WORK:-} && -d $LT_WORK ]] || exit "$rc"
	local pid ns ifname
	# Every process started here runs in one of our namespaces (ip netns exec), so killing what
	# `ip netns pids` lists ends exactly our processes, daemonized ones included.
	while read -r ns; do
		[[ -n $ns ]] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done <"$LT_WORK/namespaces"
	sleep 0.3
	while read -r ns; do
		[[ -n $ns ]] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done <"$LT_WORK/namespaces"
	while read -r ifname; do
		[[ -n $ifname ]] && rm -f "$LT_UAPI_DIR/$ifname.sock"
	done <"$LT_WORK/ifaces"
	if [[ -n ${WG_KEEP_LOGS:-} ]]; then
		echo "# logs kept in $LT_WORK" >&2
	else
		rm -rf "$LT_WORK"
	fi
	exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Checks

# check NAME CMD...: runs CMD in a subshell with errexit; prints ok/not ok; on failure shows the
# command's output and the tail of every daemon log.
check() {
	local name=$1
	shift
	local out="$LT_WORK/check.out"
	(
		set -eo pipefail
		"$@"
	) >"$out" 2>&1 </dev/null
	local rc=$?
	LT_CHECKS=$((LT_CHECKS + 1))
	if ((rc == 0)); then
		echo "ok - $name"
		[[ -n ${WG_VERBOSE:-} ]] && sed 's/^/#   /' "$out"
	else
		LT_FAILED=$((LT_FAILED + 1))
		echo "not ok - $name"
		tail -n 60 "$out" | sed 's/^/#   /'
		lt_dump_logs
	fi
	return "$rc"
}

# require NAME CMD...: a check whose failure makes the rest meaningless.
require() {
	check "$@" || {
		echo "Bail out! $1 failed"
		lt_finish
	}
}

lt_dump_logs() {
	local log
	for log in "$LT_WORK"/*.log; do
		[[ -s $log ]] || continue
		echo "#   --- tail of ${log##*/}"
		tail -n "${WG_LOG_LINES:-8}" "$log" | sed 's/^/#   | /'
	done
}

# Prints the plan and exits 0 only if every check passed.
lt_finish() {
	echo "1..$LT_CHECKS"
	info "$((LT_CHECKS - LT_FAILED))/$LT_CHECKS checks passed in $((SECONDS - LT_START)) s"
	((LT_FAILED == 0 && LT_CHECKS > 0)) && exit 0
	exit 1
}

# ---------------------------------------------------------------------------------------------
# Namespaces, processes, interfaces

ns_add() {
	ip netns add "$1" || return 1
	echo "$1" >>"$LT_WORK/namespaces"
	ip -n "$1" link set lo up
}

ns_del() {
	local pid
	for pid in $(ip netns pids "$1" 2>/dev/null); do kill "$pid" 2>/dev/null; done
	ip netns del "$1" 2>/dev/null
	return 0
}

# until_true TIMEOUT_S CMD...: polls CMD every 0.1 s. (With `eval '...'`, the string sees the
# caller's local variables but not its positional parameters.)
until_true() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# bg NAME CMD...: starts CMD (an `ip netns exec`) in the background, stdout/stderr to NAME.log;
# its pid in LT_LAST_PID.
bg() {
	local name=$1
	shift
	"$@" >>"$LT_WORK/$name.log" 2>&1 </dev/null 3>&- &
	LT_LAST_PID=$!
}

uapi_ready() { [[ -S $LT_UAPI_DIR/$1.sock ]] && wg show "$1" >/dev/null 2>&1; }

# wg_create NS IMPL IFNAME: runs `IMPL -f IFNAME` inside NS and waits until the TUN exists and
# the UAPI socket answers; the pid goes to $LT_WORK/IFNAME.pid (wg_delete waits for its exit).
wg_create() {
	local ns=$1 impl=$2 ifname=$3 argv
	read -ra argv <<<"$impl"
	echo "$ifname" >>"$LT_WORK/ifaces"
	echo "== $(date +%T) ${argv[*]} -f $ifname (netns $ns)" >>"$LT_WORK/$ifname.log"
	bg "$ifname" ip netns exec "$ns" "${argv[@]}" -f "$ifname"
	local pid=$LT_LAST_PID deadline=$((SECONDS + ${WG_START_TIMEOUT:-30}))
	until ip -n "$ns" link show dev "$ifname" >/dev/null 2>&1 && uapi_ready "$ifname"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$impl exited before $ifname came up" >&2
			return 1
		fi
		((SECONDS < deadline)) || { echo "$ifname not up after ${WG_START_TIMEOUT:-30} s" >&2; return 1; }
		sleep 0.1
	done
	echo "$pid" >"$LT_WORK/$ifname.pid"
}

# wg_create_daemon NS IMPL IFNAME: daemon mode (no -f): the command must return by itself
# (status 0) and leave the interface and UAPI socket behind.
wg_create_daemon() {
	local ns=$1 impl=$2 ifname=$3 argv
	read -ra argv <<<"$impl"
	echo "$ifname" >>"$LT_WORK/ifaces"
	echo "== $(date +%T) ${argv[*]} $ifname (netns $ns, daemon mode)" >>"$LT_WORK/$ifname.log"
	timeout 30 ip netns exec "$ns" "${argv[@]}" "$ifname" >>"$LT_WORK/$ifname.log" 2>&1 </dev/null 3>&- || {
		echo "'$impl $ifname' failed with status $?" >&2
		return 1
	}
	until_true "${WG_START_TIMEOUT:-30}" eval 'ip -n "$ns" link show dev "$ifname" && uapi_ready "$ifname"' || {
		echo "$ifname not up after daemon start" >&2
		return 1
	}
}

# wg_move NS_FROM IFNAME NS_TO
wg_move() {
	ip -n "$1" link set dev "$2" netns "$3" && until_true 5 ip -n "$3" link show dev "$2"
}

# wg_delete NS IFNAME: deletes the link, then requires the implementation to exit and its UAPI
# socket to disappear (the drop-in contract: the process lives as long as the interface).
wg_delete() {
	local ns=$1 ifname=$2 pid=""
	[[ -f $LT_WORK/$ifname.pid ]] && pid=$(<"$LT_WORK/$ifname.pid")
	ip -n "$ns" link del dev "$ifname" || return 1
	if [[ -n $pid ]]; then
		until_true 10 eval '! kill -0 '"$pid" || { echo "process $pid still running 10 s after $ifname was deleted" >&2; return 1; }
	fi
	until_true 10 eval '[[ ! -e $LT_UAPI_DIR/$ifname.sock ]]' || { echo "$LT_UAPI_DIR/$ifname.sock still exists" >&2; return 1; }
}

# ---------------------------------------------------------------------------------------------
# Traffic

# ping_all NS ADDR PING-ARGS...: every echo request must be answered.
#
# A reply counts when it reaches NS's IP stack (the kernel's echo-reply counter, taken after
# the ICMP checksum check) within about LT_PING_LATE_S s (default 1, the -W of the checks) of
# ping's exit, even if ping had stopped waiting for it. iputils ping (e.g. 20221126), once it
# has seen a reply, waits only max(2 x the largest RTT so far, the interval) after its last
# probe, not -W (-W is the wait only when nothing came back). With `-f` (interval 0) that is
# a fraction of a millisecond on loopback, so a reply that a scheduling hiccup on a loaded
# machine delays by a millisecond is reported as lost although it arrives (wireguard-go fails
# `ping -c 10 -f -W 1` that way too). A reply that never arrives still fails the check; late
# ones are reported on fd 3 ("# late reply ..."). The counter is per namespace: every ping in
# a script must go through ping_all (which waits for its own stragglers) so that a late reply
# of one ping is not counted for the next (ping-check.sh tests this function).
ping_all() {
	local ns=$1 addr=$2 out rc=0 fam=4 c0 c1 dups=0
	shift 2
	[[ $addr == *:* ]] && fam=6
	c0=$(icmp_echo_replies "$ns" "$fam")
	out=$(ip netns exec "$ns" ping "$@" "$addr" 2>&1) || rc=$?
	echo "$out"
	[[ $out =~ ([0-9]+)\ packets\ transmitted,\ ([0-9]+)\ received ]] || return 1
	local sent=${BASH_REMATCH[1]} got=${BASH_REMATCH[2]}
	[[ $out =~ \+([0-9]+)\ duplicates ]] && dups=${BASH_REMATCH[1]}
	((sent != 0)) || return 1
	((rc == 0 || got < sent)) || { echo "ping failed (status $rc)"; return 1; }
	((got == sent)) && return 0
	# Only when ping saw replies and then gave up early by its own rule (see above).
	((got > 0)) || { echo "lost replies: $sent packets transmitted, $got received"; return 1; }
	local want=$((sent + dups)) deadline=$((SECONDS + ${LT_PING_LATE_S:-1} + 1))
	while :; do
		c1=$(icmp_echo_replies "$ns" "$fam")
		(((c1 - c0) >= want || SECONDS >= deadline)) && break
		sleep 0.05
	done
	if (((c1 - c0) < want)); then
		echo "lost replies: $sent packets transmitted, $got received by ping (+$dups duplicates), $((c1 - c0)) reached $ns"
		return 1
	fi
	echo "late replies: $((sent - got)) of $sent reached $ns after ping stopped waiting (not lost)"
	info "late reply: ping $addr from $ns: $((sent - got)) of $sent replies came after ping stopped waiting (2 x max RTT)"
}

# icmp_echo_replies NS 4|6: the echo replies NS's IP stack has received (after checksum checks).
icmp_echo_replies() {
	if [[ $2 == 6 ]]; then
		ip netns exec "$1" awk '$1 == "Icmp6InEchoReplies" { print $2 }' /proc/net/snmp6
	else
		ip netns exec "$1" awk '$1 == "Icmp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "InEchoReps") c = i; h = 1 } else print $c }' /proc/net/snmp
	fi
}

# iperf NAME SERVER_NS SERVER_ADDR CLIENT_NS [CLIENT-ARGS...]: one-off iperf3 server bound to
# SERVER_ADDR; prints the receiver's throughput on fd 3 and fails when nothing was received.
# Duration: WG_IPERF_TIME seconds (default 2).
iperf() {
	local name=$1 sns=$2 saddr=$3 cns=$4 port=${LT_IPERF_PORT:-5201}
	shift 4
	ip netns exec "$sns" iperf3 -s -1 -B "$saddr" -p "$port" >"$LT_WORK/iperf-server.out" 2>&1 </dev/null 3>&- &
	local spid=$!
	until_true 5 eval '[[ $(ss -H -N "$sns" -tlnp "sport = :$port") == *iperf3* ]]' || {
		echo "iperf3 server in $sns not listening on $saddr:$port"
		cat "$LT_WORK/iperf-server.out"
		kill "$spid"
		return 1
	}
	local out rc=0
	out=$(timeout $((${WG_IPERF_TIME:-2} + 20)) ip netns exec "$cns" iperf3 -c "$saddr" -p "$port" -t "${WG_IPERF_TIME:-2}" -f m "$@" 2>&1) || rc=$?
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	echo "$out"
	((rc == 0)) || { echo "iperf3 client failed (status $rc)"; cat "$LT_WORK/iperf-server.out"; return 1; }
	local mbit
	mbit=$(iperf_receiver_mbits <<<"$out")
	[[ -n $mbit ]] || { echo "no receiver summary"; return 1; }
	info "$name: $mbit Mbit/s${LT_IPERF_EXTRA:+ ($LT_IPERF_EXTRA)}$(iperf_udp_loss <<<"$out")"
	awk -v m="$mbit" 'BEGIN { exit !(m > 0) }'
}

# The receiver-side bitrate (Mbit/s) from iperf3's text summary.
iperf_receiver_mbits() {
	awk '/receiver$/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { if (v != "") print v }'
}

iperf_udp_loss() {
	awk '/receiver$/ { for (i = 1; i <= NF; i++) if ($i ~ /^\([0-9.e+-]+%\)$/) v = $i } END { if (v != "") print ", loss " v }'
}

# udp_listen NS PORT FILE: ncat UDP listener writing what it receives to FILE.
udp_listen() {
	local ns=$1 port=$2
	: >"$3"
	ip netns exec "$ns" ncat -l -u -p "$port" >"$3" 2>/dev/null </dev/null 3>&- &
	LT_LAST_PID=$!
	until_true 5 eval '[[ $(ss -H -N "$ns" -ulnp "sport = :$port") == *ncat* ]]' || {
		echo "ncat not listening on udp port $port in $ns"
		return 1
	}
}

udp_send() { echo "$4" | timeout 5 ip netns exec "$1" ncat -u --send-only "$2" "$3"; }

# ---------------------------------------------------------------------------------------------
# Keys and configuration

# gen_keys PREFIX: PREFIX.key, PREFIX.pub in the scratch directory.
gen_keys() {
	wg genkey >"$LT_WORK/$1.key" && wg pubkey <"$LT_WORK/$1.key" >"$LT_WORK/$1.pub"
}
pubkey_of() { cat "$LT_WORK/$1.pub"; }
keyfile() { echo "$LT_WORK/$1.key"; }

# wg_conf_normalize: reads a wg(8) config (as given to setconf, or from showconf) and prints one
# sorted line per fact ("peer PUB allowedips 10.0.0.0/8"), so two configs can be diffed.
wg_conf_normalize() {
	awk '
		function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
		/^[ \t]*(#|$)/ { next }
		/^\[Interface\]/ { sec = "interface"; next }
		/^\[Peer\]/ { sec = "peer"; pub = ""; next }
		{
			eq = index($0, "="); key = tolower(trim(substr($0, 1, eq - 1))); val = trim(substr($0, eq + 1))
			if (sec == "interface") { print "interface " key " " val; next }
			if (key == "publickey") { pub = val; print "peer " pub " exists"; next }
			if (key == "allowedips") {
				n = split(val, a, ",")
				for (i = 1; i <= n; i++) { ip = trim(a[i]); if (ip != "") print "peer " pub " allowedips " ip }
				next
			}
			print "peer " pub " " key " " val
		}' | LC_ALL=C sort
}
