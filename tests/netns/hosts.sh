#!/usr/bin/env bash
# N emulated hosts on one switch, made of network namespaces, for benchmarks that need many hosts (the all-reduce
# grid, benches/allreduce-grid.sh) and, small, for CI. The style and safety model are two-hosts.sh's.
#
# Usage: hosts.sh run CONTROL_DIR -- COMMAND [ARG...]
#
# One foreground process owns the whole lifetime:
#   1. makes namespaces spx-<tag>-1 .. spx-<tag>-N (the hosts) and spx-<tag>-br (the switch: a Linux bridge br0).
#      Host i has one interface, eth0 (the same name in every host: HOSTS_DEV), address 10.215.0.<i>/24, joined to
#      br0 by a veth pair whose other end, h<i>, is in the switch's namespace. lo is up everywhere, the MTU is
#      HOSTS_MTU on every veth end and the bridge. Nothing is made in the root namespace (the veth pairs are
#      created directly inside the namespaces), no address outside them is used;
#   2. with HOSTS_RATE, shapes every link in both directions: a tbf on eth0 in the host (what the host sends) and
#      one on h<i> in the switch (what the switch sends to the host), so a host neither sends nor receives faster
#      than the rate, as behind a real NIC. The parameters are printed once;
#   3. measures the machine's own per-hop latency: 200 round trips of 1 byte (TCP_NODELAY) between host 1 and
#      host 2 (tcp_probe.py, system python3, stdlib only). This kernel has no netem: no delay is added, the line
#      says so;
#   4. with HOSTS_SPARK_HOME, starts a standalone Master in host 1 and one Worker per host as plain background JVMs
#      (bin/spark-class, as two-hosts.sh), logs in CONTROL_DIR/{master,worker-<i>}.log, and waits until the master
#      reports N ALIVE workers;
#   5. runs COMMAND in host 1 under `timeout HOSTS_TIMEOUT`, stdin, stdout and stderr passed through, with
#      HOSTS_N, HOSTS_ADDRS (the addresses, host order), HOSTS_NS (the namespaces, host order), HOSTS_DEV,
#      HOSTS_RATE, HOSTS_CONTROL=CONTROL_DIR, SPARK_LOCAL_IP=SPARK_LOCAL_HOSTNAME=10.215.0.1 and, with Spark,
#      SPINDLE_MASTER=spark://10.215.0.1:7077 and SPARK_HOME exported. We are root: COMMAND starts processes on
#      other hosts with `ip netns exec <ns> ...`; they are killed at cleanup like everything in the namespaces;
#   6. while it runs, polls CONTROL_DIR every 0.2 s for files `cut-<i>`: then sets both ends of host i's link down
#      (no FIN, no reset: its connections stall, as in a partition) and writes `cut-<i>.done`, the epoch
#      milliseconds of the cut;
#   7. prints the CPU idle share over COMMAND's run (the whole machine's, /proc/stat before and after: near 0
#      means the cores, busy with the emulation, COMMAND or other work, not the links, may have bounded what it
#      measured) and, with HOSTS_RATE, the tbf drop count over all link ends; exits with COMMAND's exit code
#      (124 when HOSTS_TIMEOUT ended it).
# Cleanup runs at any exit (EXIT, INT, TERM, HUP): every process in every namespace made is killed (SIGKILL) and
# waited for, the namespaces are deleted (the veth pairs and the bridge go with them). CONTROL_DIR belongs to
# the caller and keeps the logs; its cut files are cleared at start. Only SIGKILL of this script skips cleanup:
# what it leaves is named spx-<tag>-* (`ip netns list`). As with two-hosts.sh, a `&` job of a shell without job
# control ignores SIGINT: stop it with SIGTERM.
#
# Exit codes: COMMAND's; 77 with one line `SKIPPED: <why>` where namespaces (or, with HOSTS_RATE, tbf) cannot be
# made, having left nothing behind; 2 for usage errors; 3 when the hosts or the cluster did not come up (a line
# starting `[hosts] FAILED:`, with the tail of the culprit's log).
#
# Environment (optional):
#   HOSTS_N             number of hosts, 2..64 (default 4)
#   HOSTS_ID            tag for the names, 1-6 letters or digits (default: from this script's PID)
#   HOSTS_RATE          tbf rate of every link, <integer>{bit,kbit,mbit,gbit}, e.g. 100mbit (default: unlimited)
#   HOSTS_MTU           MTU of the links (default 9000)
#   HOSTS_TIMEOUT       seconds COMMAND may run (default 600)
#   HOSTS_SPARK_HOME    a Spark distribution: start the standalone cluster (else no Spark)
#   HOSTS_WORKER_CORES  cores per worker (default 1);  HOSTS_WORKER_MEMORY  (default 1g)
#   HOSTS_START_TIMEOUT seconds to wait for the N workers (default 60 + 3 N: 2 cores start the JVMs one by one)
#   SPARK_DAEMON_JAVA_OPTS, SPARK_MASTER_OPTS, SPARK_WORKER_OPTS reach the daemons (see two-hosts.sh);
#                       SPARK_DAEMON_MEMORY defaults to 512m.
# Messages of this script go to stderr, prefixed `[hosts]`.
set -uo pipefail

