"""One rank of Gloo's all_reduce (PyTorch's CPU collective, the one Horovod uses on CPUs), for a grid of processes
started by the caller, one per rank and possibly one per host (benches/allreduce-grid.sh on tests/netns/hosts.sh).
Timed as benches/python/gloo_allreduce.py and Spindle's allreduce_rank: float32 sums of S bytes over N ranks; per
size one untimed run, then `repeats` timed runs, each after a barrier, each run's time its slowest rank's.

Usage: gloo_rank.py --rank R --world N --master ADDR:PORT --sizes BYTES[,BYTES...] [--repeats K=5]
Rank 0 hosts the rendezvous (init_method tcp://ADDR:PORT, so ADDR must be rank 0's own address) and prints one line
per size: ``GLOO allreduce bytes <b> ranks <N> best_ms <x> median_ms <y>``, then ``GLOO cpu_idle_pct <p> ...``, the
machine's idle share from the rendezvous to the end; the other ranks print nothing.
GLOO_SOCKET_IFNAME (the interface Gloo's pairs use, e.g. the emulated host's eth0) comes from the caller.
"""

import argparse
import datetime
import statistics
import time

import torch
import torch.distributed as dist


def cpu_jiffies() -> tuple:
    """Idle (idle + iowait) and total jiffies of the whole machine (user .. steal of /proc/stat's first line)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[3] + v[4], sum(v)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world", type=int, required=True)
    p.add_argument("--master", required=True, help="ADDR:PORT of rank 0")
    p.add_argument("--sizes", required=True, help="bytes, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timeout", type=float, default=600, help="seconds any collective may wait")
    a = p.parse_args()
    sizes = [int(v) for v in a.sizes.split(",")]
    # Many ranks share a couple of cores: one intra-op thread each, as one rank per host would have to itself.
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{a.master}",
        rank=a.rank,
        world_size=a.world,
        timeout=datetime.timedelta(seconds=a.timeout),
    )
    # After the rendezvous every rank has imported torch (seconds of CPU each): from here on the idle share says
    # whether the cores, rather than the links, were in the way of the collectives.
    idle0, total0 = cpu_jiffies()
    for size in sizes:
        data = torch.ones(size // 4, dtype=torch.float32)
        dist.all_reduce(data)  # untimed: connections, buffers, page faults
        times = []
        for _ in range(a.repeats):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(data)
            times.append(time.perf_counter() - t0)
        # Each run's time is its slowest rank's.
        slowest = torch.tensor(times, dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        if a.rank == 0:
            ms = [t * 1e3 for t in slowest.tolist()]
            print(
                f"GLOO allreduce bytes {size} ranks {a.world} best_ms {min(ms):.3f} "
                f"median_ms {statistics.median(ms):.3f}",
                flush=True,
            )
    if a.rank == 0:
        idle1, total1 = cpu_jiffies()
        pct = 100 * (idle1 - idle0) / max(1, total1 - total0)
        print(
            f"GLOO cpu_idle_pct {pct:.0f} (the whole machine, from the rendezvous to the last all_reduce)", flush=True
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
