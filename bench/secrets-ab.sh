#!/usr/bin/env bash
# A/B of two Bulwark binaries on authenticated, audited secret operations over HTTPS on
# loopback, in the same run (e.g. the commit before a restructure against HEAD):
#   bearer-read  plain bearer access token
#   dpop-read    DPoP-bound token, a fresh proof per request (signed by the client)
#   bearer-write plain bearer token, a new version of one of KEYS secrets
# Each server is started, bootstrapped and seeded in turn exactly as in
# bench/secrets-vs-openbao.sh (same flags, same principals, KEYS secrets); both stay up and
# the loads alternate OLD/NEW (NEW/OLD on even rounds, so neither always goes first).
# One load generator drives both (crates/bulwark/examples/secret_load.rs): CONNS keep-alive
# connections, closed loop, DURATION seconds per measurement, ROUNDS rounds.
# Prints one line per round, binary and operation, then medians and the NEW/OLD ratio.
#
#   bench/secrets-ab.sh                                   # both = target/release/bulwark
#   OLD=/tmp/bulwark-old NEW=/tmp/bulwark-new bench/secrets-ab.sh   # ROUNDS=3 DURATION=10 CONNS=64
#   LOAD=/path/to/secret_load  # use a prebuilt load generator instead of building it
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
KEYS=${KEYS:-1000}
OLD=${OLD:-$PWD/target/release/bulwark}
NEW=${NEW:-$PWD/target/release/bulwark}

command -v jq >/dev/null || { echo "missing jq: apt-get install -y jq" >&2; exit 2; }
if [ -z "${LOAD:-}" ]; then
  cargo build --release -q -p bulwark --example secret_load
  LOAD=$PWD/target/release/examples/secret_load
fi
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }; done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# setup NAME BINARY PORT: start, bootstrap and seed one server; writes $work/NAME.env.
setup() {
  local name=$1 bin=$2 port=$3 d=$work/$1
  mkdir -p "$d"
  # Limits raised so the load generator measures the server, not the limiter.
  "$bin" serve --data-dir "$d/data" --listen 127.0.0.1:"$port" --node-listen 127.0.0.1:0 \
    --rate-limit-rps 0 --org-secret-reads-rps 0 --max-inflight 4096 --token-ttl-secs 900 \
    --log-level warn >"$d/bulwark.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$d/data/admin.sock" ] && break; sleep 0.1; done
  [ -S "$d/data/admin.sock" ] || { echo "$name did not start:" >&2; cat "$d/bulwark.log" >&2; exit 1; }
  local CA=$d/data/ca.pem U=https://localhost:$port
  "$bin" admin bootstrap --data-dir "$d/data" --token-binding none --json >"$d/op.json"
  tok() { curl -sf --cacert "$CA" -u "$1:$2" -d grant_type=client_credentials -d "scope=$3" "$U/oauth2/token" | jq -r .access_token; }
  local OP; OP=$(tok "$(jq -r .client_id "$d/op.json")" "$(jq -r .client_secret "$d/op.json")" "admin read")
  api() { curl -sf --cacert "$CA" -H "Authorization: Bearer $OP" "$@"; }
  api -d '{"name":"bench"}' "$U/v1/orgs" >/dev/null
  api -d '{"name":"web"}' "$U/v1/orgs/bench/apps" >/dev/null
  api -d '{"name":"prod"}' "$U/v1/orgs/bench/apps/web/envs" >/dev/null
  principal() { # name binding -> "client_id client_secret", with reader and deployer on prod
    local r; r=$(api -d "{\"kind\":\"service\",\"name\":\"$1\",\"token_binding\":\"$2\"}" "$U/v1/orgs/bench/principals")
    local id; id=$(echo "$r" | jq -r .client_id)
    for rel in secret_reader deployer; do
      api -d "{\"scope\":\"org/bench/app/web/env/prod\",\"relation\":\"$rel\",\"subject\":\"service:$id\"}" "$U/v1/orgs/bench/relations" >/dev/null
    done
    echo "$id $(echo "$r" | jq -r .client_secret)"
  }
  local BID BSEC DID DSEC BEARER
  read -r BID BSEC <<<"$(principal bearer none)"
  read -r DID DSEC <<<"$(principal dpop dpop)"
  BEARER=$(tok "$BID" "$BSEC" "secrets:read secrets:write")
  "$LOAD" bulwark-bearer seed "$U" "$CA" "$BEARER" 16 0 "$KEYS" >/dev/null
  printf 'U=%q\nCA=%q\nBEARER=%q\nDPOP=%q\n' "$U" "$CA" "$BEARER" "$DID:$DSEC" >"$d/env"
  echo "$name ready: $bin ($("$bin" --version 2>/dev/null || echo '?'))" >&2
}
setup old "$OLD" 18643
setup new "$NEW" 18644

# measure NAME ROUND: the three loads against one server, one JSON line each (tagged).
measure() {
  local name=$1 round=$2 U CA BEARER DPOP
  # shellcheck disable=SC1090
  . "$work/$name/env"
  for spec in "bulwark-bearer read $BEARER" "bulwark-dpop read $DPOP" "bulwark-bearer write $BEARER"; do
    set -- $spec
    "$LOAD" "$1" "$2" "$U" "$CA" "$3" "$CONNS" "$DURATION" "$KEYS" \
      | jq -c --arg bin "$name" --argjson round "$round" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
          '. + {bin: $bin, round: $round, load1: $load}' >>"$work/results"
    tail -n1 "$work/results" | jq -r '"round \(.round) \(.bin) \(.mode) \(.op): \(.rps | floor) req/s  p50 \(.p50_ms * 100 | round / 100) ms  p99 \(.p99_ms * 100 | round / 100) ms  errors \(.errors)  load1 \(.load1)"'
  done
}
: >"$work/results"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then measure old "$r"; measure new "$r"; else measure new "$r"; measure old "$r"; fi
done

# Sanity: every read left a journal entry.
for name in old new; do
  bin=$OLD; [ "$name" = new ] && bin=$NEW
  echo "$name journal: $("$bin" admin status --data-dir "$work/$name/data" --json | jq -c '{journal_size: .journal.size}')"
done

jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r2: . * 100 | round / 100;
  group_by(.mode + " " + .op) | map(
    (.[0].mode + " " + .[0].op) as $k
    | (map(select(.bin == "old"))) as $o | (map(select(.bin == "new"))) as $n
    | {k: $k,
       o: {rps: ($o | map(.rps) | median), p50: ($o | map(.p50_ms) | median), p99: ($o | map(.p99_ms) | median), e: ($o | map(.errors) | add)},
       n: {rps: ($n | map(.rps) | median), p50: ($n | map(.p50_ms) | median), p99: ($n | map(.p99_ms) | median), e: ($n | map(.errors) | add)}})
  | "",
    "| run (median of rounds) | OLD req/s | NEW req/s | NEW/OLD req/s | OLD p50 / p99 ms | NEW p50 / p99 ms | NEW/OLD p99 | errors OLD/NEW |",
    "|---|---|---|---|---|---|---|---|",
    (.[] | "| \(.k) | \(.o.rps | floor) | \(.n.rps | floor) | \(.n.rps / .o.rps * 1000 | round / 1000) | \(.o.p50 | r2) / \(.o.p99 | r2) | \(.n.p50 | r2) / \(.n.p99 | r2) | \(.n.p99 / .o.p99 * 1000 | round / 1000) | \(.o.e)/\(.n.e) |")
' "$work/results"
