#!/bin/sh
# wsedge admin API with curl. Start the server first (go run ./cmd/wsedge)
# and connect a client as alice, e.g. with examples/chat/index.html.
# Set WSEDGE_ADMIN_TOKEN if the server runs with -admin-token.
set -eu
ADMIN=${ADMIN:-http://127.0.0.1:9090}
AUTH=""
if [ -n "${WSEDGE_ADMIN_TOKEN:-}" ]; then AUTH="Authorization: Bearer $WSEDGE_ADMIN_TOKEN"; fi
api() { curl -sS -H "${AUTH:-X-No-Auth: 1}" "$@"; }

# Push to one user: {"delivered":1}, or 404 {"error":"not_connected","delivered":0}
api -X POST "$ADMIN/v1/users/alice/messages" -d '{"text":"hello from the backend"}'

# Push to every member of a room: {"delivered":N}
api -X POST "$ADMIN/v1/rooms/lobby/messages" -d '{"text":"hello, lobby"}'

# Push to every connection: {"delivered":N}
api -X POST "$ADMIN/v1/broadcast" -d '"maintenance at 02:00 UTC"'

# Presence: a user (connected_at, remote_addr, rooms) and a room (members, users)
api "$ADMIN/v1/users/alice"
api "$ADMIN/v1/rooms/lobby"

# Server counters
api "$ADMIN/v1/stats"

# Kick: 204, the client is closed with 4001 "kicked"
curl -sS -o /dev/null -w '%{http_code}\n' -H "${AUTH:-X-No-Auth: 1}" -X DELETE "$ADMIN/v1/users/alice"

# Health and metrics (never need the token)
curl -sS "$ADMIN/readyz"
curl -sS "$ADMIN/metrics" | grep -E '^wsedge_(users|rooms|deliveries_total)'
