# Copyright (c) gppf_mm contributors. All rights reserved.
"""What one small gloo all-reduce costs between two local ranks, and why.

Cross-task BN makes two all-reduces of a few numbers per norm and
iteration, between stretches of computation. This tool times an
all-reduce of 8 floats on 2 local gloo ranks with a 256 x 256 matmul
before each one (as a forward has), under the thread settings that
matter on a small CPU machine, in one run:

- ``threads=2``: torch's default of one OpenMP thread per core, so the two
  ranks run four compute threads on two cores, and OpenMP's threads
  spin-wait after each matmul;
- ``threads=2, OMP_WAIT_POLICY=PASSIVE``: the same, threads sleep instead;
- ``threads=1``: one compute thread per rank (what ``torch.distributed.run``
  sets, ``OMP_NUM_THREADS=1``, unless the variable is set);

and a plain TCP round trip between two processes for scale. It prints the
median and mean time per all-reduce and each setting's median over
``threads=1``'s.

Example::

    python tools/analysis_tools/benchmark_allreduce.py --iters 400
"""
import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gppf_mm.utils import find_free_port

SETTINGS = (
    ('threads=2', 2, None),
    ('threads=2, OMP_WAIT_POLICY=PASSIVE', 2, 'PASSIVE'),
    ('threads=1', 1, None),
)


def _rank(rank, port, threads, iters, queue):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    x, y = torch.zeros(8), torch.randn(256, 256)
    for _ in range(20):
        dist.all_reduce(x)
    dist.barrier()
    times = []
    for _ in range(iters):
        (y @ y).sum()
        start = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - start)
    if rank == 0:
        queue.put(times)
    dist.destroy_process_group()


def time_allreduce(threads: int, wait_policy, iters: int) -> list:
    """Seconds per all-reduce on rank 0, one value per iteration."""
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    saved = os.environ.get('OMP_WAIT_POLICY')
    if wait_policy:  # the children read it when OpenMP starts
        os.environ['OMP_WAIT_POLICY'] = wait_policy
    try:
        port = find_free_port()
        procs = [ctx.Process(target=_rank,
                             args=(r, port, threads, iters, queue))
                 for r in range(2)]
        for p in procs:
            p.start()
        times = queue.get()
        for p in procs:
            p.join(timeout=60)
    finally:
        if wait_policy:
            if saved is None:
                os.environ.pop('OMP_WAIT_POLICY', None)
            else:
                os.environ['OMP_WAIT_POLICY'] = saved
    return times


def _echo(port, ready):
    with socket.socket() as s:
        s.bind(('127.0.0.1', port))
        s.listen(1)
        ready.set()
        conn, _ = s.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(64)
            if not data:
                break
            conn.sendall(data)


def time_tcp(iters: int) -> list:
    """Seconds per 32-byte TCP round trip to another process."""
    ctx = mp.get_context('spawn')
    port, ready = find_free_port(), ctx.Event()
    proc = ctx.Process(target=_echo, args=(port, ready))
    proc.start()
    ready.wait(60)
    times = []
    with socket.create_connection(('127.0.0.1', port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(iters):
            start = time.perf_counter()
            conn.sendall(b'x' * 32)
            conn.recv(64)
            times.append(time.perf_counter() - start)
    proc.join(timeout=60)
    return times


def summary(times) -> tuple:
    ordered = sorted(times)
    return ordered[len(ordered) // 2], sum(ordered) / len(ordered)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=400)
    args = parser.parse_args(argv)
    rows = {name: summary(time_allreduce(threads, policy, args.iters))
            for name, threads, policy in SETTINGS}
    tcp = summary(time_tcp(args.iters))
    base = rows['threads=1'][0]
    print(f'all-reduce of 8 floats, 2 gloo ranks, {args.iters} iterations, '
          'a 256 x 256 matmul before each')
    for name, (median, mean) in rows.items():
        print(f'{name:36s} median {median * 1e6:7.0f} us  mean '
              f'{mean * 1e6:7.0f} us  median / threads=1: '
              f'{median / base:.2f}')
    print(f'{"TCP round trip, 32 bytes":36s} median {tcp[0] * 1e6:7.0f} us  '
          f'mean {tcp[1] * 1e6:7.0f} us')
    return rows, tcp


if __name__ == '__main__':
    main()
