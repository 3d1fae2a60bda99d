#!/usr/bin/env bash
# Two "hosts" for a Spark standalone cluster, emulated with network namespaces, so that a test can cut the
# network between them while a driver runs.
#
# Usage: two-hosts.sh run SPARK_HOME CONTROL_DIR -- DRIVER_COMMAND [ARG...]
#
# One foreground process owns the whole lifetime:
#   1. makes namespaces spindle-2h-<tag>-a and -b (host A = 10.213.78.1, host B = 10.213.78.2), joined by
#      one veth pair s2h<tag>a / s2h<tag>b, lo up in both; no other address is used;
#   2. starts a Master (port 7077, UI 8080) and Worker A in namespace A and Worker B in namespace B as plain
#      background JVMs (bin/spark-class, not sbin/), each with SPARK_LOCAL_IP and SPARK_LOCAL_HOSTNAME set to its
#      host's address; logs in CONTROL_DIR/{master,worker-a,worker-b}.log, worker dirs (executor logs) in
#      CONTROL_DIR/work-{a,b}, scratch in CONTROL_DIR/local-{a,b};
#   3. waits (TWO_HOSTS_START_TIMEOUT s, default 90) until the master reports 2 ALIVE workers;
#   4. runs DRIVER_COMMAND in namespace A under `timeout TWO_HOSTS_TIMEOUT` (default 600 s), stdin, stdout and
#      stderr passed through, with SPINDLE_MASTER=spark://10.213.78.1:7077, SPINDLE_HOST_A, SPINDLE_HOST_B,
#      SPINDLE_CONTROL_DIR, SPARK_HOME, SPARK_LOCAL_IP=SPARK_LOCAL_HOSTNAME=10.213.78.1 exported;
#   5. while it runs, polls CONTROL_DIR every 0.2 s for a file `cut`: then sets both veth ends down (no FIN, no
#      reset: established connections stall, as in a partition) and writes `cut.done`, the epoch milliseconds of
#      the cut. A test that runs no `ip` itself cuts at the moment it chooses;
#   6. exits with the driver's exit code (124 when TWO_HOSTS_TIMEOUT ended it), after cleanup.
# Cleanup runs at any exit (EXIT, INT, TERM, HUP): every process in either namespace is killed (SIGKILL) and
# waited for, the namespaces are deleted (the veth pair goes with them). CONTROL_DIR belongs to the caller and
# keeps the logs; its cut files are cleared at start. Only SIGKILL of this script skips cleanup: what it
# leaves is named spindle-2h-* (`ip netns list`). A shell that starts it as a `&` job without job control
# makes SIGINT ignored, which bash cannot trap: stop it with SIGTERM.
#
# Exit codes: the driver's; 77 with one line `SKIPPED: <why>` where namespaces cannot be made (not root, no
# CAP_NET_ADMIN), having left nothing behind; 2 for usage errors; 3 when the cluster did not come up (a line
# starting `[two-hosts] FAILED:` and the tail of the culprit's log on stderr).
#
# Environment (optional):
#   TWO_HOSTS_ID             tag for the names (1-10 letters or digits; default: this script's PID)
#   TWO_HOSTS_TIMEOUT        seconds the driver may run (default 600)
#   TWO_HOSTS_START_TIMEOUT  seconds to wait for the 2 workers (default 90)
#   TWO_HOSTS_WORKER_CORES   cores per worker (default 1);  TWO_HOSTS_WORKER_MEMORY  (default 2g)
#   SPARK_DAEMON_JAVA_OPTS, SPARK_MASTER_OPTS, SPARK_WORKER_OPTS  reach the daemons as Spark reads them. Give
#                            spark.worker.timeout to both sides (SPARK_DAEMON_JAVA_OPTS=-Dspark.worker.timeout=10):
#                            a worker beats every timeout/4 of its own value, so a lower one on the master alone
#                            makes it drop healthy workers. SPARK_DAEMON_MEMORY defaults to 512m.
#   JAVA_HOME                else `java` on PATH.
# Messages of this script go to stderr, prefixed `[two-hosts]`.
set -uo pipefail

readonly HOST_A=10.213.78.1 HOST_B=10.213.78.2 PREFIX=24 MASTER_PORT=7077 MASTER_UI=8080 WORKER_UI=8081

say() { echo "[two-hosts] $*" >&2; }
usage() {
  echo "usage: $0 run SPARK_HOME CONTROL_DIR -- DRIVER_COMMAND [ARG...]" >&2
  exit 2
}
now_ms() { date +%s%3N; }

