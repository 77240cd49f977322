#!/usr/bin/env bash
# Side-by-side load benchmark: Custodia (release build, SQLite) and the certified Node.js peer in
# ../shared/bench, driven by the peer's own run.sh and wrk script in the same sitting (wrk, 2 threads,
# 32 connections, 5 s warm-up, 3 x 10 s; median table at the end of each part).
#
#   bench/run.sh                  Custodia RS256 and ES256, then the peer (opaque, RS256 JWT, ES256 JWT)
#   SKIP_PEER=1 bench/run.sh      Custodia only
#   ALGS="ES256" bench/run.sh     one algorithm
#   PARTS="tickets" bench/run.sh  only some parts: oauth (token/introspection/discovery), tickets
#                                 (UMA permission endpoint, RS256 PAT), grant (the UMA grant with a
#                                 pushed ID token; POLICIES="1 100 10000", GRANT_CONNS=32),
#                                 grant-heart (the same under heart-fhir: a PCT, private_key_jwt,
#                                 DPoP-bound RS256 RPTs; needs Python's cryptography), peer
#
# Needs: wrk (installed by the peer script through apt-get when missing), node and npm (the peer and
# the summary table), curl. Results land in $WORK (printed at the start).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER_SRC=${PEER_SRC:-$ROOT/../shared/bench}
WORK=${WORK:-$(mktemp -d /tmp/custodia-bench.XXXXXX)}
PORT=${PORT:-4100}
ALGS=${ALGS:-RS256 ES256}
echo "bench work directory: $WORK" >&2
[ -x "$PEER_SRC/run.sh" ] || { echo "peer benchmark not found at $PEER_SRC" >&2; exit 1; }
rm -rf "$WORK/peer"; mkdir -p "$WORK"; cp -r "$PEER_SRC" "$WORK/peer"; chmod -R u+w "$WORK/peer"

PARTS=${PARTS:-oauth tickets peer}
[ -n "${SKIP_PEER:-}" ] && PARTS=${PARTS//peer/}
has() { [[ " $PARTS " == *" $1 "* ]]; }

(cd "$ROOT" && cargo build --release -p custodia-server --bin custodia)
BIN=$ROOT/target/release/custodia

# --- UMA permission tickets: POST /uma/permission with a PAT, one resource, one scope ----------
if has tickets; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  d=$WORK/custodia-tickets; rm -rf "$d"; mkdir -p "$d"
  export CUSTODIA_DATABASE_URL="sqlite://$d/custodia.db" CUSTODIA_BIND="127.0.0.1:$PORT" \
    CUSTODIA_ISSUER="http://127.0.0.1:$PORT" CUSTODIA_LOG=warn
  echo 'bench-password-123' | "$BIN" user add --username owner --email owner@example.org --password-stdin >/dev/null
  "$BIN" client add --name "bench RS" --grant-type authorization_code --grant-type refresh_token \
    --redirect-uri https://rs.example/cb --scope uma_protection > "$d/rs.json"
  id=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_id"])' "$d/rs.json")
  secret=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_secret"])' "$d/rs.json")
  "$BIN" serve > "$d/server.log" 2>&1 & spid=$!
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  python3 "$ROOT/bench/uma_setup.py" "http://127.0.0.1:$PORT" "$id" "$secret" owner bench-password-123 \
    https://rs.example/cb > "$d/setup.json"
  export PAT=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["pat"])' "$d/setup.json")
  export RESOURCE_ID=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["resource_id"])' "$d/setup.json")
  wrk -t2 -c32 -d5s -s "$ROOT/bench/permission.lua" "http://127.0.0.1:$PORT/uma/permission" >/dev/null
  for rep in 1 2 3; do
    wrk -t2 -c32 -d10s --latency -s "$ROOT/bench/permission.lua" "http://127.0.0.1:$PORT/uma/permission" \
      | grep BENCH_RESULT | tee -a "$d/results.txt"
  done
  kill "$spid"; wait "$spid" 2>/dev/null || true
  python3 - "$d/results.txt" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=([\d.]+)", l)) for l in open(sys.argv[1])]
med = lambda k: statistics.median(float(r[k]) for r in rows)
print(f"custodia tickets (RS256 PAT): median {med('rps'):.0f} tickets/s, p50 {med('p50_ms'):.2f} ms, "
      f"p99 {med('p99_ms'):.2f} ms, errors {sum(int(r['non2xx']) + int(r['bad_body']) + int(r['sock_err']) for r in rows)}")
PY
  unset CUSTODIA_DATABASE_URL CUSTODIA_BIND CUSTODIA_ISSUER CUSTODIA_LOG PAT RESOURCE_ID
fi

