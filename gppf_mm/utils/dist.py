# Copyright (c) gppf_mm contributors. All rights reserved.
"""Distributed start-up that also works on machines without a GPU."""
import os
import socket
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def find_free_port() -> int:
    """A free TCP port on localhost (for a rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def default_backend() -> str:
    """``nccl`` where CUDA is available, ``gloo`` otherwise."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def prepare_dist_cfg(cfg: Config, launcher: str) -> None:
    """Pick a backend that the machine supports and start the process group.

    MMEngine 0.10.7 calls ``torch.cuda.set_device`` before it creates the
    process group, which fails on a machine without a GPU. When there is no
    CUDA, this sets ``env_cfg.dist_cfg.backend = 'gloo'`` and creates the
    process group here, so that the runner finds it initialised and skips
    its own start-up. With CUDA nothing changes except that an explicit
    ``gloo`` backend stays as configured.
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if torch.cuda.is_available():
        dist_cfg.setdefault('backend', 'nccl')
        return
    dist_cfg['backend'] = 'gloo'
    # DDP refuses device_ids for CPU modules; MMEngine passes LOCAL_RANK
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    elif 'DistributedDataParallel' in str(wrapper.get('type', '')):
        wrapper['device_ids'] = None
    timeout = dist_cfg.get('timeout', 1800)
    if launcher == 'slurm':
        _set_slurm_env(dist_cfg.get('port'))
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} is not supported without '
                         'CUDA; use pytorch or slurm')
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        timeout=timedelta(seconds=timeout))


def _set_slurm_env(port: Optional[int]) -> None:
    """Translate SLURM variables into the ones torch's env:// init reads."""
    import subprocess
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)


def release_process_group() -> None:
    """Shut the default process group down, if there is one, before the
    interpreter exits (the end of ``tools/train.py`` and ``tools/test.py``).
    Left to the interpreter's teardown, a gloo process group's threads were
    now and then destroyed while running: the process aborted after
    training ('terminate called without an active exception')."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