[[ $# -ge 4 && $1 == run && $4 == -- ]] || usage
spark_home=$2
control=$3
shift 4
[[ $# -ge 1 ]] || usage
[[ -x $spark_home/bin/spark-class ]] || { say "no executable $spark_home/bin/spark-class"; exit 2; }
if [[ -n ${JAVA_HOME:-} ]]; then
  [[ -x $JAVA_HOME/bin/java ]] || { say "JAVA_HOME=$JAVA_HOME has no bin/java"; exit 2; }
else
  command -v java >/dev/null || { say "no JAVA_HOME and no java on PATH"; exit 2; }
fi
# Where namespaces cannot be made: one line, exit 77, nothing left (cleanup deletes what was made).
skip() {
  declare -F cleanup >/dev/null && cleanup
  echo "SKIPPED: $*"
  exit 77
}
command -v ip >/dev/null || skip "no \`ip\` command (iproute2)"
[[ $(id -u) -eq 0 ]] || skip "not root: \`ip netns\` needs root with CAP_NET_ADMIN"
spark_home=$(cd "$spark_home" && pwd)
mkdir -p "$control" || exit 2
control=$(cd "$control" && pwd)
driver_timeout=${TWO_HOSTS_TIMEOUT:-600}
start_timeout=${TWO_HOSTS_START_TIMEOUT:-90}
[[ $driver_timeout =~ ^[0-9]+$ && $start_timeout =~ ^[0-9]+$ ]] || { say "timeouts must be whole seconds"; exit 2; }

tag=${TWO_HOSTS_ID:-$$}
[[ $tag =~ ^[A-Za-z0-9]{1,10}$ ]] || { say "TWO_HOSTS_ID must be 1-10 letters or digits"; exit 2; }
readonly NS_A=spindle-2h-$tag-a NS_B=spindle-2h-$tag-b VETH_A=s2h${tag}a VETH_B=s2h${tag}b

made=()          # namespaces this run created, the only ones cleanup deletes
daemons=()       # background daemon PIDs (for liveness checks)
driver_pid=""    # the `timeout` process around the driver
cleaned=false

# Kills everything in the namespaces, waits for it, deletes them. Idempotent; every loop bounded.
cleanup() {
  $cleaned && return
  cleaned=true
  trap '' INT TERM HUP
  if [[ -n $driver_pid ]]; then
    disown "$driver_pid" 2>/dev/null # no "Killed" job notice; bash still reaps it
    kill -KILL "$driver_pid" 2>/dev/null
  fi
  local ns i pids
  for ((i = 0; i < 100; i++)); do # up to ~10 s
    pids=""
    for ns in "${made[@]}"; do pids+=" $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"; done
    [[ -z ${pids// /} ]] && break
    # shellcheck disable=SC2086 # a list of PIDs
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  [[ -n ${pids// /} ]] && say "processes still in the namespaces after 10 s:$pids"
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || say "could not delete namespace $ns"; done
  made=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# 1. The namespaces. A failure here means the machine does not let us: skip.
for ns in "$NS_A" "$NS_B"; do
  if [[ -e /run/netns/$ns ]]; then say "namespace $ns already exists (TWO_HOSTS_ID in use?)"; exit 2; fi
done
err=$(ip netns add "$NS_A" 2>&1) || skip "\`ip netns add\` failed: $err"
made+=("$NS_A")
err=$(ip netns add "$NS_B" 2>&1) || skip "\`ip netns add\` failed: $err"
made+=("$NS_B")
err=$( {
  ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" &&
    ip -n "$NS_A" addr add "$HOST_A/$PREFIX" dev "$VETH_A" &&
    ip -n "$NS_B" addr add "$HOST_B/$PREFIX" dev "$VETH_B" &&
    ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
    ip -n "$NS_A" link set "$VETH_A" up && ip -n "$NS_B" link set "$VETH_B" up
} 2>&1) || skip "could not set up the veth pair: $err"
say "namespaces $NS_A ($HOST_A) and $NS_B ($HOST_B)"

# 2. The cluster: plain JVMs in the background, so that cleanup owns them.
rm -f "$control"/cut "$control"/cut.done*
mkdir -p "$control"/work-a "$control"/work-b "$control"/local-a "$control"/local-b
export SPARK_HOME=$spark_home SPARK_DAEMON_MEMORY=${SPARK_DAEMON_MEMORY:-512m}
unset SPARK_MASTER_HOST SPARK_MASTER_PORT SPARK_WORKER_PORT SPARK_PUBLIC_DNS

# start_in NS HOST LOG SIDE CLASS ARG...: a daemon in NS bound to HOST, output to CONTROL_DIR/LOG.
start_in() {
  local ns=$1 host=$2 log=$3 side=$4
  shift 4
  ip netns exec "$ns" env SPARK_LOCAL_IP="$host" SPARK_LOCAL_HOSTNAME="$host" \
    SPARK_WORKER_DIR="$control/work-$side" SPARK_LOCAL_DIRS="$control/local-$side" \
    "$spark_home/bin/spark-class" "$@" </dev/null >"$control/$log" 2>&1 &
  daemons+=("$!:$log")
  disown "$!" # no "Killed" job notice at cleanup; bash still reaps it
}
master_url=spark://$HOST_A:$MASTER_PORT
worker_args=(--cores "${TWO_HOSTS_WORKER_CORES:-1}" --memory "${TWO_HOSTS_WORKER_MEMORY:-2g}"
  --webui-port "$WORKER_UI" "$master_url")
start_in "$NS_A" "$HOST_A" master.log a org.apache.spark.deploy.master.Master \
  --host "$HOST_A" --port "$MASTER_PORT" --webui-port "$MASTER_UI"
start_in "$NS_A" "$HOST_A" worker-a.log a org.apache.spark.deploy.worker.Worker --host "$HOST_A" "${worker_args[@]}"
start_in "$NS_B" "$HOST_B" worker-b.log b org.apache.spark.deploy.worker.Worker --host "$HOST_B" "${worker_args[@]}"

# 3. Wait for 2 ALIVE workers (the master's JSON UI; its log where curl is missing).
fail() {
  say "FAILED: $1"
  [[ -n ${2:-} ]] && tail -n 30 "$control/$2" | sed 's/^/[two-hosts]   /' >&2
  exit 3
}
alive_workers() {
  if command -v curl >/dev/null; then
    ip netns exec "$NS_A" curl -s --max-time 2 "http://$HOST_A:$MASTER_UI/json/" |
      grep -o '"aliveworkers" *: *[0-9]*' | grep -o '[0-9]*$'
  else
    grep -c 'Master: Registering worker' "$control/master.log"
  fi
}
deadline=$((SECONDS + start_timeout))
alive=0
for ((i = 0; i < start_timeout * 2 + 1; i++)); do
  for d in "${daemons[@]}"; do
    kill -0 "${d%%:*}" 2>/dev/null || fail "${d#*:} ended before the cluster was up" "${d#*:}"
  done
  alive=$(alive_workers)
  [[ ${alive:-0} -ge 2 ]] && break
  ((SECONDS < deadline)) || break
  sleep 0.5
done
[[ ${alive:-0} -ge 2 ]] || fail "${alive:-0} of 2 workers alive after ${start_timeout} s (logs in $control)" master.log
say "cluster up: $master_url with 2 workers"

# 4. The driver, in namespace A, under a timeout; stdin passed through (bash gives & jobs /dev/null).
exec 3<&0
timeout --kill-after=10 "$driver_timeout" ip netns exec "$NS_A" env \
  SPINDLE_MASTER="$master_url" SPINDLE_HOST_A="$HOST_A" SPINDLE_HOST_B="$HOST_B" SPINDLE_CONTROL_DIR="$control" \
  SPARK_LOCAL_IP="$HOST_A" SPARK_LOCAL_HOSTNAME="$HOST_A" "$@" <&3 3<&- &
driver_pid=$!
exec 3<&-

# 5. Cut the link on request while the driver runs.
for ((i = 0; i < (driver_timeout + 30) * 5; i++)); do
  kill -0 "$driver_pid" 2>/dev/null || break
  if [[ -e $control/cut && ! -e $control/cut.done && ! -e $control/cut.done.failed ]]; then
    if ip -n "$NS_A" link set "$VETH_A" down && ip -n "$NS_B" link set "$VETH_B" down; then
      now_ms >"$control/cut.done.tmp" && mv "$control/cut.done.tmp" "$control/cut.done"
      say "link cut at $(cat "$control/cut.done")"
    else
      say "cutting the link failed"
      touch "$control/cut.done.failed"
    fi
  fi
  sleep 0.2
done

# 6. The driver's exit code, after cleanup (the EXIT trap).
wait "$driver_pid"
rc=$?
driver_pid=""
say "driver exited with $rc"
exit "$rc"
