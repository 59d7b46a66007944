#!/usr/bin/env bash
# Installs what building, the demo and the tests need on Debian 12. Idempotent; run as root.
# Package scripts are kept from starting services (an sshd on port 22) on this machine.
set -euo pipefail

need=(
  build-essential pkg-config libseccomp-dev libpam0g-dev
  pamtester openssh-server openssh-client sudo util-linux procps iproute2 python3 python3-venv openssl
  debootstrap dpkg-dev
  qemu-system-x86 qemu-utils e2fsprogs
)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
command -v cargo >/dev/null || { echo "setup: cargo is required (rustup)"; exit 1; }
