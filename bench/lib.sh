# Shared by the bench scripts (sourced, not run).

# The machine and tool versions a result was measured on, one "name: value" line each.
machine_lines() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "ram: $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "node: $(node --version)"
  echo "memcached: $(memcached -V | awk '{ print $2 }')"
  echo "memcaslap: $(memcaslap -V 2>&1 | head -1)"
}

# memcaslap's workload file (-F): 40-byte keys, 512-byte values, 10% set / 90% get.
# Format (memaslap): key/value lines are "min max proportion"; cmd 0 = set, 1 = get.
write_memcaslap_cfg() {
  cat >"$1" <<'CFG'
key
40 40 1
value
512 512 1
cmd
0 0.1
1 0.9
CFG
}

# Runs a client in the background and waits for it, so INT/TERM traps run at once; the caller's
# cleanup kills $CHILD if it is still running.
run_child() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# ---- stopping what a script started (bench/cluster.sh, memory.sh, session-ids.sh, disk.sh) ----
STARTED=()   # pids started by the script, each the leader of its own session (setsid)
CHILD=""     # the client running right now (run_child)

# The client first, then every process group started, however the script ends.
cleanup_processes() {
  if [[ -n "$CHILD" ]]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
  stop_pids "${STARTED[@]+"${STARTED[@]}"}"
  STARTED=()
}
stop_on_exit() {
  trap cleanup_processes EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# ---- processes and ports (bench/cluster.sh, bench/session-ids.sh) -----------------------------
# The caller keeps STARTED (pids it started, each the leader of its own session) and defines log().

# SIGTERM to every process group given, then wait (SIGKILL after 5 s) — all at once, not in turn
stop_pids() {
  local pid i alive
  (($# == 0)) && return 0
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  local keep=() p q gone
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    gone=0; for q in "$@"; do [[ "$p" == "$q" ]] && gone=1; done
    ((gone)) || keep+=("$p")
  done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

USED_PORTS=" "
free_port() {
  local p
  while :; do
    p=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});')
    [[ "$USED_PORTS" == *" $p "* ]] || break
  done
  USED_PORTS+="$p "
  echo "$p"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {   # pid port logfile [seconds, default 30]
  local i limit=${4:-30}
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$1" 2>/dev/null; then log "pid $1 exited during startup; log ($3):"; sed 's/^/    /' "$3" >&2; return 1; fi
    port_open "$2" && return 0
    sleep 0.1
  done
  log "port $2 not open after $limit s; log ($3):"; sed 's/^/    /' "$3" >&2; return 1
}

# ---- the web benches (bench/locks.sh, bench/farm.sh) ----------------------------------------
# Installs what a web bench drives, when missing (Debian packages): nginx, php-fpm, redis-server
# with phpredis, php-memcached, and the programs named as arguments (wrk); then builds the daemon
# unless BENCH_SKIP_BUILD=1. The caller defines log() and ROOT.
prepare_web_bench() {
  local missing=() program
  command -v nginx >/dev/null || missing+=(nginx)
  command -v php-fpm8.2 >/dev/null || missing+=(php8.2-fpm)
  command -v redis-server >/dev/null || missing+=(redis-server)
  for program in "$@"; do command -v "$program" >/dev/null || missing+=("$program"); done
  php8.2 -m | grep -qx redis || missing+=(php8.2-redis)
  php8.2 -m | grep -qx memcached || missing+=(php8.2-memcached)
  if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]} (Debian packages)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then (cd "$ROOT" && npm run build --silent) >&2; fi
}

# The docroot of a web bench under DIR: PAGE (a file of bench/web/) as page.php with what the
# pages share beside it, a directory for the files handler's sessions and nginx's temporary
# files, readable and writable by nginx's and php-fpm's workers. The caller defines ROOT.
web_docroot() {   # DIR PAGE
  local dir=$1 page=$2
  mkdir -p "$dir/docroot" "$dir/files-sessions" "$dir/nginx/tmp"
  cp "$ROOT/bench/web/$page" "$dir/docroot/page.php"
  cp "$ROOT/bench/web/start-session.php" "$dir/docroot/"
  chmod -R a+rwX "$dir"
  chmod a+x "$(dirname "$dir")" "$ROOT/bench/out" 2>/dev/null || true
}

# The web servers' versions, one "name: value" line each, after machine_lines.
web_machine_lines() {
  echo "redis: $(redis-server --version | awk '{ print $3 }')"
  echo "nginx: $(nginx -v 2>&1 | awk -F/ '{ print $2 }')"
  echo "php: $(php8.2 -r 'echo PHP_VERSION;'), memcached ext $(php8.2 -r 'echo phpversion("memcached");'), redis ext $(php8.2 -r 'echo phpversion("redis");')"
}

# php-fpm refuses root pools unless told (-R), and nginx's workers run as nobody otherwise: as
# root, both run as root, so they read the bench's directory and write its session files.
RUN_AS=""; NGINX_USER=""; FPM_ROOT=()
if [[ $(id -u) == 0 ]]; then RUN_AS=$'user = root\ngroup = root'; NGINX_USER="user root;"; FPM_ROOT=(-R); fi

# php-fpm's [global] section, for a master whose pid and log live in DIR.
fpm_global() {   # DIR
  printf '[global]\npid = %s/php-fpm.pid\nerror_log = %s/php-fpm.log\n\n' "$1" "$1"
}

# One static php-fpm pool on 127.0.0.1:PORT, strict mode and session GC off, then its settings:
# NAME=VALUE a php_value, admin:NAME=VALUE a php_admin_value, env:NAME=VALUE an environment variable.
fpm_pool() {   # NAME PORT WORKERS SETTING...
  local name=$1 port=$2 workers=$3 setting; shift 3
  cat <<POOL
[$name]
$RUN_AS
listen = 127.0.0.1:$port
listen.backlog = 4096
pm = static
pm.max_children = $workers
clear_env = no
php_admin_flag[log_errors] = on
php_value[session.use_strict_mode] = 0
php_value[session.gc_probability] = 0
POOL
  for setting in "$@"; do
    case $setting in
      admin:*) setting=${setting#admin:}; echo "php_admin_value[${setting%%=*}] = ${setting#*=}" ;;
      env:*) setting=${setting#env:}; echo "env[${setting%%=*}] = ${setting#*=}" ;;
      *) echo "php_value[${setting%%=*}] = ${setting#*=}" ;;
    esac
  done
  echo
}

# The start of an nginx config whose pid, logs and temp files live in DIR/nginx: everything up
# to the inside of http { }, which the caller fills and closes.
nginx_head() {   # DIR
  echo "$NGINX_USER"
  echo "worker_processes 1; pid $1/nginx/nginx.pid; error_log $1/nginx/error.log warn;"
  echo "events { worker_connections 8192; }"
  echo "http {"
  echo "  access_log off;"
  echo "  client_body_temp_path $1/nginx/tmp/body; fastcgi_temp_path $1/nginx/tmp/fastcgi; proxy_temp_path $1/nginx/tmp/proxy;"
  echo "  uwsgi_temp_path $1/nginx/tmp/uwsgi; scgi_temp_path $1/nginx/tmp/scgi;"
}
