#!/usr/bin/env bash
# make bench: runs natter's load scenarios against freshly started servers,
# with history on (the default) and off, and prints one line per run. Every
# figure comes from this run on this machine; compare runs, not machines.
# With NATS_SERVER set to a nats-server binary, the fan-out runs alternate
# with the same runs against nats-server, REPS times each.
#
#   GOBIN=$PWD/bin go install github.com/nats-io/nats-server/v2@v2.15.2
#   NATS_SERVER=bin/nats-server make bench
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$bin"' EXIT
go build -o "$bin/server" ./cmd/server
go build -o "$bin/loadgen" ./cmd/loadgen
N=${N:-1000}
MESSAGES=${MESSAGES:-5000}
REPS=${REPS:-3}

wait_port() {
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
}
# natter HISTORY: start a fresh natter server, history on or off.
natter() {
  local flags=(-addr 127.0.0.1:18181 -rate 0 -connect-rate 0 -max-clients-per-ip 1000000 -max-clients 1000000 -log-level warn)
  rm -rf "$bin/data"
  if [ "$1" = on ]; then flags+=(-data-dir "$bin/data"); else flags+=(-memory -history-on-join -1); fi
  "$bin/server" "${flags[@]}" 2>"$bin/server.log" &
  pid=$!
  wait_port 18181
}
nats() {
  "$NATS_SERVER" -a 127.0.0.1 -p 14222 >"$bin/nats.log" 2>&1 &
  pid=$!
  wait_port 14222
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
lg() { "$bin/loadgen" -addr 127.0.0.1:18181 -server-pid "$pid" "$@"; }
lgnats() { "$bin/loadgen" -proto nats -addr 127.0.0.1:14222 -server-pid "$pid" -label nats-server "$@"; }

echo "# natter load runs, $(date -u +%Y-%m-%d), $(nproc) cores, $(go version | cut -d' ' -f3)"
for rep in $(seq "$REPS"); do
  for history in on off; do
    natter "$history"
    for w in 8 64; do lg -label "history-$history" -scenario fanout -n "$N" -messages "$MESSAGES" -window "$w"; done
    stop
  done
  if [ -n "${NATS_SERVER:-}" ]; then
    nats
    for w in 8 64; do lgnats -scenario fanout -n "$N" -messages "$MESSAGES" -window "$w"; done
    stop
  fi
done
for history in on off; do
  natter "$history"
  lg -label "history-$history" -scenario chatter -n 200 -rate 5 -duration 10s
  lg -label "history-$history" -scenario slow -n "$N" -stalled 1 -messages "$MESSAGES" -window 64
  lg -label "history-$history" -scenario connect -n 2000
  stop
  natter "$history" # idle memory from a fresh server
  lg -label "history-$history" -scenario idle -n 10000 -duration 3s
  stop
done
natter off
lg -label history-off -scenario idle -n 19500 -duration 3s
stop

echo "# Go benchmarks"
go test -run '^$' -bench . -benchtime 2000x ./chat ./chat/history ./chat/line
