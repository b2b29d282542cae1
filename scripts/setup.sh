#!/usr/bin/env bash
# Installs and builds what Lattice needs, idempotently: pnpm, dependencies, native
# addons, then `tsc -b`. With --test-deps (run by `npm test`) it also installs, when
# running as root on Debian, the system packages the real-peer tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_APT_PACKAGES=(wireguard-go wireguard-tools iperf3 iputils-ping ncat iproute2 iptables
  openssh-client openssh-server postgresql procps psmisc python3-paramiko util-linux rsync
  ruby-sshkit ruby-net-ssh ruby-net-scp ansible-core bind9-dnsutils dnsmasq-base)

if [[ "${1:-}" == "--test-deps" && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${TEST_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if ! command -v pnpm >/dev/null; then
  echo "setup: installing pnpm" >&2
  npm install -g pnpm@10 >/dev/null
fi

# Native addons (node-gyp; Node's headers come from the system Node) — also for the
# dependencies pnpm builds at install time (node-pty, ssh2's crypto binding).
if [[ -d /usr/include/node ]]; then export npm_config_nodedir=/usr; fi
pnpm install --frozen-lockfile --reporter=silent
pnpm -r --reporter=silent run --if-present build:native
pnpm exec tsc -b
