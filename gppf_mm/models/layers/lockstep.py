# Copyright (c) gppf_mm contributors. All rights reserved.
"""Run the shared backbone of K virtual devices in lockstep in one process.

Each device runs ``backbone(inputs)`` in a thread of its own, and exactly
one thread runs at a time: a device runs until its next cross-task norm,
leaves its input there and hands over to the next device; the last device
to arrive runs the norm for all K inputs at once (one collective across the
processes, see :mod:`~gppf_mm.models.layers.cross_task_bn`) and hands the
outputs back, device 0 first. The devices' graphs meet only in these norm
calls, so one backward of the devices' summed losses makes one collective
per norm call as well.

Everything a device's forward reads from the process is its own while it
runs: the global RNG states (torch, CUDA, numpy, random) and the Gumbel
noise generators are swapped in and out at every hand-over, and the grad
mode, autocast state, CUDA device and stream of the calling thread are set
in every device thread.
"""
import threading
from contextlib import ExitStack
from typing import Any, Callable, List, Optional, Sequence

import torch

_LOCAL = threading.local()


def active_lockstep() -> Optional['Lockstep']:
    """The lockstep the calling thread runs a device of, if any."""
    return getattr(_LOCAL, 'lockstep', None)


def active_device() -> Optional[int]:
    return getattr(_LOCAL, 'device', None)


class DeviceError(RuntimeError):
    """A device of a lockstep run failed; names the device and its task."""


class _Stopped(BaseException):
    """Raised in the other device threads when one device failed."""


def _thread_settings() -> Callable[[], ExitStack]:
    """What a device thread must share with the calling thread: the grad
    mode, the autocast state of CPU and CUDA, the CUDA device and stream."""
    grad = torch.is_grad_enabled()
    autocast = []
    for device_type in ('cpu', 'cuda'):
        try:
            enabled = torch.is_autocast_enabled(device_type)
        except (TypeError, RuntimeError):  # pragma: no cover - old torch
            enabled = False
        if enabled:
            autocast.append((device_type,
                             torch.get_autocast_dtype(device_type)))
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = (torch.cuda.current_device(), torch.cuda.current_stream())

    def enter() -> ExitStack:
        stack = ExitStack()
        stack.enter_context(torch.set_grad_enabled(grad))
        for device_type, dtype in autocast:
            stack.enter_context(torch.autocast(device_type, dtype=dtype))
        if cuda is not None:
            torch.cuda.set_device(cuda[0])
            stack.enter_context(torch.cuda.stream(cuda[1]))
        return stack

    return enter


class Lockstep:
    """K device threads that hand over at every cross-task norm.

    Args:
        tasks (list[str]): the task of every device.
        combine (callable): ``combine(modules, inputs, devices)`` runs a
            norm call of all devices and returns one output per device.
        enter (list[callable], optional): ``enter[d]()`` makes the process
            state device ``d``'s (RNG states); ``leave[d]()`` saves it.
        leave (list[callable], optional): see ``enter``.
        name (callable, optional): ``name(d)`` for error messages (e.g.
            ``'process 0, device 1 (task coco)'``).
    """

    def __init__(self, tasks: Sequence[str], combine: Callable,
                 enter: Optional[Sequence[Callable]] = None,
                 leave: Optional[Sequence[Callable]] = None,
                 name: Optional[Callable[[int], str]] = None) -> None:
        self.tasks = list(tasks)
        self.k = len(self.tasks)
        self.combine = combine
        self.enter = list(enter) if enter else [lambda: None] * self.k
        self.leave = list(leave) if leave else [lambda: None] * self.k
        self.name = name or (lambda d: f'device {d} (task '
                             f'{self.tasks[d]!r})')
        self._cond = threading.Condition()
        self._turn = 0
        self._arrived: List[Any] = [None] * self.k
        self._outputs: List[Any] = [None] * self.k
        self._done = [False] * self.k
        self._error: Optional[BaseException] = None
        self._error_device: Optional[int] = None

    # ------------------------------------------------------------ running
    def run(self, fns: Sequence[Callable[[], Any]]) -> List[Any]:
        """Run ``fns[d]()`` as device ``d``; return their results."""
        if len(fns) != self.k:
            raise ValueError(f'{len(fns)} functions for {self.k} devices')
        settings = _thread_settings()
        results: List[Any] = [None] * self.k
        threads = [
            threading.Thread(
                target=self._device, args=(d, fns[d], settings, results),
                name=f'gppf-device-{d}', daemon=True)
            for d in range(self.k)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._error is not None:
            d = self._error_device
            raise DeviceError(
                f'{self.name(d)} failed in the shared backbone: '
                f'{type(self._error).__name__}: {self._error}'
            ) from self._error
        return results

    def _wait_turn(self, d: int) -> None:
        """Wait (holding the condition) until device ``d`` may run."""
        while self._turn != d and self._error is None:
            self._cond.wait()
        if self._error is not None:
            raise _Stopped()

    def _pass_turn(self, d: int) -> None:
        """Hand over to the next device that has not finished (with the
        condition held)."""
        for step in range(1, self.k + 1):
            nxt = (d + step) % self.k
            if not self._done[nxt] or nxt == d:
                self._turn = nxt
                break
        self._cond.notify_all()

    def _device(self, d: int, fn: Callable, settings: Callable,
                results: List[Any]) -> None:
        _LOCAL.lockstep, _LOCAL.device = self, d
        try:
            with self._cond:
                self._wait_turn(d)
            self.enter[d]()
            with settings():
                results[d] = fn()
            self.leave[d]()
            with self._cond:
                self._done[d] = True
                if any(a is not None for a in self._arrived):
                    self._fail(d, RuntimeError(
                        'this device finished its backbone while another '
                        'waits at a cross-task norm: the devices run '
                        'different numbers of norm calls'))
                    return
                self._pass_turn(d)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: B036 - reported by run()
            with self._cond:
                self._fail(d, e)
        finally:
            _LOCAL.lockstep = _LOCAL.device = None

    def _fail(self, d: int, error: BaseException) -> None:
        if self._error is None:
            self._error, self._error_device = error, d
        self._cond.notify_all()

    # ------------------------------------------------------------ arrive
    def arrive(self, module: torch.nn.Module, x: torch.Tensor) -> Any:
        """Called by a norm in device thread ``d``: wait for every device
        to reach its norm call, run them together, return ``d``'s output."""
        d = active_device()
        self.leave[d]()
        with self._cond:
            if any(self._done):
                self._fail(d, RuntimeError(
                    'this device reached a cross-task norm after another '
                    'finished its backbone: the devices run different '
                    'numbers of norm calls'))
                raise _Stopped()
            self._arrived[d] = (module, x)
            if d < self.k - 1:
                self._pass_turn(d)
                self._wait_turn(d)
            else:
                arrived, self._arrived = self._arrived, [None] * self.k
                try:
                    self._outputs = list(self.combine(
                        [a[0] for a in arrived], [a[1] for a in arrived],
                        list(range(self.k))))
                except BaseException as e:  # noqa: B036
                    self._fail(d, e)
                    raise _Stopped()
                self._turn = 0
                self._cond.notify_all()
                self._wait_turn(d)
            out, self._outputs[d] = self._outputs[d], None
        self.enter[d]()
        return out
