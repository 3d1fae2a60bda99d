"""Gloo's all_reduce (PyTorch's CPU collective, the one Horovod uses on CPUs) over loopback TCP, timed as
native/spindle-runtime/examples/allreduce_bench.rs times Spindle's ring: float32 sums of S bytes over N ranks, one
untimed run, then the best of `repeats` runs, each run timed by its slowest rank. Each rank is a process.

Usage: gloo_allreduce.py [repeats=5] [sizes in MB=1,10,100] [ranks=2,4]
Prints one line per case: ``GLOO allreduce <MB> MB <N> ranks <ms> ms``.
"""

import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

MB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, world: int, port: int, bytes_: int, repeats: int, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    data = torch.ones(bytes_ // 4, dtype=torch.float32)
    times = []
    for _ in range(repeats + 1):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(data)
        times.append(time.perf_counter() - t0)
    # Each run's time is its slowest rank's; the best run after the untimed first.
    slowest = torch.tensor(times[1:], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    if rank == 0:
        out.put(float(slowest.min()))
    dist.destroy_process_group()


def gloo(world: int, bytes_: int, repeats: int) -> float:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, world, port, bytes_, repeats, out)) for r in range(world)]
    for p in procs:
        p.start()
    best = out.get(timeout=600)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a Gloo rank exited with status {p.exitcode}")
    return best


def main() -> None:
    args = sys.argv[1:]
    repeats = int(args[0]) if len(args) > 0 else 5
    sizes = [int(v) for v in args[1].split(",")] if len(args) > 1 else [1, 10, 100]
    worlds = [int(v) for v in args[2].split(",")] if len(args) > 2 else [2, 4]
    # Loopback only.
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    print(f"Gloo all_reduce over loopback TCP, torch {torch.__version__}, best of {repeats}", flush=True)
    for mb in sizes:
        for n in worlds:
            print(f"GLOO allreduce {mb:>4} MB  {n} ranks  {gloo(n, mb * MB, repeats) * 1e3:9.2f} ms", flush=True)


if __name__ == "__main__":
    main()