# --- the UMA grant: a pushed ID token, one resource shared with N people (RS256 RPTs) ------------
if has grant; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  for n in ${POLICIES:-1 100 10000}; do
    d=$WORK/custodia-grant-$n; rm -rf "$d"; mkdir -p "$d"
    export CUSTODIA_DATABASE_URL="sqlite://$d/custodia.db" CUSTODIA_BIND="127.0.0.1:$PORT" \
      CUSTODIA_ISSUER="http://127.0.0.1:$PORT" CUSTODIA_LOG=warn \
      CUSTODIA_RATE_TOKEN_PER_SECOND=1000000 CUSTODIA_RATE_TOKEN_BURST=1000000
    for u in owner party; do
      echo 'bench-password-123' | "$BIN" user add --username $u --email $u@example.org --password-stdin >/dev/null
    done
    "$BIN" client add --name "bench RS" --grant-type authorization_code --grant-type refresh_token \
      --redirect-uri https://rs.example/cb --scope uma_protection > "$d/rs.json"
    "$BIN" client add --name "bench app" --grant-type authorization_code \
      --grant-type urn:ietf:params:oauth:grant-type:uma-ticket \
      --redirect-uri https://client.example/cb --scope openid > "$d/app.json"
    j() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
    "$BIN" serve > "$d/server.log" 2>&1 & spid=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
    python3 "$ROOT/bench/grant_setup.py" "http://127.0.0.1:$PORT" "$(j "$d/rs.json" client_id)" \
      "$(j "$d/rs.json" client_secret)" "$(j "$d/app.json" client_id)" "$(j "$d/app.json" client_secret)" \
      owner party bench-password-123 "$n" > "$d/setup.json"
    export PAT=$(j "$d/setup.json" pat) RESOURCE_ID=$(j "$d/setup.json" resource_id) \
      ID_TOKEN=$(j "$d/setup.json" id_token) CLIENT_ID=$(j "$d/app.json" client_id) \
      CLIENT_SECRET=$(j "$d/app.json" client_secret)
    for rep in warm 1 2 3; do
      export TICKET_DIR=$d/tickets-$rep; mkdir -p "$TICKET_DIR"
      wrk -t2 -c32 -d4s -s "$ROOT/bench/tickets.lua" "http://127.0.0.1:$PORT/uma/permission" >/dev/null
      dur=10s; [ $rep = warm ] && dur=5s
      out=$(wrk -t2 -c${GRANT_CONNS:-32} -d$dur --latency -s "$ROOT/bench/grant.lua" "http://127.0.0.1:$PORT/token" | grep BENCH_RESULT)
      [ $rep = warm ] || echo "$out" | tee -a "$d/results.txt"
    done
    kill "$spid"; wait "$spid" 2>/dev/null || true
    python3 - "$d/results.txt" "$n" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=([\d.]+)", l)) for l in open(sys.argv[1])]
med = lambda k: statistics.median(float(r[k]) for r in rows)
print(f"custodia UMA grant, {sys.argv[2]} policies: median {med('rps'):.0f} grants/s, p50 {med('p50_ms'):.2f} ms, "
      f"p99 {med('p99_ms'):.2f} ms, errors {sum(int(r['non2xx']) + int(r['bad_body']) + int(r['sock_err']) for r in rows)}")
PY
    unset CUSTODIA_DATABASE_URL CUSTODIA_BIND CUSTODIA_ISSUER CUSTODIA_LOG PAT RESOURCE_ID ID_TOKEN \
      CLIENT_ID CLIENT_SECRET TICKET_DIR CUSTODIA_RATE_TOKEN_PER_SECOND CUSTODIA_RATE_TOKEN_BURST
  done
fi

