#!/usr/bin/env bash
# Cluster benchmarks: throughput and failover against memcached: bash bench/cluster.sh
#
# 1. Throughput: memcaslap -B, 90% get / 10% set, 40-byte keys, 512-byte values, -c 32 -T 1,
#    fixed time, in one run against
#      memcached -t 1 -m 1024 | a single daemon | a 2-node cluster | a 3-node cluster (sync)
#    memcaslap always talks to ONE node (node1), as PHP talks to its local daemon; the other nodes
#    get forwarded commands and replicas. Rounds alternate the order (odd: memcached first, even:
#    3-node cluster first); the table gives medians and ratios to memcached.
# 2. Failover: a fresh 3-node cluster per run; 200 sessions written through node1; SIGKILL of node3;
#    bench/failover.mjs measures the time until every session reads back through node1 again (and
#    until a new write to every session is acknowledged). By default it runs with heartbeat
#    100 ms / failure timeout 600 ms, with 200 / 1000 (the daemon's defaults are now 200 / 800),
#    and 100 / 600 again polled every 50 ms instead of 10 (to show how much the polling load
#    itself adds on 2 shared cores).
#
# Every process runs on free loopback ports and is stopped on exit (trap). Output: raw logs and
# results.tsv in bench/out/cluster/, the markdown summary printed and written to
# bench/CLUSTER-RESULTS.md.
#
# Knobs (environment):
#   CLUSTER_ROUNDS=3            throughput rounds
#   CLUSTER_DURATION=10s        memcaslap -t
#   CLUSTER_CONCURRENCY=32      memcaslap -c
#   CLUSTER_THREADS=1           memcaslap -T
#   CLUSTER_FAILOVER_RUNS=5     failover runs per heartbeat/timeout setting
#   CLUSTER_FAILOVER_SETTINGS="100:600 200:1000 100:600:50"
#                               heartbeat-ms:failure-timeout-ms[:poll interval ms] (interval default 10:
#                               the tight loop; the third set shows what a lighter poll changes)
#   CLUSTER_FAILOVER_KEYS=200   sessions written before the kill
#   CLUSTER_ONLY=               "throughput" or "failover"
#   CLUSTER_RESULTS_FILE=bench/CLUSTER-RESULTS.md   where the summary goes ("-": print only)
#   BENCH_SKIP_BUILD=1          do not run `npm run build`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out/cluster
mkdir -p "$OUT"

ROUNDS=${CLUSTER_ROUNDS:-3}
DURATION=${CLUSTER_DURATION:-10s}
CONCURRENCY=${CLUSTER_CONCURRENCY:-32}
THREADS=${CLUSTER_THREADS:-1}
FO_RUNS=${CLUSTER_FAILOVER_RUNS:-5}
FO_SETTINGS=${CLUSTER_FAILOVER_SETTINGS:-100:600 200:1000 100:600:50}
FO_KEYS=${CLUSTER_FAILOVER_KEYS:-200}
ONLY=${CLUSTER_ONLY:-}
RESULTS_FILE=${CLUSTER_RESULTS_FILE:-$ROOT/bench/CLUSTER-RESULTS.md}
MEMORY_LIMIT=1073741824
DAEMON_LOG_LEVEL=warn
# the secret goes through the environment (ps shows command lines); nodes inherit it
export SESSION_CLUSTER_SECRET=bench-cluster-secret-0123456789

rm -f "$OUT"/tp-* "$OUT"/fo-*   # this script's own logs of an earlier run
RESULTS=$OUT/results.tsv
: >"$RESULTS"
T_START=$(date +%s)

log() { printf '[cluster-bench] %s\n' "$*" >&2; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }   # bench round target metric value

# ---------------------------------------------------------------- process handling
stop_on_exit   # bench/lib.sh: the client, then every node started, on any exit

# stop_pids, free_port, port_open, wait_port: bench/lib.sh

# "utime stime" in clock ticks, summed over the sessions of every pid given
cpu_ticks() {
  local u=0 st=0 sid p a b
  for sid in "$@"; do
    for p in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
      read -r a b < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12, $13 }') || continue
      u=$((u + ${a:-0})); st=$((st + ${b:-0}))
    done
  done
  echo "$u $st"
}
rss_kb() {
  local total=0 sid p v
  for sid in "$@"; do
    for p in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
      v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)


