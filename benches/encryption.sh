#!/usr/bin/env bash
# The cost of encrypted channels (RingConfig.encrypt): the same all-reduce plain and encrypted, in one run, each
# rank a process (examples/allreduce_rank) on loopback. Per rank count, size and algorithm, prints the best and
# median seconds of each (a run's time is its slowest rank's) and plain_time / encrypted_time on the median, the
# encrypted throughput as a fraction of the plain one (target >= 0.8).
# Plain and encrypted alternate ROUNDS times (REPEATS timed all-reduces per launch); best and median are taken
# over every timed run of a mode, so that drift of the machine weighs on both alike.
# Usage: bash benches/encryption.sh [ranks=4,2] [sizes in MiB=16,64] [repeats=5] [rounds=2] [algorithms=ring]
# With ENCRYPTION_RATE (e.g. 2gbit) the ranks run one per emulated host (tests/netns/hosts.sh, root) whose links a
# tbf limits to that rate: the network, not the 2 cores' copies, then bounds the plain all-reduce, as on a cluster.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ranks_list=${1:-4,2}
sizes_mib=${2:-16,64}
repeats=${3:-5}
rounds=${4:-2}
algorithms=${5:-ring}
die() { echo "encryption.sh: $*" >&2; exit 1; }

if [[ -n ${ENCRYPTION_RATE:-} && -z ${HOSTS_NS:-} ]]; then
  n=0
  for p in ${ranks_list//,/ }; do ((p > n)) && n=$p; done
  ctl=$(mktemp -d)
  HOSTS_N=$n HOSTS_RATE=$ENCRYPTION_RATE bash tests/netns/hosts.sh run "$ctl" -- bash "$0" "$@"
  rc=$?
  rm -rf "$ctl"
  exit $rc
fi
bin=${SPINDLE_RANK_BIN:-$root/target/release/examples/allreduce_rank}
if [[ -z ${SPINDLE_RANK_BIN:-} ]]; then
  cargo build -q --release -p spindle-runtime --example allreduce_rank || die "could not build allreduce_rank"
fi
sizes=""
for m in ${sizes_mib//,/ }; do sizes+="${sizes:+,}$((m << 20))"; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
where="loopback 127.0.0.1"
ns=() addrs=()
if [[ -n ${HOSTS_NS:-} ]]; then
  read -ra ns <<< "$HOSTS_NS"
  read -ra addrs <<< "$HOSTS_ADDRS"
  where="one rank per emulated host, links at ${HOSTS_RATE:-unlimited}"
fi
echo "[encryption] $(nproc) cores; $where; ranks $ranks_list; sizes $sizes_mib MiB; algorithms $algorithms; $rounds rounds of $repeats"

# One launch: P ranks on 127.0.0.1, fresh ports and secret; rank 0's BENCH lines go to stdout.
launch() {
  local p=$1 flag=$2 base peers="" r pids=() failed=0
  base=$((20000 + RANDOM % 30000))
  for ((r = 0; r < p; r++)); do peers+="${peers:+,}${addrs[r]:-127.0.0.1}:$((base + r))"; done
  export SPINDLE_BENCH_SECRET
  SPINDLE_BENCH_SECRET=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for ((r = 0; r < p; r++)); do
    ${ns[r]:+ip netns exec "${ns[r]}"} timeout 600 "$bin" --rank $r --peers "$peers" --algorithms "$algorithms" --sizes "$sizes" \
      --repeats "$repeats" --times $flag > "$work/rank$r.out" 2> "$work/rank$r.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if ((failed)); then cat "$work"/rank*.err >&2; die "a rank failed ($p ranks $flag)"; fi
  grep '^TIMES' "$work/rank0.out"
}

for p in ${ranks_list//,/ }; do
  : > "$work/times"
  for ((round = 0; round < rounds; round++)); do
    launch "$p" "" >> "$work/times"
    launch "$p" --encrypt >> "$work/times"
  done
  # TIMES allreduce bytes B ranks P algorithm A encrypted E ms t1 t2 ...
  awk '
    function field(name,  i) { for (i = 1; i < NF; i++) if ($i == name) return $(i + 1) }
    function sort(a, n,  i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }
    {
      k = field("bytes") " " field("ranks") " " field("algorithm"); e = field("encrypted")
      if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
      for (i = 1; i < NF; i++) if ($i == "ms") break
      for (i++; i <= NF; i++) { c = ++count[k, e]; t[k, e, c] = $i / 1000 }
    }
    END {
      for (o = 1; o <= nk; o++) {
        k = order[o]; split(k, f, " ")
        for (m = 0; m < 2; m++) {
          e = m ? "true" : "false"; n = count[k, e]; delete a
          for (i = 1; i <= n; i++) a[i] = t[k, e, i]
          sort(a, n); best[m] = a[1]; med[m] = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2; runs[m] = n
        }
        printf "BENCH encryption %3d MiB  %d ranks  %-18s plain best %.4f s median %.4f s | encrypted best %.4f s median %.4f s | plain/encrypted median %.2f best %.2f (%d runs each)\n",
          f[1] / 1048576, f[2], f[3], best[0], med[0], best[1], med[1], med[0] / med[1], best[0] / best[1], runs[0]
      }
    }' "$work/times"
done
