#!/usr/bin/env bash
# Benchmarks session-cluster against real memcached, side by side, on this machine.
#
#   npm run bench            (or: bash bench/run.sh)
#
# 1. Throughput: memcaslap, 90% get / 10% set, 40-byte keys, 512-byte values,
#    32 connections, fixed time, against `memcached -t 1 -m 1024` and the daemon.
# 2. Memory: 100,000 sessions of 2 KB loaded by bench/load-sessions.mjs; RSS
#    (VmRSS from /proc/<pid>/status) before and after, curr_items checked via `stats`.
#
# Every measurement gets a freshly started server on a free loopback port; the two
# servers alternate (memcached first in odd rounds, the daemon first in even ones) and
# the table shows medians over the rounds. All processes started here are stopped on exit.
#
# Knobs (environment):
#   BENCH_ROUNDS=5            rounds of the throughput benchmark
#   BENCH_MEM_ROUNDS=3        rounds of the memory benchmark (its figures barely vary)
#   BENCH_DURATION=10s        memcaslap -t
#   BENCH_THREADS=1           memcaslap -T (1 leaves the 2nd core to the server)
#   BENCH_CONCURRENCY=32      memcaslap -c
#   BENCH_PROTOCOLS="binary"  "ascii", "binary" or both (binary = memcaslap -B; php-memcached 3
#                             defaults to memcached.sess_binary_protocol=On)
#   BENCH_SESSIONS=100000     sessions loaded in the memory benchmark
#   BENCH_SESSION_SIZE=2048   bytes per session
#   BENCH_ONLY=               "throughput" or "memory" to run one benchmark
#   BENCH_SKIP_BUILD=1        do not run `npm run build`
#   BENCH_DAEMON_ARGS="--log-level warn"   extra daemon arguments
#   BENCH_NODE_FLAGS=         if set, run `node $BENCH_NODE_FLAGS dist/main.js` instead of
#                             bin/session-cluster (e.g. "--cpu-prof --cpu-prof-dir=bench/out/prof")
#   BENCH_DAEMON_MAIN=        run `node [$BENCH_NODE_FLAGS] $BENCH_DAEMON_MAIN` (another build of dist/main.js)
#   BENCH_FAKE_DAEMON=1       run a second memcached in the daemon's place (validates the scripts)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out
mkdir -p "$OUT"

