#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, then the privileged
# end-to-end tests (real BPF against real TLS programs; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Builds the weft binary the privileged tests drive.
cargo build --locked -p weft
cargo nextest run --workspace --locked --no-fail-fast --profile ci
