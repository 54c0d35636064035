# Copyright (c) gppf_mm contributors. All rights reserved.
"""Run a function in several processes (gloo or NCCL), with a timeout.

Used by the tests of distributed code: a hang or an exception in any rank
fails the caller instead of blocking it.
"""
import io
import os
import traceback
from datetime import timedelta
from typing import Any, Callable, List

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gppf_mm.utils.dist import find_free_port


def _worker(rank: int, world_size: int, port: int, fn: Callable,
            args: tuple, queue, timeout: float, backend: str) -> None:
    # ranks beyond the GPU count share GPUs: MMEngine reads LOCAL_RANK as
    # the index of the rank's GPU
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank % gpus if gpus else rank),
        WORLD_SIZE=str(world_size))
    try:
        torch.set_num_threads(1)
        if backend == 'nccl':
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(
            backend,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout))
        result = fn(rank, world_size, *args)
        # plain bytes: tensors sent through a queue live in shared memory
        # that disappears with this process
        buffer = io.BytesIO()
        torch.save(result, buffer)
        queue.put((rank, 'ok', buffer.getvalue()))
    except BaseException:  # noqa: B902 - report every failure to the parent
        queue.put((rank, 'error', traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(fn: Callable[..., Any],
                    world_size: int = 2,
                    *args: Any,
                    timeout: float = 120.0,
                    backend: str = 'gloo') -> List[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` ranks.

    With ``backend='nccl'`` rank ``r`` uses CUDA device
    ``r % device_count``.

    Returns the per-rank return values (which must be picklable). Raises
    ``RuntimeError`` with the rank's traceback if any rank fails, and
    ``TimeoutError`` if the ranks do not finish within ``timeout`` seconds
    (the processes are killed).
    """
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = find_free_port()
    procs = [
        ctx.Process(
            target=_worker,
            args=(rank, world_size, port, fn, args, queue, timeout,
                  backend),
            daemon=True) for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    results = {}
    errors = []
    try:
        import queue as queue_mod
        import time
        deadline = time.monotonic() + timeout
        while len(results) + len(errors) < world_size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f'distributed run of {fn.__name__} did not finish in '
                    f'{timeout:.0f}s (finished ranks: {sorted(results)})')
            try:
                rank, status, payload = queue.get(timeout=min(left, 1.0))
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and not errors:
                    raise RuntimeError(
                        f'a rank of {fn.__name__} died with exit code '
                        f'{dead[0].exitcode}')
                continue
            if status == 'ok':
                results[rank] = torch.load(
                    io.BytesIO(payload), weights_only=False)
            else:
                errors.append(f'rank {rank}:\n{payload}')
                break
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise RuntimeError('distributed run failed\n' + '\n'.join(errors))
    return [results[r] for r in range(world_size)]
