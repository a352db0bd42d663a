#!/usr/bin/env bash
# Session locks under a browser-like burst, side by side in one run on this machine: nginx in
# front of php-fpm8.2, USERS browsers each firing BURST concurrent requests at one session page
# that holds its session HOLD_MS (a page and its ajax calls; bench/web/lock-page.php, driven by
# bench/lock-burst.mjs), against each session store:
#
#   memcached       php-memcached on memcached (its default lock settings: 5 tries 150 ms apart)
#   sc              php-memcached on session-cluster, lock handoff off (the default)
#   sc-handoff      php-memcached on session-cluster with --lock-wait-ms 1000
#   files           PHP's files handler (flock: the lock is handed over by the kernel)
#   redis           phpredis on redis-server, with its session locking on (its default waits)
#
# Reported per store: p50 and p99 of a request, and the requests whose session_start() failed,
# each the median of REPEATS runs taken in turn.
#
#   bash bench/locks.sh                      (figures in bench/out/locks/, table on stdout)
#
# Knobs: BENCH_USERS=100 BENCH_BURST=8 BENCH_ROUNDS=5 BENCH_HOLD_MS=20 BENCH_WORKERS=48
#        BENCH_REPEATS=3 BENCH_SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
OUT=$ROOT/bench/out/locks
rm -rf "$OUT"
mkdir -p "$OUT"
USERS=${BENCH_USERS:-100}
BURST=${BENCH_BURST:-8}
ROUNDS=${BENCH_ROUNDS:-5}
HOLD_MS=${BENCH_HOLD_MS:-20}
WORKERS=${BENCH_WORKERS:-48}
REPEATS=${BENCH_REPEATS:-3}
RESULTS=$OUT/results.tsv
: >"$RESULTS"
log() { printf '[locks bench] %s\n' "$*" >&2; }
stop_on_exit   # bench/lib.sh: the driver, then every server started

prepare_web_bench   # bench/lib.sh: the packages it drives, then the build

{
  machine_lines
  web_machine_lines
  echo "php-memcached locking: $(php8.2 -i | awk '/^memcached.sess_lock_(wait_min|wait_max|retries) / { printf "%s=%s ", $1, $3 }')"
  echo "phpredis locking: $(php8.2 -i | awk '/^redis.session.lock_(wait_time|retries|expire) / { printf "%s=%s ", $1, $3 }')"
  echo "settings: users=$USERS burst=$BURST rounds=$ROUNDS hold_ms=$HOLD_MS php_workers=$WORKERS repeats=$REPEATS"
} >"$OUT/machine.txt"
sed 's/^/[locks bench] /' "$OUT/machine.txt" >&2

DIR=$OUT/run
web_docroot "$DIR" lock-page.php   # bench/lib.sh

MC_PORT=$(free_port); SC_PORT=$(free_port); HANDOFF_PORT=$(free_port); REDIS_PORT=$(free_port); NGINX_PORT=$(free_port)
setsid memcached -u root -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 1024 </dev/null >"$OUT/memcached.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$MC_PORT" "$OUT/memcached.log"
setsid node "$ROOT/dist/main.js" start --listen "127.0.0.1:$SC_PORT" --log-level warn </dev/null >"$OUT/sc.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$SC_PORT" "$OUT/sc.log"
setsid node "$ROOT/dist/main.js" start --listen "127.0.0.1:$HANDOFF_PORT" --lock-wait-ms 1000 --log-level warn </dev/null >"$OUT/sc-handoff.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$HANDOFF_PORT" "$OUT/sc-handoff.log"
setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no </dev/null >"$OUT/redis.log" 2>&1 &
STARTED+=($!); wait_port "$!" "$REDIS_PORT" "$OUT/redis.log"

# One php-fpm master, one pool per store, each on its own port.
TARGETS=(memcached sc sc-handoff files redis)
declare -A POOL_PORT
pool() {   # name, then its session settings, NAME=VALUE each (bench/lib.sh, fpm_pool)
  local name=$1; shift
  POOL_PORT[$name]=$(free_port)
  fpm_pool "$name" "${POOL_PORT[$name]}" "$WORKERS" "env:HOLD_MS=$HOLD_MS" "$@"
}
{
  fpm_global "$DIR"
  pool memcached "session.save_handler=memcached" "session.save_path=\"127.0.0.1:$MC_PORT\""
  pool sc "session.save_handler=memcached" "session.save_path=\"127.0.0.1:$SC_PORT\""
  pool sc-handoff "session.save_handler=memcached" "session.save_path=\"127.0.0.1:$HANDOFF_PORT\""
  pool files "session.save_handler=files" "session.save_path=\"$DIR/files-sessions\""
  pool redis "session.save_handler=redis" "session.save_path=\"tcp://127.0.0.1:$REDIS_PORT\"" "redis.session.locking_enabled=1"
} >"$DIR/php-fpm.conf"
setsid php-fpm8.2 "${FPM_ROOT[@]}" --nodaemonize --fpm-config "$DIR/php-fpm.conf" </dev/null >"$OUT/php-fpm.out" 2>&1 &
STARTED+=($!)
for target in "${TARGETS[@]}"; do wait_port "${STARTED[-1]}" "${POOL_PORT[$target]}" "$OUT/php-fpm.out"; done

{
  nginx_head "$DIR"
  for target in "${TARGETS[@]}"; do echo "  upstream pool_${target//-/_} { server 127.0.0.1:${POOL_PORT[$target]}; }"; done
  echo "  server {"
  echo "    listen 127.0.0.1:$NGINX_PORT; root $DIR/docroot;"
  for target in "${TARGETS[@]}"; do
    echo "    location = /$target/page.php { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME \$document_root/page.php; fastcgi_read_timeout 60s; fastcgi_pass pool_${target//-/_}; }"
  done
  echo "  }"
  echo "}"
} >"$DIR/nginx.conf"
setsid nginx -p "$DIR/nginx" -c "$DIR/nginx.conf" -g 'daemon off;' </dev/null >"$OUT/nginx.out" 2>&1 &
STARTED+=($!); wait_port "$!" "$NGINX_PORT" "$OUT/nginx.out"

for ((repeat = 1; repeat <= REPEATS; repeat++)); do
  for target in "${TARGETS[@]}"; do
    log "repeat $repeat/$REPEATS: $target ($USERS users x $BURST concurrent requests x $ROUNDS rounds, session held $HOLD_MS ms)"
    line=$(run_child node "$ROOT/bench/lock-burst.mjs" "http://127.0.0.1:$NGINX_PORT/$target/page.php" "$USERS" "$BURST" "$ROUNDS")
    log "  $line"
    printf '%s\t%s\t%s\n' "$target" "$repeat" "$line" >>"$RESULTS"
  done
done
printf 'locks\t%s\n' "$(printf 'stats\r\nquit\r\n' | (exec 3<>"/dev/tcp/127.0.0.1/$HANDOFF_PORT"; cat >&3; cat <&3) | tr -d '\r' | awk '/session_lock/ { printf "%s=%s ", $2, $3 }')" >>"$RESULTS"

node "$ROOT/bench/locks-report.mjs" "$RESULTS" "$OUT/machine.txt" | tee "$OUT/report.md"
