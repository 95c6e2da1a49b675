#!/usr/bin/env bash
# make bench: runs natter's load scenarios against freshly started servers,
# natter with history on disk (the default), natter -memory, and
# nats-server, printing one line per run, then ONE table built from the
# same runs (loadgen -json, cmd/loadgen/benchtable), the goal checks, a few
# runs of natter's own (slow receivers, a connect storm, idle at IDLE_MAX)
# and the Go benchmarks. Every figure comes from this run on this machine;
# compare runs, not machines.
#
# Each of REPS rounds runs natter on, natter -memory and nats-server in turn,
# so noise spreads evenly; the table shows medians over the rounds and, for
# fan-out, the range of the rounds' ratios to nats-server in the same round.
# Without NATS_SERVER (a nats-server binary) nats-server v2.15.2 is built
# with go install into the temporary directory.
#
# The table is also written to BENCH_OUT (the runs themselves, as JSON lines,
# beside it); make bench-readme puts it into README.md between the
# <!-- bench-table:start --> and <!-- bench-table:end --> lines.
#
# Knobs (environment), with their defaults:
#   N=1000 N_SMALL=100 MESSAGES=5000   fan-out receivers and messages
#   MESSAGES_SMALL=4*MESSAGES          messages of the N_SMALL fan-out (the same deliveries
#                                      as 1->N would be a run too short to be steady)
#   REPS=3                             rounds
#   CHATTER_N=200 CHATTER_RATE=5 CHATTER_DURATION=10s
#   IDLE_N=10000 IDLE_DURATION=3s      idle connections in the table
#   EXTRAS=1                           0 skips slow, connect storm, idle at IDLE_MAX
#   SLOW_N=$N CONNECT_N=2000 IDLE_MAX=19500
#   PORT=18181 NATS_PORT=14222         the servers' ports (they must be free)
#   GO_BENCH=1                         0 skips the Go benchmarks
#   BENCHTIME=2000x                    -benchtime of the Go benchmarks, but:
#   BENCH_ONCE='JoinStorm|FileTransfer' benchmarks (a -bench regexp) run once (1x) instead
#                                      (FileTransfer moves 1 GiB an iteration)
#   BENCH_SKIP=''                      benchmarks (a -skip regexp) not run at all
#   NATS_SERVER=path                   a nats-server binary to use
#   BENCH_OUT=${TMPDIR:-/tmp}/natter-bench-table.md
#
# A quick check that it all works (a minute or so, figures meaningless):
#   N=200 MESSAGES=1000 REPS=1 CHATTER_N=50 CHATTER_DURATION=2s IDLE_N=500 \
#     IDLE_DURATION=1s EXTRAS=0 GO_BENCH=0 make bench
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$bin"' EXIT

N=${N:-1000}
N_SMALL=${N_SMALL:-100}
MESSAGES=${MESSAGES:-5000}
MESSAGES_SMALL=${MESSAGES_SMALL:-$((4 * MESSAGES))}
REPS=${REPS:-3}
CHATTER_N=${CHATTER_N:-200}
CHATTER_RATE=${CHATTER_RATE:-5}
CHATTER_DURATION=${CHATTER_DURATION:-10s}
IDLE_N=${IDLE_N:-10000}
IDLE_DURATION=${IDLE_DURATION:-3s}
EXTRAS=${EXTRAS:-1}
SLOW_N=${SLOW_N:-$N}
CONNECT_N=${CONNECT_N:-2000}
IDLE_MAX=${IDLE_MAX:-19500}
PORT=${PORT:-18181}
NATS_PORT=${NATS_PORT:-14222}
GO_BENCH=${GO_BENCH:-1}
BENCHTIME=${BENCHTIME:-2000x}
BENCH_ONCE=${BENCH_ONCE-JoinStorm|FileTransfer}
BENCH_SKIP=${BENCH_SKIP-}
BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/natter-bench-table.md}
runs="$bin/runs.jsonl"

go build -o "$bin/server" ./cmd/server
go build -o "$bin/loadgen" ./cmd/loadgen
go build -o "$bin/benchtable" ./cmd/loadgen/benchtable
if [ -z "${NATS_SERVER:-}" ]; then
  echo "# building nats-server v2.15.2 (set NATS_SERVER to use a binary of your own)"
  GOBIN="$bin" go install github.com/nats-io/nats-server/v2@v2.15.2
  NATS_SERVER="$bin/nats-server"
