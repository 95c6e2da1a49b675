#!/usr/bin/env bash
# make bench: runs natter's load scenarios against a freshly started server,
# with history on (the default) and off, and prints one line per run. Every
# figure comes from this run on this machine; compare runs, not machines.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/server" ./cmd/server
go build -o "$bin/loadgen" ./cmd/loadgen
N=${N:-1000}
MESSAGES=${MESSAGES:-5000}

echo "# natter load runs, $(date -u +%Y-%m-%d), $(nproc) cores, $(go version | cut -d' ' -f3)"
for history in on off; do
  flags=(-addr 127.0.0.1:18181 -rate 0 -connect-rate 0 -max-clients-per-ip 1000000 -max-clients 1000000 -log-level warn)
  if [ "$history" = on ]; then flags+=(-data-dir "$bin/data"); else flags+=(-memory -history-on-join -1); fi
  "$bin/server" "${flags[@]}" 2>"$bin/server.log" &
  pid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18181) 2>/dev/null && break; sleep 0.1; done
  lg() { "$bin/loadgen" -addr 127.0.0.1:18181 -server-pid "$pid" -label "history-$history" "$@"; }
  lg -scenario fanout -n "$N" -messages "$MESSAGES" -window 8
  lg -scenario fanout -n "$N" -messages "$MESSAGES" -window 64
  lg -scenario chatter -n 200 -rate 5 -duration 10s
  lg -scenario slow -n "$N" -stalled 1 -messages "$MESSAGES" -window 64
  lg -scenario connect -n 2000
  lg -scenario idle -n 10000 -duration 3s
  if [ "$history" = off ]; then lg -scenario idle -n 19500 -duration 3s; fi
  kill "$pid"; wait "$pid" || true
done
# nats-server on the same scenario, if one is at hand:
#   GOBIN=$PWD/bin go install github.com/nats-io/nats-server/v2@v2.15.2
#   NATS_SERVER=bin/nats-server make bench
if [ -n "${NATS_SERVER:-}" ]; then
  "$NATS_SERVER" -a 127.0.0.1 -p 14222 >"$bin/nats.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done
  for w in 8 64; do
    "$bin/loadgen" -proto nats -addr 127.0.0.1:14222 -server-pid "$pid" -label nats-server \
      -scenario fanout -n "$N" -messages "$MESSAGES" -window "$w"
  done
  kill "$pid"; wait "$pid" || true
fi

echo "# Go benchmarks"
go test -run '^$' -bench . -benchtime 2000x ./chat ./chat/history