readonly SUBNET=10.215.0 PREFIX=24 DEV=eth0 BRIDGE=br0 MASTER_PORT=7077 MASTER_UI=8080 WORKER_UI=8081 PROBE_PORT=7999
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "[hosts] $*" >&2; }
usage() {
  echo "usage: $0 run CONTROL_DIR -- COMMAND [ARG...]" >&2
  exit 2
}
now_ms() { date +%s%3N; }

[[ $# -ge 4 && $1 == run && $3 == -- ]] || usage
control=$2
shift 3
n=${HOSTS_N:-4}
if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 2 || n > 64)); then say "HOSTS_N must be 2..64"; exit 2; fi
tag=${HOSTS_ID:-p$(($$ % 100000))}
[[ $tag =~ ^[A-Za-z0-9]{1,6}$ ]] || { say "HOSTS_ID must be 1-6 letters or digits"; exit 2; }
rate=${HOSTS_RATE:-}
[[ -z $rate || $rate =~ ^[1-9][0-9]*(bit|kbit|mbit|gbit)$ ]] || { say "HOSTS_RATE must be like 100mbit"; exit 2; }
mtu=${HOSTS_MTU:-9000}
if ! [[ $mtu =~ ^[0-9]+$ ]] || ((mtu < 1280 || mtu > 65535)); then say "HOSTS_MTU must be 1280..65535"; exit 2; fi
cmd_timeout=${HOSTS_TIMEOUT:-600}
start_timeout=${HOSTS_START_TIMEOUT:-$((60 + 3 * n))}
[[ $cmd_timeout =~ ^[0-9]+$ && $start_timeout =~ ^[0-9]+$ ]] || { say "timeouts must be whole seconds"; exit 2; }
spark_home=${HOSTS_SPARK_HOME:-}
if [[ -n $spark_home ]]; then
  [[ -x $spark_home/bin/spark-class ]] || { say "no executable $spark_home/bin/spark-class"; exit 2; }
  spark_home=$(cd "$spark_home" && pwd)
  if [[ -n ${JAVA_HOME:-} ]]; then
    [[ -x $JAVA_HOME/bin/java ]] || { say "JAVA_HOME=$JAVA_HOME has no bin/java"; exit 2; }
  else
    command -v java >/dev/null || { say "no JAVA_HOME and no java on PATH"; exit 2; }
  fi
fi
python=/usr/bin/python3 # the system's: the probe needs the standard library only
[[ -x $python ]] || python=$(command -v python3) || { say "no python3"; exit 2; }

