#!/usr/bin/env bash
# What the daemon's memory really comes to against --memory-limit, and the sizing rule from it.
#
#   bash bench/memory.sh
#
# For each memory limit, a fresh daemon on a free loopback port is filled by
# bench/memory-fill.mjs with session-sized values (0.5 to 8 KB, uniform) until FILL times the
# limit in values has been sent: the daemon evicts, as a farm whose sessions come and go makes it
# replace them. After a pause (the daemon idles, as between busy hours) VmRSS and VmHWM are read
# from /proc/<pid>/status, and `stats` (bytes, items, evictions). A straight line through
# (limit, RSS) gives the sizing rule RSS ~ limit x k + base.
#
# First, what one more item costs: a daemon with a limit it never reaches is filled twice (SLOPE_A
# then SLOPE_B bytes of values, new keys each time); the RSS it grew by, over the items it gained,
# less their keys and values, is the per-item overhead the limit should count (ITEM_OVERHEAD_BYTES
# in src/store/change.ts), against what `stats bytes` counts per item.
#
# Raw output goes to bench/out/memory-*; the table to bench/out/memory.md and stdout.
# All processes started here are stopped on exit.
#
# Knobs (environment):
#   BENCH_MEMORY_LIMITS="64m 256m 1g"   the --memory-limit values measured
#   BENCH_MEMORY_FILL=3                 values sent, as a multiple of the limit
#   BENCH_MEMORY_ROUNDS=1               rounds per limit (the table gives medians)
#   BENCH_MEMORY_MIN=512 BENCH_MEMORY_MAX=8192   value sizes, bytes
#   BENCH_MEMORY_SETTLE=5               seconds between the end of the fill and the reading
#   BENCH_MEMORY_SLOPE="256m 768m"      the two fills of the per-item measurement ("" skips it)
#   BENCH_DAEMON_ARGS="--log-level warn"         extra daemon arguments
#   BENCH_SKIP_BUILD=1                  do not run `npm run build`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out
mkdir -p "$OUT"

LIMITS=${BENCH_MEMORY_LIMITS:-64m 256m 1g}
FILL=${BENCH_MEMORY_FILL:-3}
ROUNDS=${BENCH_MEMORY_ROUNDS:-1}
MIN=${BENCH_MEMORY_MIN:-512}
MAX=${BENCH_MEMORY_MAX:-8192}
SETTLE=${BENCH_MEMORY_SETTLE:-5}
SLOPE=${BENCH_MEMORY_SLOPE-256m 768m}
DAEMON_ARGS=${BENCH_DAEMON_ARGS---log-level warn}

RESULTS=$OUT/memory-results.tsv
: >"$RESULTS"

log() { printf '[memory] %s\n' "$*" >&2; }

stop_on_exit   # bench/lib.sh: the client, then every daemon started, on any exit

bytes_of() { node -e 'const m=/^(\d+)([kmg]?)$/i.exec(process.argv[1]); const u={"":1,k:1024,m:1048576,g:1073741824}[m[2].toLowerCase()]; console.log(Number(m[1])*u)' "$1"; }
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
  log "npm run build"
  (cd "$ROOT" && npm run build --silent) >&2
fi

{
  machine_lines
  echo "daemon: session-cluster $(node -p "require('$ROOT/package.json').version") ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'))"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: limits=\"$LIMITS\" fill=$FILL rounds=$ROUNDS sizes=$MIN-$MAX settle=${SETTLE}s daemon_args=\"$DAEMON_ARGS\""
} >"$OUT/memory-machine.txt"
sed 's/^/[memory] /' "$OUT/memory-machine.txt" >&2

# ---------------------------------------------------------------- per-item cost
SLOPE_RESULTS=$OUT/memory-slope.tsv
: >"$SLOPE_RESULTS"
if [[ -n "$SLOPE" ]]; then
  port=$(free_port)
  logf=$OUT/memory-slope.server.log
  # shellcheck disable=SC2086
  setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$port" --memory-limit 16g $DAEMON_ARGS </dev/null >"$logf" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  wait_port "$pid" "$port" "$logf"
  sleep 1
  printf 'start\t%s\t-\n' "$(status_kb "$pid" VmRSS)" >>"$SLOPE_RESULTS"
  seed=0
  for fill in $SLOPE; do
    seed=$((seed + 1))
    json=$OUT/memory-slope-$seed.fill.json
    log "per-item cost: sending $fill of $MIN-$MAX B values to a daemon with --memory-limit 16g"
    run_child node "$ROOT/bench/memory-fill.mjs" --port "$port" --bytes "$(bytes_of "$fill")" --min "$MIN" --max "$MAX" --seed "$seed" >"$json" 2>"$OUT/memory-slope-$seed.fill.err" \
      || log "memory-fill failed (see $json)"
    sleep "$SETTLE"
    printf '%s\t%s\t%s\n' "$fill" "$(status_kb "$pid" VmRSS)" "$json" >>"$SLOPE_RESULTS"
  done
  stop_pids "$pid"
fi

# ---------------------------------------------------------------- RSS against the limit
for ((r = 1; r <= ROUNDS; r++)); do
  for limit in $LIMITS; do
    limit_bytes=$(bytes_of "$limit")
    port=$(free_port)
    logf=$OUT/memory-$limit-$r.server.log
    # bin/session-cluster is a node script: the pid setsid starts is the daemon's own
    # shellcheck disable=SC2086
    setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$port" --memory-limit "$limit" $DAEMON_ARGS </dev/null >"$logf" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    wait_port "$pid" "$port" "$logf"
    sleep 1
    before=$(status_kb "$pid" VmRSS)
    fill=$((limit_bytes * FILL))
    log "round $r, --memory-limit $limit: RSS at start $before kB; sending $fill bytes of $MIN-$MAX B values"
    json=$OUT/memory-$limit-$r.fill.json
    run_child node "$ROOT/bench/memory-fill.mjs" --port "$port" --bytes "$fill" --min "$MIN" --max "$MAX" >"$json" 2>"$OUT/memory-$limit-$r.fill.err" \
      || log "memory-fill failed (see $json, ${json%.json}.err)"
    sleep "$SETTLE"
    rss=$(status_kb "$pid" VmRSS)
    hwm=$(status_kb "$pid" VmHWM)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$limit" "$limit_bytes" "$r" "$before" "$rss" "$hwm" "$json" >>"$RESULTS"
    log "  -> RSS $rss kB, peak $hwm kB"
    stop_pids "$pid"
  done
done

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/memory-machine.txt"

node "$ROOT/bench/memory-report.mjs" "$RESULTS" "$OUT/memory-machine.txt" "$SLOPE_RESULTS" | tee "$OUT/memory.md"
