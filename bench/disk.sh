#!/usr/bin/env bash
# Disk storage, side by side in one run, on this machine:
#
# 1. Throughput with 50 % writes (512-byte and 2 KB values, 40-byte keys, 32 connections):
#    memcaslap -B against memcached (the reference), the daemon in memory, the daemon with
#    --data-dir and --fsync everysec, and with --fsync always. Redis does not speak memcached's
#    protocol, so Redis (appendonly yes, appendfsync everysec and always) is driven by its own C
#    load tool, redis-benchmark, with the same connections, value sizes and key range: its SET
#    and GET runs, as many of each, give the rate of a 50 % write mix (2 / (1/set + 1/get)).
# 2. Recovery: 1,000,000 sessions of 2 KB written to a daemon with --data-dir, kill -9, restart:
#    the seconds its log says loading took ("disk storage: loaded"), and until it was ready.
# 3. Churn: sessions created, rewritten and expiring for a compressed day
#    (bench/disk-churn.mjs): what the data directory takes against the live data, each second.
#
#   bash bench/disk.sh                      (figures in bench/out/disk/, table on stdout)
#
# Knobs: BENCH_ROUNDS=3  BENCH_DURATION=10s  BENCH_SIZES="512 2048"  BENCH_RECOVERY_SESSIONS=1000000
#        BENCH_CHURN_SECONDS=180  BENCH_ONLY=throughput|recovery|churn  BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out/disk
rm -rf "$OUT"
mkdir -p "$OUT"
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10s}
SIZES=${BENCH_SIZES:-512 2048}
RECOVERY_SESSIONS=${BENCH_RECOVERY_SESSIONS:-1000000}
CHURN_SECONDS=${BENCH_CHURN_SECONDS:-180}
ONLY=${BENCH_ONLY:-}
CONCURRENCY=32
LOG_LEVEL=warn
RESULTS=$OUT/results.tsv
: >"$RESULTS"
log() { printf '[disk bench] %s\n' "$*" >&2; }
stop_on_exit   # bench/lib.sh: the client (memcaslap, redis-benchmark), then every server started

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  log "installing redis-server and redis-tools (Debian packages)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then (cd "$ROOT" && npm run build --silent) >&2; fi

{
  machine_lines
  echo "redis: $(redis-server --version | awk '{ print $3 }')"
  echo "filesystem: $(df -T "$OUT" | awk 'NR == 2 { print $2 " on " $1 }')"
  echo "settings: rounds=$ROUNDS duration=$DURATION sizes=\"$SIZES\" concurrency=$CONCURRENCY recovery_sessions=$RECOVERY_SESSIONS churn_seconds=$CHURN_SECONDS"
} >"$OUT/machine.txt"
sed 's/^/[disk bench] /' "$OUT/machine.txt" >&2

# start TARGET DIR -> SRV_PID SRV_PORT
start() {
  local target=$1 dir=$2
  SRV_PORT=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir"
  case "$target" in
    memcached) setsid memcached -u root -l 127.0.0.1 -p "$SRV_PORT" -U 0 -t 1 -m 4096 </dev/null >"$dir.log" 2>&1 & ;;
    memory) setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$SRV_PORT" --memory-limit 4g --log-level "$LOG_LEVEL" </dev/null >"$dir.log" 2>&1 & ;;
    disk-*) setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$SRV_PORT" --memory-limit 4g --log-level "$LOG_LEVEL" \
              --data-dir "$dir" --fsync "${target#disk-}" </dev/null >"$dir.log" 2>&1 & ;;
    redis-*) setsid redis-server --bind 127.0.0.1 --port "$SRV_PORT" --save '' --appendonly yes --appendfsync "${target#redis-}" \
              --dir "$dir" --daemonize no </dev/null >"$dir.log" 2>&1 & ;;
  esac
  SRV_PID=$!
  STARTED+=("$SRV_PID")
  wait_port "$SRV_PID" "$SRV_PORT" "$dir.log"
}
stop() { stop_pids "$SRV_PID"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }   # what size target round value
# json_field PATH < one JSON document: the field at PATH (e.g. stats.curr_items)
json_field() { node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(process.argv[1].split(".").reduce((o,k)=>o?.[k],JSON.parse(s.trim() === "" ? "{}" : s))))' "$1"; }

