# Shared by bench/run.sh and bench/cluster.sh (sourced, not run).

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
