# shellcheck shell=bash
# UAPI stress checks (the "split responses" part of WireGuard's netns.sh): big configurations
# applied with `wg setconf` / `wg set`, read back with `wg show` / `wg showconf` and compared
# fact by fact. One implementation, its daemon started in daemon mode (no -f) in ns0.
# Source lib.sh first. Entry point: run_uapi_stress IMPL TAG.

# One peer with 255*256 IPv4 /16s and as many IPv6 /128s (130,560 allowed IPs). The IPv6
# addresses are written in canonical form so that showconf's output can be compared as text.
big_allowed_ips_conf() {
	local a b
	echo "[Interface]"
	echo "PrivateKey = $(wg genkey)"
	echo "ListenPort = 31001"
	echo "[Peer]"
	echo "PublicKey = $(wg genkey | wg pubkey)"
	for ((a = 1; a <= 255; a++)); do
		for ((b = 0; b < 256; b++)); do
			printf 'AllowedIPs = %d.%d.0.0/16, fd%02x:%x::1/128\n' "$a" "$b" "$a" "$((b + 1))"
		done
	done
}

# N peers, each with an IPv4 /24, M IPv4 /32s and an IPv6 /64; every third has a preshared key, an
# endpoint on ns0's loopback and a persistent keepalive.
many_peers_conf() {
	local n=$1 m=$2 p j
	echo "[Interface]"
	echo "PrivateKey = $(wg genkey)"
	echo "ListenPort = 31002"
	for ((p = 1; p <= n; p++)); do
		echo "[Peer]"
		echo "PublicKey = $(wg genkey | wg pubkey)"
		if ((p % 3 == 0)); then
			echo "PresharedKey = $(wg genpsk)"
			echo "Endpoint = 127.0.0.1:$((40000 + p))"
			echo "PersistentKeepalive = 25"
		fi
		echo "AllowedIPs = 10.$((p / 256)).$((p % 256)).0/24"
		for ((j = 1; j <= m; j++)); do
			echo "AllowedIPs = 172.$((16 + j)).$((p / 256)).$((p % 256))/32"
		done
		printf 'AllowedIPs = fd%02x:%x::/64\n' "$((p / 256 + 1))" "$((p % 256 + 1))"
	done
}

# The setconf/showconf round trip: what was set is exactly what is shown.
conf_roundtrip() {
	local ifname=$1 conf=$2
	wg setconf "$ifname" "$conf"
	wg_conf_normalize <"$conf" >"$conf.want"
	wg showconf "$ifname" | wg_conf_normalize >"$conf.got"
	echo "$(wc -l <"$conf.want") facts set, $(wc -l <"$conf.got") shown"
	diff "$conf.want" "$conf.got" | head -20
	cmp -s "$conf.want" "$conf.got"
}

check_big_allowed_ips() {
	local ifname=$1 conf="$LT_WORK/big.conf" n
	big_allowed_ips_conf >"$conf"
	conf_roundtrip "$ifname" "$conf"
	n=$(wg show "$ifname" allowed-ips | wc -w)
	echo "wg show allowed-ips: $n words"
	((n == 255 * 256 * 2 + 1))
}

check_many_peers() {
	local ifname=$1 conf="$LT_WORK/peers.conf" n
	many_peers_conf 400 8 >"$conf"
	conf_roundtrip "$ifname" "$conf"
	n=$(wg show "$ifname" peers | wc -l)
	((n == 400))
	# Every peer line of `wg show allowed-ips` has the key and its 10 prefixes.
	wg show "$ifname" allowed-ips | awk 'NF != 11 { bad++ } END { exit bad > 0 }'
}

# 29 peers without allowed IPs, then one with: the response spans several reads.
check_peers_without_ips() {
	local ifname=$1 conf="$LT_WORK/few.conf" i
	{
		for ((i = 1; i <= 29; i++)); do
			echo "[Peer]"
			echo "PublicKey = $(wg genkey | wg pubkey)"
		done
		echo "[Peer]"
		echo "PublicKey = $(wg genkey | wg pubkey)"
		echo "AllowedIPs = 255.2.3.4/32, abcd::255/128"
	} >"$conf"
	wg setconf "$ifname" "$conf"
	wg_conf_normalize <"$conf" >"$conf.want"
	wg showconf "$ifname" | wg_conf_normalize | grep '^peer' >"$conf.got"
	diff "$conf.want" "$conf.got"
}