# start_target KIND LOGPREFIX [HEARTBEAT_MS FAILURE_TIMEOUT_MS]
#   KIND: memcached | daemon | cluster2 | cluster3
#   sets T_PIDS (node1 first), T_PORTS (client ports), T_PORT (= node1's), T_NODES (node ids)
start_target() {
  local kind=$1 prefix=$2 hb=${3:-} ft=${4:-} n i j peers
  T_PIDS=(); T_PORTS=(); T_NODES=()
  case "$kind" in
    memcached)
      local asroot=(); [[ $(id -u) == 0 ]] && asroot=(-u root)
      T_PORT=$(free_port)
      setsid memcached "${asroot[@]}" -l 127.0.0.1 -p "$T_PORT" -U 0 -t 1 -m 1024 </dev/null >"$prefix.log" 2>&1 &
      T_PIDS=($!); T_PORTS=("$T_PORT"); STARTED+=("$!")
      wait_port "$!" "$T_PORT" "$prefix.log" || return 1
      ;;
    daemon)
      T_PORT=$(free_port)
      setsid "$ROOT/bin/session-cluster" start --listen "127.0.0.1:$T_PORT" --memory-limit "$MEMORY_LIMIT" \
        --log-level "$DAEMON_LOG_LEVEL" </dev/null >"$prefix.log" 2>&1 &
      T_PIDS=($!); T_PORTS=("$T_PORT"); STARTED+=("$!")
      wait_port "$!" "$T_PORT" "$prefix.log" || return 1
      ;;
    cluster*)
      n=${kind#cluster}
      local pports=()
      for ((i = 0; i < n; i++)); do pports+=("$(free_port)"); T_PORTS+=("$(free_port)"); T_NODES+=("node$((i + 1))"); done
      for ((i = 0; i < n; i++)); do
        peers=""
        for ((j = 0; j < n; j++)); do ((j == i)) || peers+="127.0.0.1:${pports[j]},"; done
        local args=(start --listen "127.0.0.1:${T_PORTS[i]}" --peer-listen "127.0.0.1:${pports[i]}" --peers "${peers%,}"
          --node-id "${T_NODES[i]}" --replication sync --memory-limit "$MEMORY_LIMIT" --log-level "$DAEMON_LOG_LEVEL")
        [[ -n "$hb" ]] && args+=(--heartbeat-ms "$hb" --failure-timeout-ms "$ft")
        setsid "$ROOT/bin/session-cluster" "${args[@]}" </dev/null >"$prefix.node$((i + 1)).log" 2>&1 &
        T_PIDS+=($!); STARTED+=("$!")
        # one command line, for the results file
        [[ $i == 0 ]] && echo "bin/session-cluster ${args[*]}" >"$prefix.cmd"
      done
      T_PORT=${T_PORTS[0]}
      for ((i = 0; i < n; i++)); do wait_port "${T_PIDS[i]}" "${T_PORTS[i]}" "$prefix.node$((i + 1)).log" || return 1; done
      local csv; csv=$(IFS=,; echo "${T_PORTS[*]}")
      node "$ROOT/bench/cluster-stats.mjs" --ports "$csv" --wait-members "$n" --timeout-ms 20000 >"$prefix.converged.json" || return 1
      ;;
  esac
}

# ---------------------------------------------------------------- build + machine
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
  log "npm run build"
  (cd "$ROOT" && npm run build --silent) >&2
fi
{
  machine_lines
  echo "daemon: session-cluster $(node -p "require('$ROOT/package.json').version"), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] && echo ' + uncommitted work tree')"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: rounds=$ROUNDS duration=$DURATION concurrency=$CONCURRENCY threads=$THREADS failover_runs=$FO_RUNS failover_settings=\"$FO_SETTINGS\" failover_keys=$FO_KEYS"
} >"$OUT/machine.txt"
sed 's/^/[cluster-bench] /' "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- 1. throughput
CFG=$OUT/memcaslap.cfg
write_memcaslap_cfg "$CFG"

TARGETS="memcached daemon cluster2 cluster3"
order_for_round() { if (($1 % 2 == 1)); then echo "$TARGETS"; else echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' '; fi; }