fi
nats_version=$("$NATS_SERVER" --version 2>&1 | head -1 | sed 's/: / /') # nats-server v2.15.2

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# launch PORT LOG COMMAND...: start a server that is to listen on PORT, its
# output to LOG, and wait until it listens; the port must be free, or the
# runs would measure another server.
launch() {
  local port=$1 log=$2
  shift 2
  if listening "$port"; then
    echo "bench: something already listens on 127.0.0.1:$port (set PORT or NATS_PORT)" >&2
    return 1
  fi
  "$@" >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    listening "$port" && return
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $1 did not start listening on 127.0.0.1:$port; its log, $log:" >&2
  cat "$log" >&2
  return 1
}
# start SERVER: start a fresh server: on (natter, history on disk), off
# (natter -memory) or nats (nats-server).
start() {
  if [ "$1" = nats ]; then
    launch "$NATS_PORT" "$bin/nats.log" "$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT"
    return
  fi
  local flags=(-addr "127.0.0.1:$PORT" -rate 0 -connect-rate 0 -max-clients-per-ip 1000000 -max-clients 1000000 -log-level warn)
  rm -rf "$bin/data"
  if [ "$1" = on ]; then flags+=(-data-dir "$bin/data"); else flags+=(-memory -history-on-join -1); fi
  launch "$PORT" "$bin/server.log" "$bin/server" "${flags[@]}"
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
# lg SERVER ARGS...: one loadgen run against the server started for SERVER.
lg() {
  local server=$1
  shift
  case "$server" in
  nats) "$bin/loadgen" -proto nats -addr "127.0.0.1:$NATS_PORT" -server-pid "$pid" -label nats-server "$@" ;;
  *) "$bin/loadgen" -addr "127.0.0.1:$PORT" -server-pid "$pid" -label "history-$server" "$@" ;;
  esac
}

note="measured on $(date -u +%Y-%m-%d), $(nproc) cores, $(go version | cut -d' ' -f3), $(uname -m)/$(uname -r); $nats_version"
echo "# natter load runs: $note; REPS=$REPS N=$N N_SMALL=$N_SMALL MESSAGES=$MESSAGES"
for rep in $(seq "$REPS"); do
  echo "# round $rep of $REPS"
  for server in on off nats; do
    rec=(-json "$runs" -round "$rep")
    start "$server"
    lg "$server" "${rec[@]}" -scenario fanout -n "$N" -messages "$MESSAGES" -window 64
    lg "$server" "${rec[@]}" -scenario fanout -n "$N" -messages "$MESSAGES" -window 8
    lg "$server" "${rec[@]}" -scenario fanout -n "$N_SMALL" -messages "$MESSAGES_SMALL" -window 8
    stop
    start "$server" # chatter, and idle memory, each from a fresh server
    lg "$server" "${rec[@]}" -scenario chatter -n "$CHATTER_N" -rate "$CHATTER_RATE" -duration "$CHATTER_DURATION"
    stop
    start "$server"
    lg "$server" "${rec[@]}" -scenario idle -n "$IDLE_N" -duration "$IDLE_DURATION"
    stop
  done
done

echo
echo "# the table (from the runs above)"
echo
mkdir -p "$(dirname "$BENCH_OUT")"
"$bin/benchtable" -in "$runs" -note "$note" -out "$BENCH_OUT"
cp "$runs" "${BENCH_OUT%.md}.jsonl"

if [ "$EXTRAS" != 0 ]; then
  echo
  echo "# natter only: slow receivers, connect storm, idle at $IDLE_MAX"
  for history in on off; do
    start "$history"
    lg "$history" -scenario slow -n "$SLOW_N" -stalled 1 -messages "$MESSAGES" -window 64
    lg "$history" -scenario connect -n "$CONNECT_N"
    stop
  done
  start off
  lg off -scenario idle -n "$IDLE_MAX" -duration "$IDLE_DURATION"
  stop
fi

if [ "$GO_BENCH" != 0 ]; then
  echo
  echo "# Go benchmarks"
  skip=$BENCH_SKIP
  [ -z "$BENCH_ONCE" ] || skip=${skip:+$skip|}$BENCH_ONCE
  go test -run '^$' -bench . -skip "$skip" -benchtime "$BENCHTIME" ./chat ./chat/history ./chat/line
  if [ -n "$BENCH_ONCE" ]; then
    go test -run '^$' -bench "$BENCH_ONCE" ${BENCH_SKIP:+-skip "$BENCH_SKIP"} -benchtime 1x ./chat ./chat/history ./chat/line
  fi
  [ -z "$BENCH_SKIP" ] || echo "# not run (BENCH_SKIP): $BENCH_SKIP"
fi

echo
echo "# the table is in $BENCH_OUT, the runs in ${BENCH_OUT%.md}.jsonl; make bench-readme puts the table into README.md"
