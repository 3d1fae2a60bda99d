#!/usr/bin/env bash
# The all-reduce grid (issue 32, "Scale past one host"): Spindle's all-reduce algorithms and Gloo's all_reduce on an
# emulated cluster (tests/netns/hosts.sh), one process per rank, K ranks per emulated host, every host's link shaped
# to the same rate in both directions. For every ranks count p (one hosts.sh run each, p / K hosts), both sides run
# one after the other in that run, over every size:
#   - Spindle: target/release/examples/allreduce_rank, one process per rank, started in its host's namespace with
#     `ip netns exec`, --peers ADDR:PORT of every rank (port 29600 + its index on its host), all of --algorithms;
#     rank 0 prints `BENCH allreduce bytes <b> ranks <p> algorithm <a> chosen <c> best_ms <x> median_ms <y>` (for
#     `auto`, <c> is what the cost model picked). SPINDLE_BENCH_SECRET is a fresh random hex per run;
#   - Gloo: benches/python/gloo_rank.py the same way (rendezvous on rank 0's address, port 29500, Gloo's sockets on
#     the hosts' interface), whose rank 0 prints `GLOO allreduce bytes <b> ranks <p> best_ms <x> median_ms <y>`;
# then one line per case:
#   GRID <bytes> B <p> ranks  rate <rate>  spindle-auto <ms> (<chosen>)  ring <ms>  gloo <ms>  auto/gloo <r>
#        auto/bound <r>  auto/ring <r>
# where <ms> is a side's best run (--stat median for the medians; a run's time is its slowest rank's) and
# bound = 2 (p - 1) / p x bytes / rate, the time a bandwidth-optimal all-reduce needs to move its bytes through one
# host's link (latency ignored), and one line per ranks count with hosts.sh's measured per-hop latency (this
# kernel has no netem: nothing is added) and the CPU idle shares (see below). A "-" is a figure not measured.
#
# Why the rate, and `--rate auto`. On this 2-core machine every "link" is the kernel moving bytes through veth
# pairs and a bridge, on the same cores that run the ranks. A figure means something only while the links, not
# the cores, bound it: the traffic of all links together must stay well below what the cores can move. The script
# measures that once (one unshaped TCP stream of 1 GB between 2 emulated hosts, best of 3: 11-18 Gbit/s on the
# development machine, about one core busy) and prints it. In an all-reduce every host sends and receives at up to
# its link rate at once, so the aggregate is hosts x rate; `--rate auto` picks, per ranks count, the largest rate of
# the 1-2-5 series (in mbit) with hosts x rate <= 1/4 of the measured stream, leaving the other 3/4 for the
# reductions, the many flows' per-packet costs and the processes themselves (at 16 Gbit/s: 1000mbit for 4 hosts,
# 500mbit for 8, 200mbit for 16, 100mbit for 32, 50mbit for 64). A fixed --rate prints the same share for its
# check. With --per-host K > 1 the ranks of one host talk over its loopback, unshaped and not counted: more CPU.
# The CPU idle shares are the other check. They count the whole machine (another build beside the grid shows
# there): Spindle's from its ranks' start to their end, Gloo's from its rendezvous to its last all_reduce (its
# ranks spend seconds of CPU each importing torch before), and hosts.sh's over the whole run. Near 0% the cores,
# not the links, were in the way.
#
# Memory. Each Gloo rank holds ~260 MB once torch is imported (the CUDA wheel's relocated libraries) plus its
# tensor and Gloo's buffers; 64 of them do not fit beside other work in 24 GB. Before each run the script keeps,
# per side, only the sizes for which p x (per-rank base + 2 x size) stays under 85% of MemAvailable (bases: Gloo
# 300 MB, Spindle 32 MB, an estimate) and says what it left out; GRID_NO_MEMORY_CHECK=1 turns this off.
#
# Usage: bash benches/allreduce-grid.sh [--ranks 4,8,16,32,64] [--sizes 65536,1048576,16777216,67108864]
#          [--rate 100mbit|auto|none] [--repeats 5] [--per-host 1] [--stat best|median]
#          [--algorithms ring,halving-doubling,recursive-doubling,two-level,auto] [--only spindle|gloo]
# Needs root (network namespaces; without, hosts.sh's SKIPPED line and exit 77). Spindle's side builds the example
# with cargo unless SPINDLE_RANK_BIN names a binary; Gloo's side uses the bench-only venv target/bench-torch, made
# here as benches/allreduce.sh makes it (torch from PyPI, some GB). CI does not run this. Expect long runs: at 64
# ranks and 50mbit one 64 MB all-reduce takes ~21 s, and every algorithm runs 1 + repeats times.
# Exit: 0 when every rank of every run succeeded, else 1 (the failed rank's stderr tail is printed).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/benches/allreduce-grid.sh"
readonly SPINDLE_PORT=29600 GLOO_PORT=29500

