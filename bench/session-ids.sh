#!/usr/bin/env bash
# Minted vs hashed session ids: bash bench/session-ids.sh
#
# The same PHP session workload (bench/session-ids-load.mjs: memcached binary protocol, 64 users,
# each sticky to one of the 3 nodes, ADD lock / GET / SET 1-2 KB / DELETE lock per PHP request, a
# new session every 20 requests) against a fresh 3-node cluster (sync replication) per mode and
# round:
#   hashed   stock PHP ids (32 chars [a-z0-9]): placed by rendezvous hashing, so a sticky user's
#            node masters only about 1 session in 3 and forwards the rest;
#   minted   ids from `get __session_cluster__.mint` on the user's own node, which masters them.
# Reported per mode (medians): PHP requests/s, memcached commands/s, the share of client commands
# that crossed to another node (sum of cluster_forwarded over the nodes / commands sent) and of
# reads (sum of cluster_forwarded_reads / GETs sent), and req/s minted ÷ hashed per round. Rounds
# alternate the order (odd: hashed first, even: minted first).
#
# Every process runs on free loopback ports and is stopped on exit (trap). Raw logs and
# results.jsonl go to bench/out/session-ids/; the tables are printed (and written to
# bench/out/session-ids/table.md) for bench/RESULTS.md, whose prose is written by hand.
#
# Knobs (environment):
#   SESSION_IDS_ROUNDS=3               rounds (each runs both modes)
#   SESSION_IDS_DURATION_MS=10000      measured time per run
#   SESSION_IDS_WARMUP_MS=2000         load before the measurement (not counted)
#   SESSION_IDS_USERS=64               simulated users = client connections, spread over the nodes
#   SESSION_IDS_REQUESTS_PER_SESSION=20
#   SESSION_IDS_REPLICATION=sync       sync or async
#   BENCH_SKIP_BUILD=1                 do not run `npm run build`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out/session-ids
mkdir -p "$OUT"

ROUNDS=${SESSION_IDS_ROUNDS:-3}
DURATION_MS=${SESSION_IDS_DURATION_MS:-10000}
WARMUP_MS=${SESSION_IDS_WARMUP_MS:-2000}
USERS=${SESSION_IDS_USERS:-64}
PER_SESSION=${SESSION_IDS_REQUESTS_PER_SESSION:-20}
REPLICATION=${SESSION_IDS_REPLICATION:-sync}
MEMORY_LIMIT=1073741824
NODES=3
# the secret goes through the environment (ps shows command lines); nodes inherit it
export SESSION_CLUSTER_SECRET=bench-session-ids-secret-0123456789

rm -f "$OUT"/run-*
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
T_START=$(date +%s)

