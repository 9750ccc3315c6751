#!/usr/bin/env bash
# Journal load figures (durable appends with 1/16/256 writers, the disk's own figures,
# verification of a 1,000,000-entry journal) and the Merkle proof figures. Bounded:
# about a minute. Scratch files go to a temporary directory under $TMPDIR (or /tmp).
#
#   bench/journal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo run --release -q -p bulwark-store --example journal_bench "$scratch"
cargo bench -q -p bulwark-ledger --bench merkle -- --warm-up-time 1 --measurement-time 3 2>&1 \
  | grep -E '^(merkle|proofs)|time:'
