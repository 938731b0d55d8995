#!/usr/bin/env bash
# Installs everything weft needs to build and to run its tests on a fresh
# Debian/Ubuntu machine, as root. Safe to run again (it skips what is there).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

pkgs=(
  # build: BPF compiler (clang-14 objects are rejected by the verifier),
  # libbpf-sys' vendored libbpf needs libelf and zlib
  clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config make gcc
  # run: bpftool for checks and debugging
  bpftool
  # tests: real TLS servers and clients
  nginx curl openssl python3 nodejs iproute2
  # tests: clients of the other TLS libraries (GnuTLS, wolfSSL)
  wget gnutls-bin libwolfssl-dev git util-linux
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nginx's package starts a server on port 80 where systemd runs; tests start
# their own nginx on loopback ports and need none.

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found: install Rust 1.95 (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "deps: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
