#!/usr/bin/env bash
# Interleaved rounds of the Node client (echo.mjs or fanout.mjs) against
# wsedge and the peers in bench/peers, a fresh server for every run.
#
#   bench/node/rounds.sh echo   ROUNDS CONNS [SERVERS]   # closed-loop echo, 64 B, 6 s
#   bench/node/rounds.sh fanout ROUNDS CONNS [SERVERS]   # 20 broadcasts 500 ms apart
#
# SERVERS: comma-separated, default wsedge,gws,nbio,gobwas,gorilla. BIN=DIR
# reuses prebuilt DIR/wsedge and DIR/peer-NAME; otherwise they are built
# into a temporary directory. Ports: PORT (28080) and ADMIN_PORT (29090) on
# 127.0.0.1. Every line ends with the server's CPU (utime+stime from
# /proc/PID/stat) over the whole run, connecting included.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:?usage: rounds.sh echo|fanout ROUNDS CONNS [SERVERS]}
rounds=${2:?rounds} conns=${3:?conns} servers=${4:-wsedge,gws,nbio,gobwas,gorilla}
port=${PORT:-28080} admin=${ADMIN_PORT:-29090}
[ -d "$here/node_modules/ws" ] || (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
if [ -z "${BIN:-}" ]; then
  BIN=$(mktemp -d)
  (cd "$root" && go build -o "$BIN/wsedge" ./cmd/wsedge)
  for s in ${servers//,/ }; do
    [ "$s" = wsedge ] || (cd "$root/bench/peers" && go build -o "$BIN/peer-$s" "./$s")
  done
fi
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
for r in $(seq "$rounds"); do
  for s in ${servers//,/ }; do
    if [ "$s" = wsedge ]; then cmd=("$BIN/wsedge" -echo -log-level error); else cmd=("$BIN/peer-$s"); fi
    "${cmd[@]}" -addr "127.0.0.1:$port" -admin "127.0.0.1:$admin" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$admin/metrics" && break; sleep 0.1; done
    c0=$(ticks $pid)
    if [ "$mode" = echo ]; then
      out=$(timeout 120 node "$here/echo.mjs" "ws://127.0.0.1:$port/echo" "$conns" 64 6 2>&1 || true)
    else
      out=$(timeout 300 node "$here/fanout.mjs" "ws://127.0.0.1:$port/ws" "http://127.0.0.1:$admin" "$conns" 20 2>&1 || true)
    fi
    c1=$(ticks $pid)
    kill -TERM $pid
    wait $pid || true
    hz=$(getconf CLK_TCK)
    echo "$s round $r, $conns conns: ${out//$'\n'/ | } | server CPU $(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') s"
  done
done
