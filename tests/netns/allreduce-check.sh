#!/usr/bin/env bash
# Runs inside tests/netns/hosts.sh (which exports HOSTS_NS and HOSTS_ADDRS): RANKS_PER_HOST (default 2) processes of
# allreduce_rank --check per emulated host, every all-reduce algorithm over SIZES (bytes, default 4,4000,1000000).
# Rank 0 prints a CHECK line per algorithm and size; every rank fails unless each algorithm gives the same bits on
# every rank and the ring's result to 1e-5. Exits non-zero when any rank did, after printing its stderr.
# Usage: allreduce-check.sh ALLREDUCE_RANK_BINARY
set -uo pipefail
bin=${1:?usage: allreduce-check.sh ALLREDUCE_RANK_BINARY}
per_host=${RANKS_PER_HOST:-2}
read -r -a namespaces <<<"${HOSTS_NS:?run inside tests/netns/hosts.sh}"
read -r -a addresses <<<"${HOSTS_ADDRS:?run inside tests/netns/hosts.sh}"
peers=()
for address in "${addresses[@]}"; do
  for ((k = 0; k < per_host; k++)); do peers+=("$address:$((29700 + k))"); done
done
peer_list=$(IFS=,; echo "${peers[*]}")
# The job's secret, by environment only.
SPINDLE_BENCH_SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export SPINDLE_BENCH_SECRET
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pids=()
for ((r = 0; r < ${#peers[@]}; r++)); do
  ip netns exec "${namespaces[$((r / per_host))]}" "$bin" --rank "$r" --peers "$peer_list" --check \
    --algorithms ring,halving-doubling,recursive-doubling,two-level,auto --sizes "${SIZES:-4,4000,1000000}" \
    >"$out/$r.out" 2>"$out/$r.err" </dev/null &
  pids+=("$!")
done
status=0
for ((r = 0; r < ${#pids[@]}; r++)); do
  if ! wait "${pids[$r]}"; then
    status=1
    echo "rank $r failed:" && tail -n 20 "$out/$r.err"
  fi
done
cat "$out/0.out"
exit $status
