# Copyright (c) gppf_mm contributors. All rights reserved.
"""Launch training and evaluation of a config as child processes, with a
progress line, the way ``tools/dist_train.sh`` and ``tools/test.py`` run
them. Used by ``tools/demo.py`` and the small-scale Table 1 benchmark."""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Dict, List, Optional, Sequence

import torch

from gppf_mm.utils.dist import find_free_port

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
_ITER_RE = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')
_EVAL_RE = re.compile(r'Iter\((?:test|val)\)\s*\[\s*(\d+)/(\d+)\]')
_LOSS_RE = re.compile(r'\s loss: ([0-9.eE+-]+|nan|inf)')


class JobError(RuntimeError):
    """A child training or evaluation process failed."""


def device_plan(nproc: Optional[int] = None,
                devices: int = 2) -> Dict[str, object]:
    """How to run ``devices`` SIMT devices (each its own task per
    iteration): how many processes, with how many virtual devices each.

    With two or more CUDA devices: one process per GPU (at most ``nproc``,
    default ``devices``) on NCCL. With one GPU or on the CPU: one process
    holding all ``devices`` as virtual devices (on the CPU with every core
    as an OpenMP thread: on 2 cores 1.17x the task-batches per second of 2
    processes of one thread, tools/analysis_tools/benchmark_layouts.py), or
    ``nproc`` processes of one device each when ``nproc`` is given.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= 2:
        n = min(gpus, nproc or devices)
        return dict(nproc=n, devices=1, device='cuda', env={})
    device = 'cuda' if gpus == 1 else 'cpu'
    env = {} if gpus == 1 else dict(CUDA_VISIBLE_DEVICES='')
    if nproc:
        return dict(nproc=nproc, devices=1, device=device, env=env)
    if device == 'cpu':
        env['OMP_NUM_THREADS'] = str(os.cpu_count() or 1)
    return dict(nproc=1, devices=devices, device=device, env=env)


class _Progress:
    """One status line, redrawn in place on a terminal and printed every
    ``every`` seconds otherwise."""

    def __init__(self, label: str, stream=None, every: float = 30.0):
        self.label = label
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every = every
        self.start = time.time()
        self.last_print = 0.0
        self.width = 0

    def update(self, text: str, force: bool = False) -> None:
        elapsed = time.time() - self.start
        line = (f'[{self.label}] {text} '
                f'({int(elapsed // 60)}:{int(elapsed % 60):02d} elapsed)')
        if self.tty:
            pad = max(0, self.width - len(line))
            self.stream.write('\r' + line + ' ' * pad)
            self.width = len(line)
            self.stream.flush()
        elif force or time.time() - self.last_print >= self.every:
            self.stream.write(line + '\n')
            self.stream.flush()
            self.last_print = time.time()

    def close(self, text: str) -> None:
        self.update(text, force=True)
        if self.tty:
            self.stream.write('\n')
            self.stream.flush()


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return '#' * filled + '.' * (width - filled)


def run_logged(cmd: Sequence[str],
               log_file: str,
               label: str,
               env: Optional[Dict[str, str]] = None,
               timeout: Optional[float] = None,
               stream=None) -> str:
    """Run ``cmd`` in the repository root, write its output to ``log_file``
    and keep a progress line from the iteration counters it logs.

    Raises:
        JobError: when the command exits with a non-zero status (with the
            end of its output) or runs past ``timeout`` seconds.
    """
    os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = REPO + os.pathsep + full_env.get(
        'PYTHONPATH', '')
    full_env.update(env or {})
    progress = _Progress(label, stream)
    tail: deque = deque(maxlen=60)
    loss = None
    start = time.time()
    with open(log_file, 'w') as log:
        proc = subprocess.Popen(
            list(cmd), cwd=REPO, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True)

        def kill():  # the launcher and the ranks it started
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        # a timer, so that a job that hangs without printing is stopped too
        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line)
                m = _LOSS_RE.search(line)
                if m:
                    loss = m.group(1)
                m = _ITER_RE.search(line)
                if m:
                    done, total = int(m.group(1)), int(m.group(2))
                    rate = (time.time() - start) / max(done, 1)
                    eta = int(rate * (total - done))
                    progress.update(
                        f'train [{_bar(done, total)}] {done}/{total} '
                        f'loss {loss} eta {eta // 60}:{eta % 60:02d}')
                m = _EVAL_RE.search(line)
                if m:
                    progress.update(f'eval batch {m.group(1)}/{m.group(2)}')
            proc.wait()
        finally:
            if timer:
                timer.cancel()
            if proc.poll() is None:
                kill()
                proc.wait()
    took = time.time() - start
    if timeout and took >= timeout:
        progress.close(f'stopped after {took:.0f} s')
        raise JobError(f'{label}: still running after {timeout:.0f} s; '
                       f'log: {log_file}')
    if proc.returncode != 0:
        progress.close(f'failed after {took:.0f} s')
        raise JobError(f'{label} failed (exit {proc.returncode}); the end '
                       f'of {log_file}:\n' + ''.join(tail))
    progress.close(f'done in {took:.0f} s')
    return log_file


def train(config: str,
          work_dir: str,
          nproc: int = 2,
          cfg_options: Optional[Sequence[str]] = None,
          env: Optional[Dict[str, str]] = None,
          label: str = 'train',
          timeout: Optional[float] = None) -> str:
    """Train ``config`` on ``nproc`` local ranks (``torch.distributed.run``
    + ``tools/train.py --launcher pytorch``, as ``tools/dist_train.sh``);
    return the path of the last checkpoint."""
    cmd = [sys.executable]
    if nproc > 1:
        cmd += [
            '-m', 'torch.distributed.run', '--nnodes=1',
            f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
            f'--master_port={find_free_port()}'
        ]
    cmd += [osp.join(REPO, 'tools', 'train.py'), config, '--work-dir',
            work_dir]
    if nproc > 1:
        cmd += ['--launcher', 'pytorch']
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    run_logged(cmd, osp.join(work_dir, 'train.log'), label, env, timeout)
    return last_checkpoint(work_dir)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint named in ``work_dir/last_checkpoint``."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise JobError(f'no checkpoint was written to {work_dir}')
    with open(marker) as f:
        path = f.read().strip()
    if not osp.isabs(path):
        path = osp.join(work_dir, osp.basename(path))
    return path


def evaluate(config: str,
             checkpoint: str,
             work_dir: str,
             tasks: Optional[List[str]] = None,
             cfg_options: Optional[Sequence[str]] = None,
             env: Optional[Dict[str, str]] = None,
             label: str = 'test',
             timeout: Optional[float] = None) -> Dict[str, float]:
    """Evaluate ``checkpoint`` with ``tools/test.py`` (one process) and
    return its metrics, keyed ``<task>/<metric>``."""
    out = osp.join(work_dir, 'metrics.json')
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), config, checkpoint,
        '--work-dir', work_dir, '--out', out
    ]
    if tasks:
        cmd += ['--task', *tasks]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    run_logged(cmd, osp.join(work_dir, 'test.log'), label, env, timeout)
    with open(out) as f:
        return json.load(f)


def iteration_overrides(cfg, iters: int,
                        validate: bool = True) -> List[str]:
    """``--cfg-options`` that change the length of an iteration-based
    config and what depends on it: the schedulers' begin, end and
    milestones (scaled), the validation interval (no validation during
    training when ``validate`` is False) and the checkpoint interval."""
    if iters < 1:
        raise ValueError(f'iterations must be >= 1, got {iters}')
    opts = [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}'
    ]
    if not validate:  # the loops validate at the last iteration too
        opts.append(f'train_cfg.val_begin={iters + 1}')
    old = cfg.train_cfg.max_iters
    for i, sched in enumerate(cfg.get('param_scheduler', None) or []):
        scaled = {
            key: min(iters, round(sched[key] * iters / old))
            for key in ('begin', 'end') if sched.get(key) is not None
        }
        if 'end' in scaled:  # a scheduler needs end > begin
            scaled['end'] = max(scaled['end'], scaled.get('begin', 0) + 1)
        opts += [f'param_scheduler.{i}.{k}={v}' for k, v in scaled.items()]
        if sched.get('milestones'):  # MultiStepLR: absolute iterations
            steps = [min(iters, max(1, round(m * iters / old)))
                     for m in sched['milestones']]
            opts.append(f'param_scheduler.{i}.milestones={steps}'.replace(
                ' ', ''))
    return opts


def last_val_metrics(work_dir: str) -> Dict[str, float]:
    """The metrics of the last validation MMEngine logged in ``work_dir``
    (``<timestamp>/vis_data/scalars.json``; the newest run's)."""
    import glob
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    found = None
    if logs:
        with open(logs[-1]) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' not in record and 'lr' not in record:
                    found = record
    if found is None:
        raise JobError(f'no validation metrics were logged in {work_dir}')
    return {k: float(v) for k, v in found.items()
            if k not in ('step', 'time', 'data_time')}


def single_task_iters(weights, total_iters):
    """The budget split: task t gets ``T * w_t / sum(w)`` iterations (at
    least one)."""
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(f'task weights must sum to > 0, got {weights}')
    return {
        t: max(1, round(total_iters * w / total))
        for t, w in weights.items()
    }


def write_run_config(cfg, tasks, path, options=()):
    """The base config with only ``tasks`` kept and ``options``
    (``--cfg-options`` strings, ``key=value``) merged in, written to
    ``path``: the file describes the run's model, so that
    ``tools/test.py`` and analyses build what was trained."""
    from mmengine.config import Config, DictAction
    run_cfg = Config(cfg.to_dict(), filename=cfg.filename)
    if tasks is not None:
        run_cfg.tasks = {t: cfg.tasks[t] for t in tasks}
    for option in options:
        key, sep, value = option.partition('=')
        if not sep:
            raise ValueError(f'a run option must be key=value, got '
                             f'{option!r}')
        run_cfg.merge_from_dict({key: DictAction._parse_iterable(value)})
    os.makedirs(osp.dirname(path), exist_ok=True)
    run_cfg.dump(path)
    return path