say() { echo "[grid] $*" >&2; }
die() {
  say "$*"
  exit 2
}

# bps RATE: bits per second of a tc rate like 100mbit (hosts.sh accepts these forms only).
bps() {
  local num=${1%%[a-z]*}
  case ${1#"$num"} in
    bit) echo "$num" ;; kbit) echo $((num * 1000)) ;; mbit) echo $((num * 1000000)) ;;
    gbit) echo $((num * 1000000000)) ;;
  esac
}

# Idle (idle + iowait) and total jiffies of the whole machine (user .. steal of /proc/stat's first line).
cpu_jiffies() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print $5 + $6, t; exit }' /proc/stat; }

# ---------------------------------------------------------------------------------------------------------------
# Inside hosts.sh (host 1's namespace, HOSTS_* exported): for each side, start every rank, wait for all, print rank
# 0's output. `--in-hosts P K SPINDLE_SIZES GLOO_SIZES REPEATS ALGORITHMS BIN PYTHON`, "-" for a side's sizes skips it.
run_side() {
  local side=$1 sizes=$2 out="$HOSTS_CONTROL/$1" peers="" secret r rc pid left tick failed="" pids=()
  local idle0 total0 idle1 total1
  mkdir -p "$out"
  for ((r = 0; r < p; r++)); do peers+="${peers:+,}${addrs[r / per_host]}:$((SPINDLE_PORT + r % per_host))"; done
  secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  read -r idle0 total0 < <(cpu_jiffies)
  for ((r = 0; r < p; r++)); do
    if [[ $side == spindle ]]; then
      ip netns exec "${ns[r / per_host]}" env SPINDLE_BENCH_SECRET="$secret" "$bin" --rank "$r" --peers "$peers" \
        --algorithms "$algorithms" --sizes "$sizes" --repeats "$repeats" </dev/null >"$out/$r.out" 2>"$out/$r.err" &
    else
      # One thread per rank: many ranks share 2 cores.
      ip netns exec "${ns[r / per_host]}" env GLOO_SOCKET_IFNAME="$HOSTS_DEV" OMP_NUM_THREADS=1 "$py" \
        "$root/benches/python/gloo_rank.py" --rank "$r" --world "$p" --master "${addrs[0]}:$GLOO_PORT" \
        --sizes "$sizes" --repeats "$repeats" </dev/null >"$out/$r.out" 2>"$out/$r.err" &
    fi
    pids+=("$!")
  done
  # Wait for every rank; the first that fails ends the others (hosts.sh's timeout bounds the whole). `ip netns
  # exec` execs the rank, so each PID is the rank itself.
  left=$p
  for ((tick = 0; left > 0 && tick < 7200 * 5; tick++)); do
    for ((r = 0; r < p; r++)); do
      [[ -n ${pids[r]} ]] || continue
      kill -0 "${pids[r]}" 2>/dev/null && continue
      wait "${pids[r]}"
      rc=$?
      pids[r]=""
      left=$((left - 1))
      if ((rc != 0)); then
        failed+=" $r"
        say "$side rank $r exited with $rc; the tail of its stderr:"
        tail -n 20 "$out/$r.err" | sed 's/^/[grid]   /' >&2
      fi
    done
    if [[ -n $failed ]]; then
      for pid in "${pids[@]}"; do [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null; done
      break
    fi
    ((left > 0)) && sleep 0.2
  done
  read -r idle1 total1 < <(cpu_jiffies)
  grep -v '^\[Gloo\]' "$out/0.out" # Gloo's connection notice
  echo "[grid] $side cpu idle $(((idle1 - idle0) * 100 / (total1 - total0 > 0 ? total1 - total0 : 1)))% from its" \
    "ranks' start to their end"
  [[ -z $failed ]]
}
if [[ ${1:-} == --in-hosts ]]; then
  p=$2 per_host=$3 spindle_sizes=$4 gloo_sizes=$5 repeats=$6 algorithms=$7 bin=$8 py=$9
  read -ra ns <<<"$HOSTS_NS"
  read -ra addrs <<<"$HOSTS_ADDRS"
  status=0
  [[ $spindle_sizes == - ]] || run_side spindle "$spindle_sizes" || status=1
  [[ $gloo_sizes == - ]] || run_side gloo "$gloo_sizes" || status=1
  exit "$status"
fi

# ---------------------------------------------------------------------------------------------------------------
# The driver.
ranks_list=4,8,16,32,64 sizes=65536,1048576,16777216,67108864 rate=100mbit repeats=5 per_host=1 stat=best only=""
algorithms=ring,halving-doubling,recursive-doubling,two-level,auto
while (($# > 0)); do
  case $1 in
    --ranks) ranks_list=${2:?} ;; --sizes) sizes=${2:?} ;; --rate) rate=${2:?} ;; --repeats) repeats=${2:?} ;;
    --per-host) per_host=${2:?} ;; --stat) stat=${2:?} ;; --only) only=${2:?} ;;
    --algorithms) algorithms=${2:?} ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
  shift 2