ROUNDS=${BENCH_ROUNDS:-5}
MEM_ROUNDS=${BENCH_MEM_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10s}
THREADS=${BENCH_THREADS:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
# Binary only by default: memcaslap's ascii keys begin with 8 raw control bytes (e.g. 0x10),
# which protocol.txt forbids in keys and the daemon refuses, so an ascii run measures errors.
PROTOCOLS=${BENCH_PROTOCOLS:-binary}
SESSIONS=${BENCH_SESSIONS:-100000}
SESSION_SIZE=${BENCH_SESSION_SIZE:-2048}
ONLY=${BENCH_ONLY:-}
DAEMON_ARGS=${BENCH_DAEMON_ARGS---log-level warn}
MEMORY_LIMIT=1073741824
MEMCACHED_MB=1024

RESULTS=$OUT/results.tsv
: >"$RESULTS"

log() { printf '[bench] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- process handling
STARTED=()   # pids (each the leader of its own session/process group) started by us

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  # the server was started with setsid: signal its whole process group (wrappers + node)
  if [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

CHILD=""     # the client (memcaslap / load-sessions) running right now

cleanup() {
  local pid
  if [[ -n "$CHILD" ]]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
  for pid in "${STARTED[@]+"${STARTED[@]}"}"; do stop_pid "$pid"; done
  STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
  local keep=() p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sum of VmRSS (kB) of every live process in the server's session (setsid'ed), so a
# wrapper that forks node, or worker processes, are all counted.
rss_kb() {
  local sid=$1 total=0 p v
  for p in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
hwm_kb() {
  local sid=$1 total=0 p v
  for p in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# "utime stime" in clock ticks, summed over the server's session (all threads included)
cpu_ticks() {
  local sid=$1 u=0 st=0 p a b
  for p in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
    read -r a b < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12, $13 }') || continue
    u=$((u + ${a:-0})); st=$((st + ${b:-0}))
  done
  echo "$u $st"
}
CLK_TCK=$(getconf CLK_TCK)
procs_of() { ps -o pid=,rss=,args= --sid "$1" 2>/dev/null | sed 's/^ */    /' >&2 || true; }

# start_server memcached|daemon LOGFILE  -> sets SRV_PID SRV_PORT
start_server() {
  local kind=$1 logfile=$2 i
  if [[ "$kind" == daemon && "${BENCH_FAKE_DAEMON:-}" == 1 ]]; then kind=memcached; fi
  SRV_PORT=$(free_port)
  if [[ "$kind" == memcached ]]; then
    local asroot=()
    [[ $(id -u) == 0 ]] && asroot=(-u root)
    setsid memcached "${asroot[@]}" -l 127.0.0.1 -p "$SRV_PORT" -U 0 -t 1 -m "$MEMCACHED_MB" \
      </dev/null >"$logfile" 2>&1 &
  else
    # shellcheck disable=SC2086
    if [[ -n "${BENCH_NODE_FLAGS:-}${BENCH_DAEMON_MAIN:-}" ]]; then
      setsid node ${BENCH_NODE_FLAGS:-} "${BENCH_DAEMON_MAIN:-$ROOT/dist/main.js}" start --listen "127.0.0.1:$SRV_PORT" \
        --memory-limit "$MEMORY_LIMIT" $DAEMON_ARGS </dev/null >"$logfile" 2>&1 &
    else
      setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$SRV_PORT" \
        --memory-limit "$MEMORY_LIMIT" $DAEMON_ARGS </dev/null >"$logfile" 2>&1 &
    fi
  fi
  SRV_PID=$!
  STARTED+=("$SRV_PID")
  # ready = the daemon logged "ready", or (memcached / quiet log level) the port accepts
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      log "$kind exited during startup; its log ($logfile):"; sed 's/^/    /' "$logfile" >&2
      return 1
    fi
    if grep -q '"msg":"ready"' "$logfile" 2>/dev/null; then break; fi
    if port_open "$SRV_PORT"; then
      [[ "$kind" == memcached ]] && break
      sleep 0.5; break
    fi
    sleep 0.1
  done
  port_open "$SRV_PORT" || { log "$kind not accepting on $SRV_PORT after 30s; log:"; sed 's/^/    /' "$logfile" >&2; return 1; }
}

stop_server() { stop_pid "$SRV_PID"; forget_pid "$SRV_PID"; }

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }   # bench round server metric value

# ---------------------------------------------------------------- build + info
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
  log "npm run build"
  (cd "$ROOT" && npm run build --silent) >&2
fi
if [[ "${BENCH_FAKE_DAEMON:-}" != 1 && -z "${BENCH_NODE_FLAGS:-}${BENCH_DAEMON_MAIN:-}" && ! -x "$ROOT/bin/session-cluster" ]]; then
  log "bin/session-cluster missing or not executable"; exit 1
fi

{
  machine_lines
  echo "daemon: $([[ "${BENCH_FAKE_DAEMON:-}" == 1 ]] && echo 'FAKE (a second memcached)' || echo "session-cluster $(node -p "require('$ROOT/package.json').version")")"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: rounds=$ROUNDS mem_rounds=$MEM_ROUNDS duration=$DURATION threads=$THREADS concurrency=$CONCURRENCY protocols=\"$PROTOCOLS\" sessions=$SESSIONS size=$SESSION_SIZE daemon_args=\"$DAEMON_ARGS\"${BENCH_NODE_FLAGS:+ node_flags=\"$BENCH_NODE_FLAGS\"}${BENCH_DAEMON_MAIN:+ daemon_main=\"$BENCH_DAEMON_MAIN\"}"
} >"$OUT/machine.txt"
sed 's/^/[bench] /' "$OUT/machine.txt" >&2

order_for_round() { if (($1 % 2 == 1)); then echo "memcached daemon"; else echo "daemon memcached"; fi; }

# ---------------------------------------------------------------- 1. throughput
CFG=$OUT/memcaslap.cfg
write_memcaslap_cfg "$CFG"

run_throughput() {
  local r proto server logf tps secs
  secs=${DURATION%s}; [[ "$secs" =~ ^[0-9]+$ ]] || secs=600
  for ((r = 1; r <= ROUNDS; r++)); do
    for proto in $PROTOCOLS; do
      for server in $(order_for_round "$r"); do
        start_server "$server" "$OUT/tp-$proto-$server-$r.server.log" || { record "tp-$proto" "$r" "$server" tps FAIL; continue; }
        logf=$OUT/tp-$proto-$server-$r.memcaslap.log
        local flags=()
        [[ "$proto" == binary ]] && flags=(-B)
        log "throughput round $r/$ROUNDS $proto: $server (port $SRV_PORT, $DURATION)"
        local cpu0 cpu1
        cpu0=$(cpu_ticks "$SRV_PID")
        if run_child timeout $((secs + 60)) memcaslap -s "127.0.0.1:$SRV_PORT" -F "$CFG" -c "$CONCURRENCY" \
             -T "$THREADS" -t "$DURATION" "${flags[@]+"${flags[@]}"}" >"$logf" 2>&1; then :; else
          log "memcaslap against $server exited with $? (see $logf)"
        fi
        cpu1=$(cpu_ticks "$SRV_PID")
        tps=$(grep -oE 'TPS: [0-9]+' "$logf" | tail -1 | awk '{ print $2 }')
        local ops
        ops=$(grep -oE 'Ops: [0-9]+' "$logf" | tail -1 | awk '{ print $2 }')
        record "tp-$proto" "$r" "$server" ops "${ops:-FAIL}"
        # server CPU per operation (user, sys) in microseconds: steadier than TPS on a shared box
        record "tp-$proto" "$r" "$server" cpu_us_per_op "$(awk -v a="$cpu0" -v b="$cpu1" -v n="${ops:-0}" -v hz="$CLK_TCK" \
          'BEGIN { split(a, x, " "); split(b, y, " "); if (n > 0) printf "%.2f %.2f", (y[1]-x[1])*1e6/hz/n, (y[2]-x[2])*1e6/hz/n; else print "FAIL" }')"
        record "tp-$proto" "$r" "$server" tps "${tps:-FAIL}"
        record "tp-$proto" "$r" "$server" get_misses "$(awk '/^get_misses:/ { print $2 }' "$logf" | tail -1)"
        # a run only counts if the server answered like memcached: no error replies, and
        # the 90/10 mix really happened (memaslap retries refused sets instead of getting)
        record "tp-$proto" "$r" "$server" error_replies "$(grep -cE '^<[0-9]+ (CLIENT_ERROR|SERVER_ERROR|ERROR)' "$logf" || true)"
        record "tp-$proto" "$r" "$server" first_error "$(grep -m1 -E '^<[0-9]+ (CLIENT_ERROR|SERVER_ERROR|ERROR)' "$logf" | cut -d' ' -f2- | tr '\t' ' ' || true)"
        record "tp-$proto" "$r" "$server" cmd_get "$(awk '/^cmd_get:/ { print $2 }' "$logf" | tail -1)"
        record "tp-$proto" "$r" "$server" cmd_set "$(awk '/^cmd_set:/ { print $2 }' "$logf" | tail -1)"
        record "tp-$proto" "$r" "$server" rss_kb "$(rss_kb "$SRV_PID")"
        log "  -> TPS ${tps:-FAIL}"
        stop_server
      done
    done
  done
}

# ---------------------------------------------------------------- 2. memory
run_memory() {
  local r server before after hwm json
  for ((r = 1; r <= MEM_ROUNDS; r++)); do
    for server in $(order_for_round "$r"); do
      start_server "$server" "$OUT/mem-$server-$r.server.log" || { record mem "$r" "$server" rss_before_kb FAIL; continue; }
      sleep 1
      before=$(rss_kb "$SRV_PID")
      log "memory round $r/$MEM_ROUNDS: $server (port $SRV_PORT), RSS before $before kB; loading $SESSIONS x $SESSION_SIZE B"
      json=$OUT/mem-$server-$r.load.json
      if run_child node "$ROOT/bench/load-sessions.mjs" --host 127.0.0.1 --port "$SRV_PORT" \
           --count "$SESSIONS" --size "$SESSION_SIZE" >"$json" 2>"$OUT/mem-$server-$r.load.err"; then :; else
        log "load-sessions against $server failed (see $json / ${json%.json}.err)"
      fi
      sleep 3   # let the server settle (GC, freed buffers) as it would while idle
      after=$(rss_kb "$SRV_PID")
      hwm=$(hwm_kb "$SRV_PID")
      procs_of "$SRV_PID"
      record mem "$r" "$server" rss_before_kb "$before"
      record mem "$r" "$server" rss_after_kb "$after"
      record mem "$r" "$server" rss_peak_kb "$hwm"
      record mem "$r" "$server" load_json "$json"
      log "  -> RSS after $after kB (peak $hwm kB)"
      stop_server
    done
  done
}

[[ "$ONLY" == "" || "$ONLY" == throughput ]] && run_throughput
[[ "$ONLY" == "" || "$ONLY" == memory ]] && run_memory

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

node "$ROOT/bench/report.mjs" "$RESULTS" "$OUT/machine.txt" "$SESSIONS" | tee "$OUT/table.md"
