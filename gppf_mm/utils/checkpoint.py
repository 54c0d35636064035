# Copyright (c) gppf_mm contributors. All rights reserved.
"""Load MMEngine checkpoints on torch >= 2.6.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and
MMEngine 0.10.7 calls it without the argument: a checkpoint written by the
runner holds a message hub (``HistoryBuffer`` objects with numpy arrays), so
resuming fails with ``UnpicklingError: Weights only load failed``.

:func:`safe_torch_load` keeps the safe ``weights_only=True`` mode and allows
exactly the extra types that MMEngine and OpenMMLab checkpoints contain
(MMEngine's ``HistoryBuffer``, numpy arrays, scalars and dtypes). Anything
else is refused with an error that names the file and the type. Set
``GPPF_UNSAFE_TORCH_LOAD=1`` to load a checkpoint you trust with the full
unpickler instead.

Importing gppf_mm changes nothing in MMEngine: the safe loader is MMEngine's
loader of local files only inside :func:`gppf_checkpoint_loading`, which
gppf_mm's runner and tools enter around the checkpoints they read; other
runners in the same process keep MMEngine's own loader.
"""
import contextlib
import os
import os.path as osp
import pickle
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

UNSAFE_ENV = 'GPPF_UNSAFE_TORCH_LOAD'


def _numpy_safe_globals() -> List[Any]:
    """Types numpy needs to unpickle arrays, scalars and dtypes."""
    try:
        from numpy.core import multiarray
    except ImportError:  # numpy >= 2 names it numpy._core
        from numpy._core import multiarray  # type: ignore
    found = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:  # numpy >= 1.25: one class per dtype
        found += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    # scalar types referenced by dtype pickles
    found += [
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
        np.uint32, np.uint64, np.float16, np.float32, np.float64
    ]
    return found


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as far as pickled ``HistoryBuffer`` objects need it.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; the general ``getattr`` would open
    the weights-only unpickler to arbitrary attribute chains.
    """
    allowed = name in HistoryBuffer._statistics_methods or (
        not name.startswith('_') and callable(vars(HistoryBuffer).get(name)))
    if obj is HistoryBuffer and allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def checkpoint_safe_globals() -> List[Any]:
    """Every non-tensor global allowed in a weights-only checkpoint load."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_safe_globals()


def safe_torch_load(filename: Any, map_location: Optional[Any] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and MMEngine's types allowed.

    Args:
        filename: a path or a file-like object.
        map_location: as for :func:`torch.load`.

    Raises:
        pickle.UnpicklingError: the file holds another type; the message
            names the file and how to load it if it is trusted.
    """
    if os.environ.get(UNSAFE_ENV) == '1':
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        try:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(
                f'checkpoint {filename!r} holds a Python object that the '
                'safe loader does not allow. If you trust the file, load it '
                f'with {UNSAFE_ENV}=1. Details: {e}') from None


def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """Load a checkpoint from a local path with :func:`safe_torch_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


_LOCK = threading.RLock()
_DEPTH = 0
_SAVED: List[Any] = []


@contextlib.contextmanager
def gppf_checkpoint_loading() -> Iterator[None]:
    """MMEngine's ``CheckpointLoader`` reads local files with
    :func:`load_from_local` inside the block and as before after it.

    Re-entrant: nested blocks restore MMEngine's loader when the outermost
    one exits, also on an error.
    """
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            _SAVED[:] = [CheckpointLoader._schemes.get('')]
            CheckpointLoader.register_scheme(
                prefixes='', loader=load_from_local, force=True)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                previous = _SAVED.pop()
                if previous is None:
                    CheckpointLoader._schemes.pop('', None)
                else:
                    CheckpointLoader.register_scheme(
                        prefixes='', loader=previous, force=True)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = 'cpu') -> Any:
    """``CheckpointLoader.load_checkpoint`` (every MMEngine scheme) with
    local files read by :func:`safe_torch_load`."""
    with gppf_checkpoint_loading():
        return CheckpointLoader.load_checkpoint(
            filename, map_location=map_location)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_file(tmp_path: str, final_path: str) -> None:
    """Flush ``tmp_path`` to disk and rename it to ``final_path`` in one
    step: a reader (or a crash) sees the old file or the complete new one,
    never a partial file at ``final_path``."""
    with open(tmp_path, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, final_path)
    _fsync_dir(osp.dirname(osp.abspath(final_path)))


def write_text_atomic(path: str, text: str) -> None:
    """Write a small text file (e.g. ``last_checkpoint``) atomically."""
    tmp = osp.join(osp.dirname(osp.abspath(path)),
                   f'.{osp.basename(path)}.partial-{os.getpid()}')
    with open(tmp, 'w') as f:
        f.write(text)
    commit_file(tmp, path)


def partial_name(filename: str) -> str:
    """The temporary name a checkpoint is written under before it is
    renamed to ``filename`` (hidden, never matched by ``iter_*.pth``)."""
    return f'.{filename}.partial-{os.getpid()}'


def preview_keys(items: Sequence[str], n: int = 6) -> str:
    """The first ``n`` items and how many more there are."""
    shown = ', '.join(items[:n])
    return shown + (f', ... ({len(items) - n} more)' if len(items) > n else '')


def check_state_match(what: str, mismatched: Sequence[str],
                      missing: Sequence[str],
                      unexpected: Sequence[str],
                      hint: str = '') -> None:
    """Raise one error naming every problem of a state dict comparison:
    ``ValueError`` for shape mismatches, else ``KeyError``; ``hint`` (what
    to change) ends the message."""
    problems = []
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatch(es): '
                        f'{preview_keys(mismatched)}')
    if missing:
        problems.append(f'{len(missing)} missing key(s): '
                        f'{preview_keys(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected key(s): '
                        f'{preview_keys(unexpected)}')
    if problems:
        raise (ValueError if mismatched else KeyError)(
            f'{what}: ' + '; '.join(problems) + (f'. {hint}' if hint else ''))


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          name: str,
                          ignore_unexpected: Optional[Callable[[str],
                                                               bool]] = None,
                          hint: str = '') -> None:
    """Raise before a model is tested with a checkpoint that does not fit it.

    MMEngine's ``load_from`` loads non-strictly and only warns, so a
    checkpoint of another structure (e.g. 3 lego units where the config
    builds 2, or a model without cross-task BatchNorm) would be evaluated
    with part of its weights and the rest at their initial values. Every
    key of ``model`` must be in the checkpoint with the same shape, and
    every key of the checkpoint in ``model`` unless
    ``ignore_unexpected(key)`` says it may be left out (e.g. the tasks a
    ``--task`` run does not build). ``tools/test.py`` calls it from an
    ``after_load_checkpoint`` hook, which MMEngine runs with the file's
    contents before it loads them into the model.

    Args:
        model: the model to be tested (a DDP wrapper is unwrapped).
        checkpoint: the loaded checkpoint (with ``state_dict``) or a bare
            state dict.
        name: the file, for the message.
        ignore_unexpected: keys of the checkpoint that the model may lack.
        hint: appended to the error (what to change to make it fit).
    """
    model = getattr(model, 'module', model)
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    mismatched = [
        f'{k!r}: {tuple(state[k].shape)} in the checkpoint, '
        f'{tuple(v.shape)} here' for k, v in own.items()
        if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(v.shape)
    ]
    missing = [repr(k) for k in own if k not in state]
    unexpected = [
        repr(k) for k in state if k not in own
        and not (ignore_unexpected and ignore_unexpected(k))
    ]
    check_state_match(f'{name} does not fit the model of the config',
                      mismatched, missing, unexpected, hint)
