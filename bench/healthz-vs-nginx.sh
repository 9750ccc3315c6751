#!/usr/bin/env bash
# GET /healthz over TLS keep-alive, alternating in the same run, on loopback only:
#   bulwark   the real `bulwark serve` (full hardening stack)
#   bare      the same accept loop, TLS and route without the stack (examples/healthz_server --bare)
#   hardened  the same with the stack (examples/healthz_server)
#   nginx     nginx as in ../shared/peers.md answering a static 200
# Prints a Markdown table: req/s and p99 of each, bulwark/nginx, and the stack's cost
# (1 - hardened/bare). Bounded: ROUNDS × 4 × DURATION seconds.
#
#   bench/healthz-vs-nginx.sh            # ROUNDS=3 DURATION=10s CONNS=16 THREADS=2
#
# Needs wrk and nginx (apt-get install -y wrk nginx); builds bulwark --release.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
# Like-for-like with nginx's single worker unless overridden.
BULWARK_WORKERS=${BULWARK_WORKERS:-1}
B_PORT=18443
N_PORT=18444
BARE_PORT=18445
HARD_PORT=18446

for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx" >&2; exit 2; }
done
cargo build --release -q -p bulwark
cargo build --release -q -p bulwark-http --example healthz_server
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Bulwark: its own data dir; the rate limit is raised so that wrk's single IP measures the
# limiter's cost without being throttled by it (nginx is configured the same way).
TOKIO_WORKER_THREADS=$BULWARK_WORKERS ./target/release/bulwark serve \
  --data-dir "$work/data" --listen 127.0.0.1:$B_PORT --node-listen 127.0.0.1:0 \
  --rate-limit-rps 100000 --rate-limit-burst 100000 --log-level warn >"$work/bulwark.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -f "$work/data/ca.pem" ] && break; sleep 0.1; done
sleep 0.5

TOKIO_WORKER_THREADS=$BULWARK_WORKERS ./target/release/examples/healthz_server \
  "$work/data/server.pem" "$work/data/server.key" 127.0.0.1:$BARE_PORT --bare &
pids+=($!)
TOKIO_WORKER_THREADS=$BULWARK_WORKERS ./target/release/examples/healthz_server \
  "$work/data/server.pem" "$work/data/server.key" 127.0.0.1:$HARD_PORT >/dev/null &
pids+=($!)

# nginx serves Bulwark's own server certificate (same key type: ECDSA P-256).
mkdir -p "$work/nginx"
sed -e "s#@DIR@#$work/nginx#g" -e "s#@CERTS@#$work/data#g" -e "s#@PORT@#$N_PORT#g" \
  bench/nginx-healthz.conf >"$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr" &
pids+=($!)
sleep 0.5
curl -sf --cacert "$work/data/ca.pem" https://localhost:$B_PORT/healthz >/dev/null
curl -sf --cacert "$work/data/ca.pem" https://localhost:$N_PORT/healthz >/dev/null

run() { # url -> "rps p99_ms"
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$1" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    END {printf "%s %s\n", rps, p99}'
}

echo "| round | bulwark req/s (p99 ms) | nginx req/s (p99 ms) | bulwark/nginx | bare req/s (p99 ms) | hardened req/s (p99 ms) | stack cost |"
echo "|---|---|---|---|---|---|---|"
sb=0; sn=0; sbare=0; shard=0
for r in $(seq "$ROUNDS"); do
  read -r brps bp99 < <(run "https://127.0.0.1:$B_PORT/healthz")
  read -r nrps np99 < <(run "https://127.0.0.1:$N_PORT/healthz")
  read -r barerps barep99 < <(run "https://127.0.0.1:$BARE_PORT/healthz")
  read -r hrps hp99 < <(run "https://127.0.0.1:$HARD_PORT/healthz")
  ratio=$(awk -v a="$brps" -v b="$nrps" 'BEGIN{printf "%.2f", a/b}')
  cost=$(awk -v h="$hrps" -v b="$barerps" 'BEGIN{printf "%.1f %%", (1-h/b)*100}')
  echo "| $r | $brps ($bp99) | $nrps ($np99) | $ratio | $barerps ($barep99) | $hrps ($hp99) | $cost |"
  sb=$(awk -v a="$sb" -v b="$brps" 'BEGIN{print a+b}')
  sn=$(awk -v a="$sn" -v b="$nrps" 'BEGIN{print a+b}')
  sbare=$(awk -v a="$sbare" -v b="$barerps" 'BEGIN{print a+b}')
  shard=$(awk -v a="$shard" -v b="$hrps" 'BEGIN{print a+b}')
done
awk -v a="$sb" -v b="$sn" -v x="$sbare" -v h="$shard" -v n="$ROUNDS" \
  'BEGIN{printf "| mean | %.0f | %.0f | %.2f | %.0f | %.0f | %.1f %% |\n", a/n, b/n, a/b, x/n, h/n, (1-h/x)*100}'