# Where namespaces cannot be made: one line, exit 77, nothing left (cleanup deletes what was made).
skip() {
  declare -F cleanup >/dev/null && cleanup
  echo "SKIPPED: $*"
  exit 77
}
command -v ip >/dev/null || skip "no \`ip\` command (iproute2)"
[[ -z $rate ]] || command -v tc >/dev/null || skip "no \`tc\` command (iproute2) for HOSTS_RATE"
[[ $(id -u) -eq 0 ]] || skip "not root: \`ip netns\` needs root with CAP_NET_ADMIN"
mkdir -p "$control" || exit 2
control=$(cd "$control" && pwd)

readonly NS_BR=spx-$tag-br
hosts_ns=() addrs=()
for ((i = 1; i <= n; i++)); do
  hosts_ns+=("spx-$tag-$i")
  addrs+=("$SUBNET.$i")
done

made=()       # namespaces this run created, the only ones cleanup deletes
daemons=()    # background daemon PIDs and logs (for liveness checks)
cmd_pid=""    # the `timeout` process around COMMAND
cleaned=false

# Kills everything in the namespaces, waits for it, deletes them. Idempotent; every loop bounded.
cleanup() {
  $cleaned && return
  cleaned=true
  trap '' INT TERM HUP PIPE
  if [[ -n $cmd_pid ]]; then
    disown "$cmd_pid" 2>/dev/null # no "Killed" job notice; bash still reaps it
    kill -KILL "$cmd_pid" 2>/dev/null
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
# A caller that dies closes our stderr pipe: the next message would kill bash by SIGPIPE, skipping cleanup.
trap 'exit 141' PIPE

fail() {
  say "FAILED: $1"
  [[ -n ${2:-} ]] && tail -n 30 "$control/$2" | sed 's/^/[hosts]   /' >&2
  exit 3
}

# 1. The namespaces and the switch. A failure here means the machine does not let us: skip.
for ns in "$NS_BR" "${hosts_ns[@]}"; do
  if [[ -e /run/netns/$ns ]]; then say "namespace $ns already exists (HOSTS_ID in use?)"; exit 2; fi
done
err=$(ip netns add "$NS_BR" 2>&1) || skip "\`ip netns add\` failed: $err"
made+=("$NS_BR")
err=$( {
  ip -n "$NS_BR" link set lo up &&
    ip -n "$NS_BR" link add "$BRIDGE" mtu "$mtu" type bridge &&
    ip -n "$NS_BR" link set "$BRIDGE" up
} 2>&1) || skip "could not make the bridge: $err"
for ((i = 1; i <= n; i++)); do
  ns=${hosts_ns[i - 1]}
  err=$(ip netns add "$ns" 2>&1) || skip "\`ip netns add\` failed: $err"
  made+=("$ns")
  err=$( {
    ip link add "h$i" mtu "$mtu" netns "$NS_BR" type veth peer name "$DEV" mtu "$mtu" netns "$ns" &&
      ip -n "$NS_BR" link set "h$i" master "$BRIDGE" up &&
      ip -n "$ns" addr add "${addrs[i - 1]}/$PREFIX" dev "$DEV" &&
      ip -n "$ns" link set lo up && ip -n "$ns" link set "$DEV" up
  } 2>&1) || skip "could not join host $i to the bridge: $err"
done
say "$n hosts ${hosts_ns[0]} .. ${hosts_ns[n - 1]} (${addrs[0]} .. ${addrs[n - 1]}, $DEV, MTU $mtu)" \
  "on bridge $BRIDGE in $NS_BR"

# 2. The shaping. tbf's burst must hold the largest frame (MTU + 14): MTU + 4 KB, or 1 ms at the rate where that is
#    more, so that faster links do not spend a timer per frame; a burst that is small against the benchmark's
#    messages keeps them rate bound. Its queue (limit) holds 50 ms at the rate, at least 4 frames: a local TCP
#    sender is held back by its qdisc (TSQ), and traffic of several senders converging on one host waits there
#    rather than being dropped at once. `tc -s` counts the drops; they are printed at the end.
if [[ -n $rate ]]; then
  num=${rate%%[a-z]*}
  case ${rate#"$num"} in
    bit) bps=$num ;; kbit) bps=$((num * 1000)) ;; mbit) bps=$((num * 1000000)) ;; gbit) bps=$((num * 1000000000)) ;;
  esac
  frame=$((mtu + 14))
  burst=$((frame + 4096))
  ((bps / 8 / 1000 > burst)) && burst=$((bps / 8 / 1000))
  queue=$((bps / 8 / 20))
  ((queue < 4 * frame)) && queue=$((4 * frame))
  limit=$((burst + queue))
  tbf=(tbf rate "$rate" burst "$burst" limit "$limit")
  say "tbf on every link end, both directions: tc qdisc add dev {$DEV in host i, h<i> in the switch} root ${tbf[*]}"
  for ((i = 1; i <= n; i++)); do
    err=$( {
      tc -n "${hosts_ns[i - 1]}" qdisc add dev "$DEV" root "${tbf[@]}" &&
        tc -n "$NS_BR" qdisc add dev "h$i" root "${tbf[@]}"
    } 2>&1) || skip "could not add tbf (HOSTS_RATE=$rate): $err"
  done