# --- the UMA grant under heart-fhir: private_key_jwt clients, a PCT, DPoP-bound RS256 RPTs -------
if has grant-heart; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  python3 -c 'import cryptography' 2>/dev/null || pip install -q cryptography
  for n in ${POLICIES:-1 100 10000}; do
    d=$WORK/custodia-grant-heart-$n; rm -rf "$d"; mkdir -p "$d"
    export CUSTODIA_DATABASE_URL="sqlite://$d/custodia.db" CUSTODIA_BIND="127.0.0.1:$PORT" \
      CUSTODIA_ISSUER="http://127.0.0.1:$PORT" CUSTODIA_LOG=warn CUSTODIA_PROFILE=heart-fhir \
      CUSTODIA_RATE_TOKEN_PER_SECOND=1000000 CUSTODIA_RATE_TOKEN_BURST=1000000
    for u in owner party; do
      echo 'bench-password-123' | "$BIN" user add --username $u --email $u@example.org \
        --email-verified --password-stdin >/dev/null
    done
    python3 "$ROOT/bench/heart_setup.py" keys "$d/keys"
    "$BIN" client add --name "bench FHIR server" --grant-type authorization_code \
      --grant-type refresh_token --redirect-uri https://rs.example/cb --scope "openid uma_protection" \
      --auth-method private_key_jwt --jwks "@$d/keys/rs.jwks.json" > "$d/rs.json"
    "$BIN" client add --name "bench clinic app" --grant-type urn:ietf:params:oauth:grant-type:uma-ticket \
      --claims-redirect-uri https://client.example/claims --scope openid \
      --auth-method private_key_jwt --jwks "@$d/keys/app.jwks.json" > "$d/app.json"
    j() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
    "$BIN" serve > "$d/server.log" 2>&1 & spid=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
    python3 "$ROOT/bench/heart_setup.py" setup "$d/keys" "http://127.0.0.1:$PORT" \
      "$(j "$d/rs.json" client_id)" "$(j "$d/app.json" client_id)" owner party bench-password-123 \
      "$n" > "$d/setup.json"
    export PAT=$(j "$d/setup.json" pat) RESOURCE_ID=$(j "$d/setup.json" resource_id) \
      PCT=$(j "$d/setup.json" pct)
    for rep in warm 1 2 3; do
      export TICKET_DIR=$d/tickets-$rep; mkdir -p "$TICKET_DIR"
      wrk -t2 -c32 -d4s -s "$ROOT/bench/tickets.lua" "http://127.0.0.1:$PORT/uma/permission" >/dev/null
      python3 "$ROOT/bench/heart_setup.py" requests "$d/keys" "http://127.0.0.1:$PORT" \
        "$(j "$d/app.json" client_id)" "$TICKET_DIR"
      dur=10s; [ $rep = warm ] && dur=5s
      out=$(wrk -t2 -c${GRANT_CONNS:-32} -d$dur --latency -s "$ROOT/bench/grant_heart.lua" "http://127.0.0.1:$PORT/token" | grep BENCH_RESULT)
      [ $rep = warm ] || echo "$out" | tee -a "$d/results.txt"
    done
    kill "$spid"; wait "$spid" 2>/dev/null || true
    python3 - "$d/results.txt" "$n" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=([\d.]+)", l)) for l in open(sys.argv[1])]
med = lambda k: statistics.median(float(r[k]) for r in rows)
print(f"custodia UMA grant under heart-fhir (PCT, private_key_jwt, DPoP), {sys.argv[2]} policies: "
      f"median {med('rps'):.0f} grants/s, p50 {med('p50_ms'):.2f} ms, p99 {med('p99_ms'):.2f} ms, "
      f"errors {sum(int(r['non2xx']) + int(r['bad_body']) + int(r['sock_err']) for r in rows)}")
PY
    unset CUSTODIA_DATABASE_URL CUSTODIA_BIND CUSTODIA_ISSUER CUSTODIA_LOG CUSTODIA_PROFILE PAT \
      RESOURCE_ID PCT TICKET_DIR CUSTODIA_RATE_TOKEN_PER_SECOND CUSTODIA_RATE_TOKEN_BURST
  done
fi

has oauth || ALGS=""
for alg in $ALGS; do
  d=$WORK/custodia-$alg; rm -rf "$d"; mkdir -p "$d"
  export CUSTODIA_DATABASE_URL="sqlite://$d/custodia.db" CUSTODIA_BIND="127.0.0.1:$PORT" \
    CUSTODIA_ISSUER="http://127.0.0.1:$PORT" CUSTODIA_SIGNING_ALG="$alg" CUSTODIA_LOG=warn \
    CUSTODIA_RATE_TOKEN_PER_SECOND=1000000 CUSTODIA_RATE_TOKEN_BURST=1000000
  "$BIN" client add --name bench --grant-type client_credentials --scope api:read > "$d/client.json"
  id=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_id"])' "$d/client.json")
  secret=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["client_secret"])' "$d/client.json")
  (cd "$WORK/peer" && SERVER_CMD="$BIN serve" LABEL="custodia-$alg" BASE_URL="http://127.0.0.1:$PORT" \
    CLIENT_ID="$id" CLIENT_SECRET="$secret" SCOPE=api:read TOKEN_PATH=/token INTROSPECT_PATH=/introspect \
    REVOKE_PATH=/revoke DISCOVERY_PATH=/.well-known/openid-configuration ENDPOINTS="token introspect discovery" \
    OUT="$WORK/out-custodia-$alg" ./run.sh)
  unset CUSTODIA_DATABASE_URL CUSTODIA_BIND CUSTODIA_ISSUER CUSTODIA_SIGNING_ALG CUSTODIA_LOG \
    CUSTODIA_RATE_TOKEN_PER_SECOND CUSTODIA_RATE_TOKEN_BURST
done

if has peer; then
  (cd "$WORK/peer" && CONFIGS="${PEER_CONFIGS:-opaque jwt-rs256 jwt-es256}" OUT="$WORK/out-peer" ./run.sh)
fi
