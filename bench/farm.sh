#!/usr/bin/env bash
# The PHP farm, end to end: nginx in front of three PHP servers (php-fpm pools php1..php3, round
# robin, as a load balancer spreads a farm's users), a page that reads and writes a session of
# about 2 KB on every request (bench/web/farm-page.php), and wrk sending the cookies of SESSIONS
# users in turn (bench/farm.lua), against each way of keeping the sessions, in one run:
#
#   files        PHP's files handler on one shared directory (as an NFS mount would be)
#   memcached    php-memcached's handler on one memcached (the reference)
#   redis        phpredis's handler on one redis-server
#   sc-single    php-memcached's handler on one session-cluster node
#   sc-3-stock   php-memcached's handler, each PHP server on its own node of a 3-node cluster
#   sc-3-sticky  the php-client on the same cluster (ids minted by the node of the PHP server that
#                created the session), nginx sticky by a route cookie the page sets
#
# Each handler runs with its own defaults (session locking on where it has it). Rounds interleave
# the stores, in a rotating order; reported per store: the median requests/s and its ratio to
# memcached's, the median p50 and p99, and the requests that failed (non-2xx, socket errors).
#
#   bash bench/farm.sh                 (raw output in bench/out/farm/, table on stdout)
#
# Knobs: FARM_SESSIONS=1000 FARM_CONNECTIONS=64 FARM_THREADS=2 FARM_DURATION=10 FARM_ROUNDS=3
#        FARM_WORKERS=8 (php-fpm workers per pool) FARM_TARGETS="files memcached ..." BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out/farm
rm -rf "$OUT"
mkdir -p "$OUT"
SESSIONS=${FARM_SESSIONS:-1000}
CONNECTIONS=${FARM_CONNECTIONS:-64}
THREADS=${FARM_THREADS:-2}
DURATION=${FARM_DURATION:-10}
ROUNDS=${FARM_ROUNDS:-3}
WORKERS=${FARM_WORKERS:-8}
read -r -a TARGETS <<<"${FARM_TARGETS:-files memcached redis sc-single sc-3-stock sc-3-sticky}"
log() { printf '[farm bench] %s\n' "$*" >&2; }
stop_on_exit   # bench/lib.sh: the driver, then every server started
# the cluster secret goes through the environment (ps shows command lines); the nodes inherit it
export SESSION_CLUSTER_SECRET=bench-farm-cluster-secret-0123456789

prepare_web_bench wrk   # bench/lib.sh: the packages it drives, then the build

{
  machine_lines
  web_machine_lines
  echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
  echo "settings: sessions=$SESSIONS connections=$CONNECTIONS threads=$THREADS duration=${DURATION}s rounds=$ROUNDS php_workers_per_pool=$WORKERS"
} >"$OUT/machine.txt"
sed 's/^/[farm bench] /' "$OUT/machine.txt" >&2

DIR=$OUT/run
web_docroot "$DIR" farm-page.php   # bench/lib.sh

# ---- the session stores ----
MC_PORT=$(free_port); REDIS_PORT=$(free_port); SINGLE_PORT=$(free_port); NGINX_PORT=$(free_port)
NODE_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
PEER_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
setsid memcached -u root -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 1024 </dev/null >"$OUT/memcached.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$MC_PORT" "$OUT/memcached.log"
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no </dev/null >"$OUT/redis.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$REDIS_PORT" "$OUT/redis.log"
setsid node "$ROOT/dist/main.js" start --listen "127.0.0.1:$SINGLE_PORT" --log-level warn </dev/null >"$OUT/sc-single.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$SINGLE_PORT" "$OUT/sc-single.log"
peers="127.0.0.1:${PEER_PORTS[0]},127.0.0.1:${PEER_PORTS[1]},127.0.0.1:${PEER_PORTS[2]}"
node_pids=()
for i in 0 1 2; do
  setsid node "$ROOT/dist/main.js" start --listen "127.0.0.1:${NODE_PORTS[$i]}" --peer-listen "127.0.0.1:${PEER_PORTS[$i]}" \
    --peers "$peers" --node-id "farm$((i + 1))" --log-level warn </dev/null >"$OUT/sc-node$((i + 1)).log" 2>&1 &
  STARTED+=($!); node_pids+=($!)
done
for i in 0 1 2; do wait_port "${node_pids[$i]}" "${NODE_PORTS[$i]}" "$OUT/sc-node$((i + 1)).log"; done

# ---- php-fpm: one master, three pools (php1..php3) per store ----
declare -A POOL_PORT
pool() {   # store, server number (1..3), then its settings (bench/lib.sh, fpm_pool)
  local name="${1}_$2" server=$2; shift 2
  POOL_PORT[$name]=$(free_port)
  fpm_pool "$name" "${POOL_PORT[$name]}" "$WORKERS" "env:FARM_SERVER=php$server" "$@"
}
{
  fpm_global "$DIR"
  for s in 1 2 3; do
    for target in "${TARGETS[@]}"; do
      case $target in
        files) pool "$target" "$s" "session.save_handler=files" "session.save_path=\"$DIR/files-sessions\"" ;;
        memcached) pool "$target" "$s" "session.save_handler=memcached" "session.save_path=\"127.0.0.1:$MC_PORT\"" ;;
        redis) pool "$target" "$s" "session.save_handler=redis" "session.save_path=\"tcp://127.0.0.1:$REDIS_PORT\"" ;;
        sc-single) pool "$target" "$s" "session.save_handler=memcached" "session.save_path=\"127.0.0.1:$SINGLE_PORT\"" ;;
        sc-3-stock) pool "$target" "$s" "session.save_handler=memcached" "session.save_path=\"127.0.0.1:${NODE_PORTS[$((s - 1))]}\"" ;;
        sc-3-sticky)
          # the php-client's one-line install (php-client/README.md): it reads its daemon from save_path
          pool "$target" "$s" "session.save_path=\"127.0.0.1:${NODE_PORTS[$((s - 1))]}\"" "admin:auto_prepend_file=$ROOT/php-client/bootstrap.php" ;;
        *) log "unknown target $target"; exit 2 ;;
      esac
    done
  done
} >"$DIR/php-fpm.conf"
setsid php-fpm8.2 "${FPM_ROOT[@]}" --nodaemonize --fpm-config "$DIR/php-fpm.conf" </dev/null >"$OUT/php-fpm.out" 2>&1 &
STARTED+=($!)
FPM_PID=$!
for name in "${!POOL_PORT[@]}"; do wait_port "$FPM_PID" "${POOL_PORT[$name]}" "$OUT/php-fpm.out"; done