# ---------------------------------------------------------------- 1. throughput
run_throughput() {
  local r size target cfg out tps set get
  for ((r = 1; r <= ROUNDS; r++)); do
    for size in $SIZES; do
      cfg=$OUT/memcaslap-$size.cfg
      printf 'key\n40 40 1\nvalue\n%s %s 1\ncmd\n0 0.5\n1 0.5\n' "$size" "$size" >"$cfg"
      for target in memcached memory disk-everysec disk-always; do
        start "$target" "$OUT/tp-$target-$size-$r"
        out=$OUT/tp-$target-$size-$r.memcaslap
        run_child memcaslap -s "127.0.0.1:$SRV_PORT" -F "$cfg" -c "$CONCURRENCY" -T 1 -t "$DURATION" -B >"$out" 2>&1 || true
        tps=$(grep -oE 'TPS: [0-9]+' "$out" | tail -1 | awk '{ print $2 }')
        record tps "$size" "$target" "$r" "${tps:-FAIL}"
        log "round $r, $size B: $target ${tps:-FAIL} ops/s"
        stop
      done
      for target in redis-everysec redis-always; do
        start "$target" "$OUT/tp-$target-$size-$r"
        out=$OUT/tp-$target-$size-$r.redis-benchmark
        local n=400000
        [[ "$target" == redis-always ]] && n=100000
        run_child redis-benchmark -h 127.0.0.1 -p "$SRV_PORT" -c "$CONCURRENCY" -n "$n" -r 100000 -d "$size" -t set,get --csv >"$out" 2>&1 || true
        set=$(awk -F'","' '/^"SET"/ { print $2 }' "$out")
        get=$(awk -F'","' '/^"GET"/ { print $2 }' "$out")
        tps=$(awk -v s="${set:-0}" -v g="${get:-0}" 'BEGIN { if (s > 0 && g > 0) printf "%d", 2 / (1 / s + 1 / g); else print "FAIL" }')
        record tps "$size" "$target" "$r" "$tps"
        log "round $r, $size B: $target $tps ops/s (SET ${set:-?}, GET ${get:-?})"
        stop
      done
    done
  done
}

# ---------------------------------------------------------------- 2. recovery
run_recovery() {
  local dir=$OUT/recovery json t0 t1 line
  start disk-everysec "$dir"
  log "recovery: writing $RECOVERY_SESSIONS sessions of 2 KB"
  json=$OUT/recovery-load.json
  run_child node "$ROOT/bench/load-sessions.mjs" --host 127.0.0.1 --port "$SRV_PORT" --count "$RECOVERY_SESSIONS" --size 2048 --verify 1000 \
    --timeout-ms 1800000 >"$json" 2>"$OUT/recovery-load.err" || log "load failed (see $json)"
  record recovery files_bytes - - "$(du -sb "$dir" | awk '{ print $1 }')"
  kill -KILL -- "-$SRV_PID" 2>/dev/null || kill -KILL "$SRV_PID"
  wait "$SRV_PID" 2>/dev/null || true
  STARTED=()
  SRV_PORT=$(free_port)
  t0=$(date +%s.%N)
  setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$SRV_PORT" --memory-limit 4g --data-dir "$dir" </dev/null >"$dir.restart.log" 2>&1 &
  SRV_PID=$!
  STARTED+=("$SRV_PID")
  # Loading a million sessions takes a while: the port opens once they are all back.
  wait_port "$SRV_PID" "$SRV_PORT" "$dir.restart.log" 300
  t1=$(date +%s.%N)
  line=$(grep '"disk storage: loaded"' "$dir.restart.log")
  record recovery load_seconds - - "$(json_field seconds <<<"$line")"
  record recovery records - - "$(json_field records <<<"$line")"
  record recovery items - - "$(json_field items <<<"$line")"
  record recovery start_to_port_open_seconds - - "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  record recovery verify - - "$(node "$ROOT/bench/load-sessions.mjs" --host 127.0.0.1 --port "$SRV_PORT" --stats-only | json_field stats.curr_items)"
  # The values come back into memory in the background once the port is open.
  for _ in $(seq 1 300); do grep -q '"disk storage: values warmed' "$dir.restart.log" && break; sleep 1; done
  line=$(grep '"disk storage: values warmed' "$dir.restart.log" || true)
  record recovery warm_seconds - - "$(json_field seconds <<<"$line")"
  record recovery warm_values - - "$(json_field values <<<"$line")"
  log "recovery: $(grep -E '^recovery' "$RESULTS" | cut -f2,5 | tr '\t\n' '= ')"
  stop
}

# ---------------------------------------------------------------- 3. churn
run_churn() {
  local dir=$OUT/churn
  LOG_LEVEL=info
  start disk-everysec "$dir"
  log "churn: $CHURN_SECONDS s of sessions living 20 s"
  run_child node "$ROOT/bench/disk-churn.mjs" --port "$SRV_PORT" --data-dir "$dir" --seconds "$CHURN_SECONDS" >"$OUT/churn.jsonl" || log "churn failed"
  record churn peak_ratio - - "$(tail -1 "$OUT/churn.jsonl" | json_field peakRatioAfterFirstLifetime)"
  record churn final_ratio - - "$(tail -2 "$OUT/churn.jsonl" | head -1 | json_field ratio)"
  record churn compaction_passes - - "$(grep -c '"disk storage: compacted"' "$dir.log" || true)"
  stop
}

[[ "$ONLY" == "" || "$ONLY" == throughput ]] && run_throughput
[[ "$ONLY" == "" || "$ONLY" == recovery ]] && run_recovery
[[ "$ONLY" == "" || "$ONLY" == churn ]] && run_churn
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
node "$ROOT/bench/disk-report.mjs" "$RESULTS" "$OUT/machine.txt" | tee "$OUT/table.md"
