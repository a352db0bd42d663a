#!/usr/bin/env bash
# The Docker engine for integration/docker.test.ts, started for the tests and stopped after them.
#
#   scripts/docker-engine.sh start   an engine answers afterwards. When none runs, starts dockerd
#                                    in the background (its log in $DOCKERD_LOG) and records its
#                                    pid in $DOCKERD_PIDFILE.
#   scripts/docker-engine.sh stop    stops the dockerd that `start` recorded, and only that one:
#                                    an engine that was running before `start` is left alone.
#
# scripts/install-test-deps.sh (run by `npm test`) calls `start`; the docker test calls `stop` in
# its afterAll. A run that is interrupted leaves the pid file behind, so the next run reuses that
# engine and the next `stop` ends it. The images stay in the engine's storage either way: the
# cache of base images and layers outlives the process.
set -euo pipefail

DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/run/session-cluster-test-dockerd.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/session-cluster-test-dockerd.log}

say() { echo "docker-engine: $*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  # Without a terminal nobody can type a password: make sudo fail instead of hanging CI.
  if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
else
  as_root=()
fi
root() { ${as_root[@]+"${as_root[@]}"} "$@"; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

# The pid in the pid file, when that process is still a dockerd (a pid can be reused after a reboot
# or a crash: never signal anything else).
recorded_pid() {
  local pid
  [ -r "$DOCKERD_PIDFILE" ] || return 1
  pid=$(cat "$DOCKERD_PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  echo "$pid"
}

start() {
  answers && return 0
  if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
    say "dockerd is not installed (apt-get install docker.io; scripts/install-test-deps.sh does)"
    exit 1
  fi
  # An engine that is still starting (or one we started, whose socket is not up yet) is waited
  # for, not started twice.
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "no Docker engine runs: starting dockerd (log: $DOCKERD_LOG)"
    # setsid: its own session, so that a Ctrl-C meant for the test run does not reach it halfway
    # through a build; `stop` ends it.
    root sh -c 'setsid dockerd >>"$1" 2>&1 </dev/null & echo $! >"$2"' sh "$DOCKERD_LOG" "$DOCKERD_PIDFILE"
  fi
  local i
  for i in $(seq 1 60); do
    answers && return 0
    if [ -r "$DOCKERD_PIDFILE" ] && ! recorded_pid >/dev/null && ! pgrep -x dockerd >/dev/null 2>&1; then
      break
    fi
    sleep 1
  done
  say "the Docker engine does not answer (docker info):"
  timeout 10 docker info 2>&1 | tail -5 >&2 || true
  [ -r "$DOCKERD_LOG" ] && { say "last lines of $DOCKERD_LOG:"; tail -20 "$DOCKERD_LOG" >&2; }
  exit 1
}

stop() {
  local pid i
  if ! pid=$(recorded_pid); then
    root rm -f "$DOCKERD_PIDFILE"
    return 0
  fi
  say "stopping the dockerd the tests started (pid $pid)"
  root kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    [ -d "/proc/$pid" ] || break
    sleep 1
  done
  if [ -d "/proc/$pid" ]; then
    say "dockerd $pid still runs after 30 s: SIGKILL"
    root kill -KILL "$pid" 2>/dev/null || true
  fi
  root rm -f "$DOCKERD_PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
