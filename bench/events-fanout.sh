#!/usr/bin/env bash
# The signed event bus end to end on loopback: SUBSCRIBERS SSE streams on the node API
# (mTLS, one enrolled node's certificate, so the per-node stream cap is raised), EVENTS envelopes published over the API one
# every GAP_MS; every subscriber verifies every envelope itself. Reports publish → verified
# latency over all deliveries (p50/p99/max) and the server's RSS per idle subscriber.
# One load generator: crates/bulwark/examples/event_load.rs.
#
#   bench/events-fanout.sh        # SUBSCRIBERS=1000 EVENTS=100 GAP_MS=100
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSCRIBERS=${SUBSCRIBERS:-1000}
EVENTS=${EVENTS:-100}
GAP_MS=${GAP_MS:-100}
B_PORT=18643
NODE_PORT=18644
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v jq >/dev/null || { echo "missing jq" >&2; exit 2; }
cargo build --release -q -p bulwark
cargo build --release -q -p bulwark --example event_load
BULWARK=$PWD/target/release/bulwark
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$BULWARK" serve --data-dir "$work/data" --listen 127.0.0.1:$B_PORT --node-listen 127.0.0.1:$NODE_PORT \
  --rate-limit-rps 0 --max-connections 8192 --max-inflight 8192 --token-ttl-secs 900 \
  --max-event-streams-per-node 4096 \
  --log-level warn >"$work/bulwark.log" 2>&1 &
pids+=($!)
SERVER_PID=$!
for _ in $(seq 100); do [ -S "$work/data/admin.sock" ] && break; sleep 0.1; done
CA=$work/data/ca.pem
U=https://localhost:$B_PORT
"$BULWARK" admin bootstrap --data-dir "$work/data" --token-binding none --json >"$work/op.json"
OP=$(curl -sf --cacert "$CA" -u "$(jq -r .client_id "$work/op.json"):$(jq -r .client_secret "$work/op.json")" \
  -d grant_type=client_credentials -d "scope=admin" $U/oauth2/token | jq -r .access_token)
api() { curl -sf --cacert "$CA" -H "Authorization: Bearer $OP" "$@"; }
api -d '{"name":"bench"}' $U/v1/orgs >/dev/null
api -d '{"name":"n1"}' $U/v1/orgs/bench/nodes >/dev/null
JOIN=$(api -d '{}' $U/v1/orgs/bench/nodes/n1/join-tokens | jq -r .token)
"$BULWARK" agent enroll --server "$U" --ca "$CA" --token "$JOIN" --dir "$work/agent" >/dev/null
./target/release/examples/event_load "https://localhost:$NODE_PORT/v1/nodes/n1/events" "$U" "$CA" \
  "$work/agent/node.pem" "$work/agent/node.key" "$OP" "$SERVER_PID" "$SUBSCRIBERS" "$EVENTS" "$GAP_MS"