fi

# 3. The machine's own latency: host 1 -> switch -> host 2 and back, halved.
ip netns exec "${hosts_ns[1]}" timeout 30 "$python" "$here/tcp_probe.py" serve "${addrs[1]}" "$PROBE_PORT" \
  </dev/null >/dev/null 2>"$control/probe-serve.log" &
probe_pid=$!
out=$(ip netns exec "${hosts_ns[0]}" timeout 30 "$python" "$here/tcp_probe.py" pingpong "${addrs[1]}" \
  "$PROBE_PORT" 200 2>"$control/probe.log") || fail "the latency probe from host 1 to host 2 failed" probe.log
wait "$probe_pid"
rtt=$(awk '{ for (i = 1; i < NF; i++) if ($i == "median_rtt_us") print $(i + 1) }' <<<"$out")
[[ -n $rtt ]] || fail "the latency probe printed no round trip: $out"
say "latency: one-way median $(awk -v r="$rtt" 'BEGIN { printf "%.1f", r / 2 }') us (round trip/2, measured;" \
  "no netem on this kernel, no added delay)"

# 4. The cluster: plain JVMs in the background, so that cleanup owns them.
rm -f "$control"/cut-*
master_url=""
if [[ -n $spark_home ]]; then
  export SPARK_HOME=$spark_home SPARK_DAEMON_MEMORY=${SPARK_DAEMON_MEMORY:-512m}
  unset SPARK_MASTER_HOST SPARK_MASTER_PORT SPARK_WORKER_PORT SPARK_PUBLIC_DNS
  # start_in I LOG CLASS ARG...: a daemon in host I bound to its address, output to CONTROL_DIR/LOG.
  start_in() {
    local i=$1 log=$2 host=${addrs[$1 - 1]}
    shift 2
    mkdir -p "$control/work-$i" "$control/local-$i"
    ip netns exec "${hosts_ns[i - 1]}" env SPARK_LOCAL_IP="$host" SPARK_LOCAL_HOSTNAME="$host" \
      SPARK_WORKER_DIR="$control/work-$i" SPARK_LOCAL_DIRS="$control/local-$i" \
      "$spark_home/bin/spark-class" "$@" </dev/null >"$control/$log" 2>&1 &
    daemons+=("$!:$log")
    disown "$!" # no "Killed" job notice at cleanup; bash still reaps it
  }
  master_url=spark://${addrs[0]}:$MASTER_PORT
  start_in 1 master.log org.apache.spark.deploy.master.Master \
    --host "${addrs[0]}" --port "$MASTER_PORT" --webui-port "$MASTER_UI"
  for ((i = 1; i <= n; i++)); do
    start_in "$i" "worker-$i.log" org.apache.spark.deploy.worker.Worker --host "${addrs[i - 1]}" \
      --cores "${HOSTS_WORKER_CORES:-1}" --memory "${HOSTS_WORKER_MEMORY:-1g}" --webui-port "$WORKER_UI" "$master_url"
  done
  alive_workers() {
    if command -v curl >/dev/null; then
      ip netns exec "${hosts_ns[0]}" curl -s --max-time 2 "http://${addrs[0]}:$MASTER_UI/json/" |
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
    [[ ${alive:-0} -ge $n ]] && break
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  [[ ${alive:-0} -ge $n ]] ||
    fail "${alive:-0} of $n workers alive after ${start_timeout} s (logs in $control)" master.log
  say "cluster up: $master_url with $n workers"
fi

# /proc/stat's first line: idle (idle + iowait) and total jiffies of all CPUs, the whole machine's
# (user nice system idle iowait irq softirq steal; guest time is already in user.)
cpu_jiffies() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print $5 + $6, t; exit }' /proc/stat; }
read -r idle0 total0 < <(cpu_jiffies)