run_throughput() {
  local r t logf secs tps ops cpu0 cpu1 i
  secs=${DURATION%s}; [[ "$secs" =~ ^[0-9]+$ ]] || secs=600
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in $(order_for_round "$r"); do
      if ! start_target "$t" "$OUT/tp-$t-$r"; then record tp "$r" "$t" tps FAIL; stop_pids "${T_PIDS[@]+"${T_PIDS[@]}"}"; continue; fi
      if [[ "$t" == cluster* ]]; then
        # every node alive is not yet every forwarding link up: wait until writes through node1 work
        if ! node "$ROOT/bench/cluster-stats.mjs" --ports "$T_PORT" --wait-serving 64 --timeout-ms 20000 >"$OUT/tp-$t-$r.serving.json"; then
          record tp "$r" "$t" tps FAIL; stop_pids "${T_PIDS[@]}"; continue
        fi
        record tp "$r" "$t" serving "$(cat "$OUT/tp-$t-$r.serving.json")"
      fi
      logf=$OUT/tp-$t-$r.memcaslap.log
      log "throughput round $r/$ROUNDS: $t (node1 port $T_PORT, $DURATION)"
      cpu0=$(cpu_ticks "${T_PIDS[@]}")
      run_child timeout $((secs + 60)) memcaslap -s "127.0.0.1:$T_PORT" -F "$CFG" -c "$CONCURRENCY" -T "$THREADS" \
        -t "$DURATION" -B >"$logf" 2>&1 || log "memcaslap against $t exited with $? (see $logf)"
      cpu1=$(cpu_ticks "${T_PIDS[@]}")
      tps=$(grep -oE 'TPS: [0-9]+' "$logf" | tail -1 | awk '{ print $2 }')
      ops=$(grep -oE 'Ops: [0-9]+' "$logf" | tail -1 | awk '{ print $2 }')
      record tp "$r" "$t" tps "${tps:-FAIL}"
      record tp "$r" "$t" ops "${ops:-FAIL}"
      record tp "$r" "$t" cpu_us_per_op "$(awk -v a="$cpu0" -v b="$cpu1" -v n="${ops:-0}" -v hz="$CLK_TCK" \
        'BEGIN { split(a, x, " "); split(b, y, " "); if (n > 0) printf "%.2f %.2f", (y[1]-x[1])*1e6/hz/n, (y[2]-x[2])*1e6/hz/n; else print "FAIL" }')"
      record tp "$r" "$t" error_replies "$(grep -cE '^<[0-9]+ (CLIENT_ERROR|SERVER_ERROR|ERROR)' "$logf" || true)"
      record tp "$r" "$t" cmd_get "$(awk '/^cmd_get:/ { print $2 }' "$logf" | tail -1)"
      record tp "$r" "$t" cmd_set "$(awk '/^cmd_set:/ { print $2 }' "$logf" | tail -1)"
      record tp "$r" "$t" get_misses "$(awk '/^get_misses:/ { print $2 }' "$logf" | tail -1)"
      record tp "$r" "$t" rss_kb "$(rss_kb "${T_PIDS[@]}")"
      if [[ "$t" == cluster* ]]; then
        for ((i = 0; i < ${#T_PORTS[@]}; i++)); do
          record tp "$r" "$t" "stats_node$((i + 1))" "$(node "$ROOT/bench/cluster-stats.mjs" --ports "${T_PORTS[i]}" --timeout-ms 3000 \
            --names cluster_members,curr_items,cmd_get,cmd_set,cluster_forwarded,cluster_forward_failures,cluster_replicated,cluster_replicas_applied,cluster_replication_failures 2>&1 || true)"
        done
      fi
      log "  -> TPS ${tps:-FAIL}"
      stop_pids "${T_PIDS[@]}"
    done
  done
}

# ---------------------------------------------------------------- 2. failover
run_failover() {
  local setting hb ft iv r json b rest
  for setting in $FO_SETTINGS; do
    hb=${setting%%:*}; rest=${setting#*:}; ft=${rest%%:*}; iv=10
    [[ "$rest" == *:* ]] && iv=${rest#*:}
    b=fo-$hb-$ft-$iv
    for ((r = 1; r <= FO_RUNS; r++)); do
      json=$OUT/$b-$r.json
      if ! start_target cluster3 "$OUT/$b-$r" "$hb" "$ft"; then
        record "$b" "$r" cluster3 result '{"error":"start failed"}'; stop_pids "${T_PIDS[@]}"; continue
      fi
      log "failover $hb/$ft ms (poll every $iv ms), run $r/$FO_RUNS: SIGKILL node3 (pid ${T_PIDS[2]})"
      if run_child node "$ROOT/bench/failover.mjs" --ports "$(IFS=,; echo "${T_PORTS[*]}")" --kill-pid "${T_PIDS[2]}" \
           --node-c node3 --keys "$FO_KEYS" --interval-ms "$iv" --seed "$b-$r" >"$json" 2>"${json%.json}.err"; then
        log "  -> $(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(`read ${j.readAllMs} ms, write ${j.writeAllMs} ms, dead after ${j.deadMs} ms, lost ${j.lost}`)' "$json")"
        record "$b" "$r" cluster3 result "$(tr -d '\n\t' <"$json")"
      else
        log "  -> failover.mjs failed: $(head -1 "${json%.json}.err")"
        record "$b" "$r" cluster3 result "{\"error\":$(head -1 "${json%.json}.err" | node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8").trim()))')}"
      fi
      stop_pids "${T_PIDS[@]}"
    done
  done
}

[[ "$ONLY" == "" || "$ONLY" == throughput ]] && run_throughput
[[ "$ONLY" == "" || "$ONLY" == failover ]] && run_failover

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "runtime: $(($(date +%s) - T_START)) s" >>"$OUT/machine.txt"

node "$ROOT/bench/cluster-report.mjs" "$RESULTS" "$OUT/machine.txt" "$OUT" >"$OUT/CLUSTER-RESULTS.md"
cat "$OUT/CLUSTER-RESULTS.md"
if [[ "$RESULTS_FILE" != - ]]; then
  cp "$OUT/CLUSTER-RESULTS.md" "$RESULTS_FILE"
  log "written to $RESULTS_FILE"
fi
