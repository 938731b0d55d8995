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
  nginx curl openssl python3 nodejs iproute2 nghttp2-client
  # fixtures: crates/weft-proto/tests/fixtures/make_bodies.sh precompresses
  # bodies (the recorded fixtures are checked in; these regenerate them)
  brotli zstd
  # tests: nm finds libssl symbols for the breakpoint checks (targets.rs)
  binutils
  # tests: clients of the other TLS libraries (GnuTLS, wolfSSL); git over
  # https goes through libcurl-gnutls
  wget gnutls-bin libwolfssl-dev git util-linux
  # tests: NSS/NSPR (Firefox bundles NSS on the system libnspr4); certutil
  # trusts the test CA in a fresh profile
  firefox-esr libnss3-tools
  # tests: BoringSSL statically linked and stripped (located by
  # crates/weft-core/src/discovery/boringssl.rs, offsets in data/boringssl.json)
  chromium
  # tests: --keylog is checked by decrypting a tcpdump capture with tshark
  tcpdump tshark
  # tests: BoringSSL as a shared library with its SSL_* exported
  # (/usr/lib/x86_64-linux-gnu/android/libssl.so.0) and its bssl client
  # (bssl-tool); -dev for building a client against it
  android-libboringssl android-libboringssl-dev android-boringssl
)

# tshark's package asks whether non-root users may capture: no (tests run as
# root), and never ask interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" |
  debconf-set-selections 2>/dev/null || true

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

# Go 1.23 (Go crypto/tls tests) comes from bookworm-backports; nats-server is
# the stripped Go binary the pclntab discovery test reads. On Debian bookworm
# add the suite to the first stanza of debian.sources (once), then install.
go_pkgs=(golang-1.23-go nats-server)
go_missing=()
for p in "${go_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || go_missing+=("$p")
done
if ((${#go_missing[@]})); then
  sources=/etc/apt/sources.list.d/debian.sources
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [[ $codename == bookworm && -f $sources ]]; then
    # Only the first Suites: line (the main archive stanza), only if absent.
    if ! awk '/^Suites:/ { print; exit }' "$sources" | grep -qw 'bookworm-backports'; then
      echo "deps: adding bookworm-backports to $sources" >&2
      sed -i '0,/^Suites:/ s/^\(Suites:.*\)$/\1 bookworm-backports/' "$sources"
    fi
  fi
  echo "deps: installing ${go_missing[*]}" >&2
  apt-get update -qq -o DPkg::Lock::Timeout=600
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${go_missing[@]}" >/dev/null
fi
if [[ ! -x /usr/lib/go-1.23/bin/go ]]; then
  echo "deps: /usr/lib/go-1.23/bin/go missing after installing golang-1.23-go" >&2
  exit 1
fi