done
[[ $ranks_list =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--ranks must be numbers, comma-separated"
[[ $sizes =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--sizes must be bytes, comma-separated"
[[ $rate == auto || $rate == none || $rate =~ ^[1-9][0-9]*(bit|kbit|mbit|gbit)$ ]] ||
  die "--rate: like 100mbit, auto or none"
[[ $repeats =~ ^[1-9][0-9]*$ && $per_host =~ ^[1-9][0-9]*$ ]] || die "--repeats and --per-host must be >= 1"
[[ $stat == best || $stat == median ]] || die "--stat is best or median"
[[ -z $only || $only == spindle || $only == gloo ]] || die "--only is spindle or gloo"
[[ ,$algorithms, == *,auto,* && ,$algorithms, == *,ring,* ]] || die "--algorithms must include ring and auto"
IFS=, read -ra ranks_arr <<<"$ranks_list"
for p in "${ranks_arr[@]}"; do
  ((p % per_host == 0 && p / per_host >= 2 && p / per_host <= 64)) ||
    die "$p ranks at $per_host per host: need a whole number of hosts, 2..64"
done
cd "$root" || exit 2

bin=${SPINDLE_RANK_BIN:-$root/target/release/examples/allreduce_rank}
if [[ $only != gloo && -z ${SPINDLE_RANK_BIN:-} ]]; then
  bash ci/setup-tensorflow.sh >/dev/null || die "ci/setup-tensorflow.sh failed"
  cargo build -q --release -p spindle-runtime --example allreduce_rank || die "could not build allreduce_rank"
fi
[[ $only == gloo || -x $bin ]] || die "no executable $bin"
torch_version=2.9.1
py=$root/target/bench-torch/bin/python
if [[ $only != spindle ]] &&
  ! "$py" -c "import torch; assert torch.__version__.startswith('$torch_version')" 2>/dev/null; then
  python3 -m venv target/bench-torch
  target/bench-torch/bin/pip install -q --disable-pip-version-check "torch==$torch_version" numpy || die "no torch"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/allreduce-grid.XXXXXX") || exit 2
tag=g$(($$ % 100000))
hosts() { HOSTS_ID=$tag "$root/tests/netns/hosts.sh" run "$@"; }

# What 2 cores move through the emulated path: one unshaped stream of 1 GB, host 1 -> host 2, best of 3 (the
# capacity; a slower try only saw other work on the cores).
probe=$root/tests/netns/tcp_probe.py
# shellcheck disable=SC2016 # expanded by the inner shell, in host 1
HOSTS_N=2 HOSTS_RATE="" HOSTS_TIMEOUT=120 hosts "$work/path" -- bash -c \
  'for port in 9000 9001 9002; do
     ip netns exec "${HOSTS_NS#* }" /usr/bin/python3 "$0" serve "${HOSTS_ADDRS#* }" $port &
     /usr/bin/python3 "$0" stream "${HOSTS_ADDRS#* }" $port 1000000000 || exit
     wait
   done' "$probe" >"$work/path.log" 2>&1
rc=$?
((rc == 77)) && { grep -m1 '^SKIPPED' "$work/path.log"; exit 77; }
path_mbit=$(awk '$1 == "stream" && $7 > m { m = $7 } END { printf "%d", m }' "$work/path.log")
((rc == 0 && path_mbit > 0)) || { cat "$work/path.log" >&2; die "the path throughput probe failed"; }
echo "GRID path: one unshaped TCP stream between 2 emulated hosts moves $path_mbit Mbit/s (best of 3 x 1 GB)"

# auto_rate HOSTS: the largest 1-2-5 rate in mbit with hosts x rate <= 1/4 of the path's throughput.
auto_rate() {
  local want=$((path_mbit / 4 / $1)) best=1 d m
  for ((m = 1; m <= 100000; m *= 10)); do
    for d in 1 2 5; do ((d * m <= want)) && best=$((d * m)); done
  done
  echo "${best}mbit"
}

# fitting P BASE_MB: the sizes for which P ranks of BASE_MB + 2 x size stay under 85% of MemAvailable ("-": none).
fitting() {
  local avail_kb
  avail_kb=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
  awk -v s="$sizes" -v p="$1" -v base="$2" -v avail="$avail_kb" -v off="${GRID_NO_MEMORY_CHECK:-0}" 'BEGIN {
      n = split(s, z, ","); out = ""
      for (i = 1; i <= n; i++)
        if (off == 1 || p * (base * 1048576 + 2 * z[i]) <= 0.85 * avail * 1024) out = out (out == "" ? "" : ",") z[i]
      print out == "" ? "-" : out }'
}

summary=()
status=0
for p in "${ranks_arr[@]}"; do
  n=$((p / per_host))
  r=$rate
  [[ $rate == auto ]] && r=$(auto_rate "$n")
  [[ $rate == none ]] && r=""
  if [[ -n $r ]]; then
    link_bps=$(bps "$r")
    echo "GRID $p ranks on $n hosts, rate ${r}: aggregate $((n * link_bps / 1000000)) Mbit/s =" \
      "$((n * link_bps / 10000 / path_mbit))% of the path's $path_mbit Mbit/s"
  else
    link_bps=$((path_mbit * 1000000))
    echo "GRID $p ranks on $n hosts, links unshaped"
  fi
  spindle_sizes=- gloo_sizes=-
  [[ $only != gloo ]] && spindle_sizes=$(fitting "$p" 32)
  [[ $only != spindle ]] && gloo_sizes=$(fitting "$p" 300)
  [[ $only != gloo && $spindle_sizes != "$sizes" ]] &&
    say "memory: Spindle at $p ranks runs sizes $spindle_sizes only (of $sizes)"
  [[ $only != spindle && $gloo_sizes != "$sizes" ]] &&
    say "memory: Gloo at $p ranks runs sizes $gloo_sizes only (of $sizes)"
  # The time limit: 3x every run at the bound (the path's rate where unshaped), plus the processes' start.
  runs=0
  [[ $spindle_sizes != - ]] && runs=$(tr , '\n' <<<"$algorithms" | wc -l)
  [[ $gloo_sizes != - ]] && runs=$((runs + 1))
  limit=$(awk -v s="$sizes" -v p="$p" -v b="$link_bps" -v k=$((repeats + 2)) -v a="$runs" 'BEGIN {
      n = split(s, z, ","); t = 0
      for (i = 1; i <= n; i++) t += 2 * (p - 1) / p * z[i] * 8 / b
      printf "%d", 300 + 3 * p + 3 * t * k * a }')
  log="$work/$p.log"
  HOSTS_N=$n HOSTS_RATE=$r HOSTS_TIMEOUT=$limit hosts "$work/$p" -- bash "$self" --in-hosts "$p" "$per_host" \
    "$spindle_sizes" "$gloo_sizes" "$repeats" "$algorithms" "$bin" "$py" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  ((rc == 77)) && exit 77
  if ((rc != 0)); then
    say "$p ranks failed ($rc); logs in $work/$p"
    status=1
  fi
  # One GRID line per size from the BENCH and GLOO lines (fields read by name), then the run's own figures.
  mapfile -t lines < <(awk -v stat="${stat}_ms" -v p="$p" -v rate="${r:-none}" \
    -v bps="${r:+$link_bps}" -v sizes="$sizes" '
    function val(k,   i) { for (i = 1; i < NF; i++) if ($i == k) return $(i + 1); return "" }
    function ms(x) { return x == "" ? "-" : sprintf("%.2f", x) }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
    $1 == "BENCH" && $2 == "allreduce" {
      b = val("bytes"); a = val("algorithm")
      if (a == "auto") { auto[b] = val(stat); chosen[b] = val("chosen") }
      if (a == "ring") ring[b] = val(stat)
    }
    $1 == "GLOO" && $2 == "allreduce" { gloo[val("bytes")] = val(stat) }
    $1 == "GLOO" && $2 == "cpu_idle_pct" { gloo_idle = $3 "%" }
    $1 == "[grid]" && $3 == "cpu" && $4 == "idle" { side_idle[$2] = $5 }
    $1 == "[hosts]" && $2 == "latency:" { lat = $0 }
    $1 == "[hosts]" && $2 == "cpu" { idle = $4 }
    END {
      n = split(sizes, z, ",")
      for (i = 1; i <= n; i++) {
        b = z[i]
        bound = bps == "" ? "" : 2 * (p - 1) / p * b * 8 / bps * 1e3
        printf "GRID %d B %d ranks  rate %s  spindle-auto %s (%s)  ring %s  gloo %s  auto/gloo %s  auto/bound %s" \
          "  auto/ring %s\n", b, p, rate, ms(auto[b]), (b in chosen ? chosen[b] : "-"), ms(ring[b]), ms(gloo[b]),
          ratio(auto[b], gloo[b]), ratio(auto[b], bound), ratio(auto[b], ring[b])
      }
      sub(/^\[hosts\] /, "", lat)
      printf "GRID %d ranks: %s; cpu idle: spindle %s, gloo %s (after its imports %s), whole run %s\n", p, lat,
        ("spindle" in side_idle ? side_idle["spindle"] : "-"), ("gloo" in side_idle ? side_idle["gloo"] : "-"),
        (gloo_idle == "" ? "-" : gloo_idle), (idle == "" ? "-" : idle)
    }' "$log")
  printf '%s\n' "${lines[@]}"
  summary+=("${lines[@]}")
done
echo "GRID summary ($stat of $repeats runs, each run its slowest rank; logs in $work):"
printf '%s\n' "${summary[@]}"
exit "$status"