# Incremental `wg set`: 200 peers added in one command line, allowed IPs moved between peers
# (an allowed IP belongs to one peer only), then half of the peers removed.
check_wg_set_incremental() {
	local ifname=$1 args=() p pub keys=()
	wg setconf "$ifname" /dev/null
	for ((p = 1; p <= 200; p++)); do
		pub=$(wg genkey | wg pubkey)
		keys+=("$pub")
		args+=(peer "$pub" allowed-ips "10.99.$p.0/24,fd99::$(printf %x "$p")/128")
	done
	wg set "$ifname" listen-port 31003 "${args[@]}"
	(($(wg show "$ifname" peers | wc -l) == 200))
	# keys[i] holds 10.99.(i+1).0/24. allowed-ips replaces a peer's list, and a prefix given to
	# keys[0] is taken away from keys[1].
	wg set "$ifname" peer "${keys[0]}" allowed-ips "10.99.1.0/24,10.99.2.0/24"
	local owner line
	owner=$(wg show "$ifname" allowed-ips | awk '/10\.99\.2\.0\/24/ { print $1 }')
	[[ $owner == "${keys[0]}" ]] || { echo "10.99.2.0/24 owned by $owner, want ${keys[0]}"; return 1; }
	line=$(wg show "$ifname" allowed-ips | grep -F "${keys[0]}")
	[[ $line == "${keys[0]}	10.99.1.0/24 10.99.2.0/24" ]] || { echo "keys[0] after the move: $line"; return 1; }
	line=$(wg show "$ifname" allowed-ips | grep -F "${keys[1]}")
	[[ $line == "${keys[1]}	fd99::2/128" ]] || { echo "keys[1] after the move: $line"; return 1; }
	local rm=()
	for ((p = 100; p < 200; p++)); do rm+=(peer "${keys[$p]}" remove); done
	wg set "$ifname" "${rm[@]}"
	(($(wg show "$ifname" peers | wc -l) == 100))
	[[ $(wg show "$ifname" listen-port) == 31003 ]]
	! wg show "$ifname" peers | grep -qxF "${keys[150]}"
}

check_show_missing() {
	! wg show "nonexistent-$LT_ID" 2>&1
}

# run_uapi_stress IMPL TAG
run_uapi_stress() {
	local impl=$1 ns="wgt-$LT_ID-${2}0" ifname="w${2}0-$LT_ID" who="[uapi ${1##*/}]"
	require "$who create namespace" ns_add "$ns"
	require "$who daemon mode: '$impl $ifname' returns, interface and socket stay" wg_create_daemon "$ns" "$impl" "$ifname"
	check "$who setconf/showconf 130,560 allowed IPs on one peer" check_big_allowed_ips "$ifname"
	check "$who setconf/showconf 400 peers with psk, endpoint, keepalive" check_many_peers "$ifname"
	check "$who setconf 30 peers, showconf" check_peers_without_ips "$ifname"
	check "$who wg set: add 200 peers, move and remove" check_wg_set_incremental "$ifname"
	check "$who wg show of a missing interface fails" check_show_missing
	check "$who delete $ifname: daemon exits, socket removed" wg_delete_daemon "$ns" "$ifname"
	ns_del "$ns"
}

# Daemon mode: the process is found through its namespace (it is the only one there).
wg_delete_daemon() {
	local ns=$1 ifname=$2
	ip -n "$ns" link del dev "$ifname"
	until_true 10 eval '[[ -z $(ip netns pids "$ns") ]]' || { echo "processes left in $ns: $(ip netns pids "$ns")" >&2; return 1; }
	until_true 10 eval '[[ ! -e $LT_UAPI_DIR/$ifname.sock ]]'
}