# ---- nginx: round robin over the three PHP servers; sticky by the route cookie for sc-3-sticky ----
# No keepalive to php-fpm: a php-fpm worker stays bound to a kept-alive connection, so the idle
# connections one upstream group keeps would hold the workers another group (the same pool, named
# for stickiness) waits for.
{
  nginx_head "$DIR"
  for target in "${TARGETS[@]}"; do
    up=${target//-/_}
    echo "  upstream ${up}_rr { server 127.0.0.1:${POOL_PORT[${target}_1]}; server 127.0.0.1:${POOL_PORT[${target}_2]}; server 127.0.0.1:${POOL_PORT[${target}_3]}; }"
    for s in 1 2 3; do echo "  upstream ${up}_php$s { server 127.0.0.1:${POOL_PORT[${target}_$s]}; }"; done
  done
  echo "  map \$cookie_route \$sticky_server { php1 sc_3_sticky_php1; php2 sc_3_sticky_php2; php3 sc_3_sticky_php3; default sc_3_sticky_rr; }"
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT backlog=4096; root $DIR/docroot;"
  for target in "${TARGETS[@]}"; do
    up=${target//-/_}
    pass="${up}_rr"
    [[ $target == sc-3-sticky ]] && pass="\$sticky_server"
    echo "    location = /$target/page.php { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME \$document_root/page.php; fastcgi_read_timeout 60s; fastcgi_pass $pass; }"
  done
  echo "  }"
  echo "}"
} >"$DIR/nginx.conf"
setsid nginx -p "$DIR/nginx" -c "$DIR/nginx.conf" -g 'daemon off;' </dev/null >"$OUT/nginx.out" 2>&1 &
STARTED+=($!); wait_port "$!" "$NGINX_PORT" "$OUT/nginx.out"

# ---- the users: SESSIONS sessions per store, created by first visits, then a warm-up ----
for target in "${TARGETS[@]}"; do
  url="http://127.0.0.1:$NGINX_PORT/$target/page.php"
  run_child node "$ROOT/bench/farm-sessions.mjs" "$url" "$SESSIONS" "$OUT/sessions-$target.txt"
  run_child wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$ROOT/bench/farm.lua" "$url" -- "$OUT/sessions-$target.txt" >"$OUT/warmup-$target.txt"
  log "$target: $SESSIONS sessions created, warmed up"
done

# the 3-node cluster's commands and forwards so far, summed over its nodes: "commands forwarded"
cluster_counts() {
  local i
  for i in 0 1 2; do
    printf 'stats\r\nquit\r\n' | (exec 3<>"/dev/tcp/127.0.0.1/${NODE_PORTS[$i]}"; cat >&3; cat <&3) | tr -d '\r'
  done | awk '/STAT (cmd_get|cmd_set|cmd_touch|delete_hits|delete_misses|incr_hits|incr_misses) / { c += $3 } /STAT cluster_forwarded / { f += $3 } END { print c, f }'
}

for ((round = 1; round <= ROUNDS; round++)); do
  # a rotating order, so that no store always runs first or last
  order=("${TARGETS[@]:$(((round - 1) % ${#TARGETS[@]}))}" "${TARGETS[@]:0:$(((round - 1) % ${#TARGETS[@]}))}")
  for target in "${order[@]}"; do
    url="http://127.0.0.1:$NGINX_PORT/$target/page.php"
    before=$(cluster_counts)
    run_child wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$ROOT/bench/farm.lua" "$url" -- "$OUT/sessions-$target.txt" >"$OUT/wrk-$target-$round.txt"
    # what this run made the cluster do (nothing, for the stores outside it)
    echo "$before $(cluster_counts)" | awk '{ print $3 - $1, $4 - $2 }' >"$OUT/cluster-$target-$round.txt"
    log "round $round/$ROUNDS $target: $(awk '/Requests\/sec/ { print $2 " req/s" }' "$OUT/wrk-$target-$round.txt")"
  done
done
# what the cluster did meanwhile: how many commands crossed to another node
for i in 0 1 2; do
  printf 'stats\r\nquit\r\n' | (exec 3<>"/dev/tcp/127.0.0.1/${NODE_PORTS[$i]}"; cat >&3; cat <&3) | tr -d '\r' \
    | awk -v node="farm$((i + 1))" '/STAT (cmd_get|cmd_set|cluster_forwarded|cluster_forwarded_reads) / { printf "%s %s=%s\n", node, $2, $3 }'
done >"$OUT/cluster-stats.txt"

node "$ROOT/bench/farm-report.mjs" "$OUT" "${TARGETS[@]}" | tee "$OUT/report.md"