# 5. COMMAND, in host 1, under a timeout; stdin passed through (bash gives & jobs /dev/null).
env_vars=(HOSTS_N="$n" HOSTS_ADDRS="${addrs[*]}" HOSTS_NS="${hosts_ns[*]}" HOSTS_DEV="$DEV" HOSTS_RATE="$rate"
  HOSTS_CONTROL="$control" SPARK_LOCAL_IP="${addrs[0]}" SPARK_LOCAL_HOSTNAME="${addrs[0]}")
[[ -n $master_url ]] && env_vars+=(SPINDLE_MASTER="$master_url" SPARK_HOME="$spark_home")
exec 3<&0
timeout --kill-after=10 "$cmd_timeout" ip netns exec "${hosts_ns[0]}" env "${env_vars[@]}" "$@" <&3 3<&- &
cmd_pid=$!
exec 3<&-

# 6. Cut links on request while COMMAND runs.
for ((tick = 0; tick < (cmd_timeout + 30) * 5; tick++)); do
  kill -0 "$cmd_pid" 2>/dev/null || break
  for f in "$control"/cut-*; do # at most one file per host and its .done: bounded
    [[ ${f##*/} =~ ^cut-([0-9]+)$ ]] || continue
    i=${BASH_REMATCH[1]}
    [[ -e $f.done || -e $f.failed ]] && continue
    if ((i >= 1 && i <= n)) && ip -n "${hosts_ns[i - 1]}" link set "$DEV" down &&
      ip -n "$NS_BR" link set "h$i" down; then
      now_ms >"$f.done.tmp" && mv "$f.done.tmp" "$f.done"
      say "host $i cut off at $(cat "$f.done")"
    else
      say "cutting host $i off failed"
      touch "$f.failed"
    fi
  done
  sleep 0.2
done

# 7. COMMAND's exit code, the CPU's idle share and the drops, then cleanup (the EXIT trap).
wait "$cmd_pid"
rc=$?
cmd_pid=""
read -r idle1 total1 < <(cpu_jiffies)
idle_pct=$(awk -v i=$((idle1 - idle0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.0f", (t > 0 ? 100 * i / t : 0) }')
say "cpu idle $idle_pct% during the command"
if [[ -n $rate ]]; then
  # "Sent B bytes P pkt (dropped D, overlimits O requeues R)" of every tbf.
  drops=$( {
    for ((i = 1; i <= n; i++)); do
      tc -s -n "${hosts_ns[i - 1]}" qdisc show dev "$DEV"
      tc -s -n "$NS_BR" qdisc show dev "h$i"
    done
  } | awk '$1 == "qdisc" && $2 == "tbf" { t = 1; next } t && $1 == "Sent" { p += $4; d += $7; t = 0 }
      END { printf "%d of %d packets", d, p }')
  say "tbf drops: $drops (all $((2 * n)) link ends)"
fi
say "command exited with $rc"
exit "$rc"
