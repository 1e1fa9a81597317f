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
# /proc/PID/stat) over the whole run, connecting included. Needs Go, Node
# 20 (npm), curl and coreutils' timeout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:?usage: rounds.sh echo|fanout ROUNDS CONNS [SERVERS]}
rounds=${2:?rounds} conns=${3:?conns} servers=${4:-wsedge,gws,nbio,gobwas,gorilla}
port=${PORT:-28080} admin=${ADMIN_PORT:-29090}
[ -d "$here/node_modules/ws" ] || (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
pid= tmpbin=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  if [ -n "$tmpbin" ]; then rm -rf "$tmpbin"; fi
}
trap cleanup EXIT
if [ -z "${BIN:-}" ]; then
  tmpbin=$(mktemp -d)
  BIN=$tmpbin
  (cd "$root" && go build -o "$BIN/wsedge" ./cmd/wsedge)
  for s in ${servers//,/ }; do
    [ "$s" = wsedge ] || (cd "$root/bench/peers" && go build -o "$BIN/peer-$s" "./$s")
  done
fi
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
for r in $(seq "$rounds"); do
  for s in ${servers//,/ }; do
    if curl -s -o /dev/null "http://127.0.0.1:$admin/metrics"; then
      echo "port $admin is taken by another process: stopping" >&2
      exit 1
    fi
    if [ "$s" = wsedge ]; then cmd=("$BIN/wsedge" -echo -log-level error); else cmd=("$BIN/peer-$s"); fi
    "${cmd[@]}" -addr "127.0.0.1:$port" -admin "127.0.0.1:$admin" >/dev/null 2>&1 &
    pid=$!
    ready=
    for _ in $(seq 100); do
      if curl -sf -o /dev/null "http://127.0.0.1:$admin/metrics"; then ready=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      echo "$s round $r: the server did not start"
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      pid=
      continue
    fi
    c0=$(ticks $pid)
    if [ "$mode" = echo ]; then
      out=$(timeout 120 node "$here/echo.mjs" "ws://127.0.0.1:$port/echo" "$conns" 64 6 2>&1 || true)
    else
      out=$(timeout 300 node "$here/fanout.mjs" "ws://127.0.0.1:$port/ws" "http://127.0.0.1:$admin" "$conns" 20 2>&1 || true)
    fi
    c1=$(ticks $pid)
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      cpu="server CPU $(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') s"
    else
      cpu="the server exited during the run"
    fi
    wait "$pid" 2>/dev/null || true
    pid=
    echo "$s round $r, $conns conns: ${out//$'\n'/ | } | $cpu"
  done
done