log() { printf '[session-ids] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- process handling
# (the same handling as bench/cluster.sh: each node is a session leader, stopped by group)
stop_on_exit   # bench/lib.sh: the client, then every node started, on any exit

# stop_pids, free_port, port_open, wait_port: bench/lib.sh


# start_cluster LOGPREFIX: a fresh 3-node cluster; sets C_PIDS and C_PORTS (client ports)
start_cluster() {
  local prefix=$1 i j peers pports=()
  C_PIDS=(); C_PORTS=()
  for ((i = 0; i < NODES; i++)); do pports+=("$(free_port)"); C_PORTS+=("$(free_port)"); done
  for ((i = 0; i < NODES; i++)); do
    peers=""
    for ((j = 0; j < NODES; j++)); do ((j == i)) || peers+="127.0.0.1:${pports[j]},"; done
    local args=(start --listen "127.0.0.1:${C_PORTS[i]}" --peer-listen "127.0.0.1:${pports[i]}" --peers "${peers%,}"
      --node-id "node$((i + 1))" --replication "$REPLICATION" --memory-limit "$MEMORY_LIMIT" --log-level warn)
    setsid "$ROOT/bin/session-cluster" "${args[@]}" </dev/null >"$prefix.node$((i + 1)).log" 2>&1 &
    C_PIDS+=($!); STARTED+=("$!")
    [[ $i == 0 ]] && echo "bin/session-cluster ${args[*]}" >"$OUT/node1.cmd"
  done
  for ((i = 0; i < NODES; i++)); do wait_port "${C_PIDS[i]}" "${C_PORTS[i]}" "$prefix.node$((i + 1)).log" || return 1; done
  local csv; csv=$(IFS=,; echo "${C_PORTS[*]}")
  node "$ROOT/bench/cluster-stats.mjs" --ports "$csv" --wait-members "$NODES" --timeout-ms 20000 >"$prefix.converged.json" || return 1
  # members alive is not yet every forwarding link up: wait until writes through every node work
  for ((i = 0; i < NODES; i++)); do
    node "$ROOT/bench/cluster-stats.mjs" --ports "${C_PORTS[i]}" --wait-serving 32 --timeout-ms 20000 >>"$prefix.serving.json" || return 1
  done
}

# ---------------------------------------------------------------- build + machine
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
  log "npm run build"
  (cd "$ROOT" && npm run build --silent) >&2
fi
{
  machine_lines | grep -v '^memca'
  echo "daemon: session-cluster $(node -p "require('$ROOT/package.json').version"), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] && echo ' + uncommitted work tree')"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: rounds=$ROUNDS duration_ms=$DURATION_MS warmup_ms=$WARMUP_MS users=$USERS requests_per_session=$PER_SESSION replication=$REPLICATION nodes=$NODES"
} >"$OUT/machine.txt"
sed 's/^/[session-ids] /' "$OUT/machine.txt" >&2

# ---------------------------------------------------------------- runs
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2 == 1)); then order="hashed minted"; else order="minted hashed"; fi
  for mode in $order; do
    prefix=$OUT/run-$r-$mode
    if ! start_cluster "$prefix"; then
      log "round $r $mode: cluster did not start"
      printf '{"round":%d,"mode":"%s","error":"cluster did not start"}\n' "$r" "$mode" >>"$RESULTS"
      stop_pids "${C_PIDS[@]+"${C_PIDS[@]}"}"; continue
    fi
    log "round $r/$ROUNDS: $mode (ports $(IFS=,; echo "${C_PORTS[*]}"), ${DURATION_MS} ms)"
    json=$prefix.json
    if run_child node "$ROOT/bench/session-ids-load.mjs" --ports "$(IFS=,; echo "${C_PORTS[*]}")" --mode "$mode" \
         --users "$USERS" --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" --requests-per-session "$PER_SESSION" \
         >"$json" 2>"$prefix.err"; then
      node -e 'const [f, r] = process.argv.slice(1); const j = JSON.parse(require("fs").readFileSync(f, "utf8"));
        console.log(JSON.stringify({ round: Number(r), ...j }));' "$json" "$r" >>"$RESULTS"
      log "  -> $(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
        console.log(`${j.reqPerSec.toFixed(0)} req/s, ${j.opsPerSec.toFixed(0)} ops/s, forwarded ${(100*j.forwardedShare).toFixed(1)} % of commands, ${(100*j.forwardedReadsShare).toFixed(1)} % of reads`)' "$json")"
    else
      log "  -> load generator failed: $(head -1 "$prefix.err")"
      printf '{"round":%d,"mode":"%s","error":%s}\n' "$r" "$mode" \
        "$(head -1 "$prefix.err" | node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8").trim()))')" >>"$RESULTS"
    fi
    stop_pids "${C_PIDS[@]}"
  done
done

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "runtime: $(($(date +%s) - T_START)) s" >>"$OUT/machine.txt"

{
  echo '```'
  cat "$OUT/machine.txt"
  echo '```'
  echo
  node "$ROOT/bench/session-ids-load.mjs" --report "$RESULTS"
} >"$OUT/table.md"
cat "$OUT/table.md"
