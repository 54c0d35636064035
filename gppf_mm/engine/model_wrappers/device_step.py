# Copyright (c) gppf_mm contributors. All rights reserved.
"""One training step of K virtual devices in one process (the paper's
Section 3.2: a GPU virtualised into several devices, each sampling its own
task).

Device ``d`` of process ``p`` is device ``p * K + d`` of the run and does
exactly what rank ``p * K + d`` of a run with ``P * K`` processes would:

- its batch is preprocessed, its backbone forward and its algorithm run
  under its own RNG states and Gumbel noise generators;
- the shared backbone runs for all K devices in lockstep
  (:mod:`~gppf_mm.models.layers.lockstep`), and cross-task BN pools the K
  devices' statistics and those of the other processes with one collective
  per norm call in forward and one in backward;
- each device's algorithm then continues from its own backbone features;
- each parameter's gradient becomes the mean over the devices, world-wide,
  that used it (:class:`DeviceUsage`, fused by
  :class:`GradientFusionWrapper`);
- a BatchNorm outside the backbone (a task head's) runs once per device
  from the step's starting statistics, and ends at the mean over the
  devices that ran it (:class:`NormTally`), as ranks are averaged.
"""
import random
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
import torch.nn as nn

from gppf_mm.models.layers.collectives import CollectiveRecord
from gppf_mm.models.layers.cross_task_bn import cross_task_bn
from gppf_mm.models.layers.lockstep import DeviceError, Lockstep
from gppf_mm.models.routing import LegoLayer


def raw_rng_state() -> tuple:
    """The process's global RNG states as the libraries return them (for
    swapping between devices; :func:`~gppf_mm.engine.runner.simt_state.
    rng_state` is the checkpoint form)."""
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state()
    return (torch.get_rng_state(), np.random.get_state(), random.getstate(),
            cuda)


def set_raw_rng_state(state: tuple) -> None:
    cpu, numpy_state, python, cuda = state
    torch.set_rng_state(cpu)
    np.random.set_state(numpy_state)
    random.setstate(python)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)


class VirtualDevice:
    """What one virtual device owns in a process: its index in the run, its
    global RNG states and one Gumbel noise generator per controller.

    Args:
        index (int): the device's index in the run (``p * K + d``).
        rng (tuple): its RNG states (:func:`raw_rng_state`).
        controllers (list): the model's Gumbel controllers.
        generators (list[torch.Generator]): its noise generators, one per
            controller.
    """

    def __init__(self, index: int, rng: tuple, controllers: list,
                 generators: List[torch.Generator]) -> None:
        self.index = index
        self.rng = rng
        self.controllers = controllers
        self.generators = generators

    def enter(self) -> None:
        """Make the process's RNG states and noise generators this
        device's."""
        set_raw_rng_state(self.rng)
        for c, g in zip(self.controllers, self.generators):
            c._generator = g

    def leave(self) -> None:
        """Keep the process's RNG states as this device's."""
        self.rng = raw_rng_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run a block as this device; the process's own RNG states are
        restored after it."""
        saved = raw_rng_state()
        self.enter()
        try:
            yield
        finally:
            self.leave()
            set_raw_rng_state(saved)


class NormTally:
    """Per-device runs of the BatchNorm layers that gradient fusion
    averages over ranks (task heads' norms, a backbone's local norms).

    :meth:`begin` sets every such norm back to its statistics at the start
    of the step; :meth:`end` adds the statistics of the norms that ran
    (their ``num_batches_tracked`` moved) to a sum; :meth:`finish` leaves
    every norm that ran at the mean over the devices that ran it.
    """

    def __init__(self, norms: Sequence[Tuple[str, nn.Module]]) -> None:
        self.norms = list(norms)
        self.start = {
            name: (m.running_mean.clone(), m.running_var.clone(),
                   int(m.num_batches_tracked))
            for name, m in self.norms
        }
        self.sums: Dict[str, list] = {}

    @torch.no_grad()
    def begin(self) -> None:
        # new tensors, not in-place copies: a norm's forward keeps its
        # running statistics for backward, and autograd refuses tensors
        # changed after they were saved
        for name, m in self.norms:
            mean, var, tracked = self.start[name]
            if int(m.num_batches_tracked) != tracked:
                m.running_mean = mean.clone()
                m.running_var = var.clone()
                m.num_batches_tracked = torch.tensor(
                    tracked, dtype=torch.long,
                    device=m.num_batches_tracked.device)

    @torch.no_grad()
    def end(self) -> None:
        for name, m in self.norms:
            if int(m.num_batches_tracked) == self.start[name][2]:
                continue
            entry = self.sums.get(name)
            if entry is None:
                self.sums[name] = [m.running_mean.double(),
                                   m.running_var.double(), 1,
                                   int(m.num_batches_tracked)]
            else:
                entry[0] = entry[0] + m.running_mean.double()
                entry[1] = entry[1] + m.running_var.double()
                entry[2] += 1
                entry[3] = max(entry[3], int(m.num_batches_tracked))

    @torch.no_grad()
    def finish(self) -> Dict[str, int]:
        """Set the norms to their device means; return ``name -> number
        of devices that ran it`` for the norms that ran."""
        self.begin()
        for name, m in self.norms:
            entry = self.sums.get(name)
            if entry is None:
                continue
            m.running_mean = (entry[0] / entry[2]).to(m.running_mean)
            m.running_var = (entry[1] / entry[2]).to(m.running_var)
            m.num_batches_tracked = torch.tensor(
                entry[3], dtype=torch.long,
                device=m.num_batches_tracked.device)
        return {name: e[2] for name, e in self.sums.items()}


class _Features(nn.Module):
    """Stands in for the shared backbone while a device's algorithm runs:
    returns the device's features, once."""

    def __init__(self, features, task: str) -> None:
        super().__init__()
        self.features = features
        self.task = task

    def forward(self, inputs):
        if self.features is None:
            raise RuntimeError(
                f'task {self.task!r}: its algorithm calls the shared '
                'backbone twice in one step; with virtual devices the '
                'backbone runs once per device and step')
        features, self.features = self.features, None
        return features


@contextmanager
def precomputed_backbone(algorithm: nn.Module, features,
                         task: str) -> Iterator[None]:
    """``algorithm.backbone(x)`` returns ``features`` in the block."""
    shared = algorithm.backbone
    object.__setattr__(algorithm, 'backbone', _Features(features, task))
    try:
        yield
    finally:
        object.__setattr__(algorithm, 'backbone', shared)


def device_reached_parameters(loss: torch.Tensor) -> Set[int]:
    """``id``s of the parameters that one device's ``loss`` reaches.

    The devices' graphs meet in the cross-task norm calls (and the lego
    layers recomputed together), each one autograd node for all devices
    whose ``device_inputs[d]`` lists device ``d``'s inputs: from such a
    node the walk continues only into the inputs of the device whose
    output it came through (the node's output index)."""
    found: Set[int] = set()
    if loss.grad_fn is None:
        return found
    seen = set()
    stack = [(loss.grad_fn, None)]
    while stack:
        fn, through = stack.pop()
        key = (fn, through)
        if key in seen:
            continue
        seen.add(key)
        var = getattr(fn, 'variable', None)
        if var is not None:
            found.add(id(var))
            continue
        nexts = fn.next_functions
        if through is not None:
            nexts = [nexts[j] for j in fn.device_inputs[through]]
        for nxt, nr in nexts:
            if nxt is None:
                continue
            shared = getattr(nxt, 'device_inputs', None) is not None
            stack.append((nxt, nr if shared else None))
    return found


class DeviceUsage:
    """How many of this process's devices used each parameter in the
    update (a device's loss reaches it), over the update's backward
    passes."""

    def __init__(self) -> None:
        self.used: Dict[int, Set[int]] = {}  # device -> parameter ids

    def add(self, device: int, loss: torch.Tensor) -> None:
        self.add_ids(device, device_reached_parameters(loss))

    def add_ids(self, device: int, ids: Set[int]) -> None:
        self.used.setdefault(device, set()).update(ids)

    def counts(self, params: Sequence[nn.Parameter]) -> List[int]:
        return [
            sum(id(p) in ids for ids in self.used.values()) for p in params
        ]


class _JointCheckpoint(torch.autograd.Function):
    """A lego layer of every device of the process, recomputed in backward
    for all of them together (``with_cp`` with virtual devices).

    Forward runs the devices' layer calls without keeping activations, in
    a lockstep of their own so that the layer's cross-task norms pool the
    devices (one collective per norm call); backward runs them again with
    gradients, in lockstep as well, and back-propagates through that. Its
    inputs are the devices' layer inputs and routing weights."""

    @staticmethod
    def forward(ctx, run, device_inputs, used, *tensors):
        ctx.run = run
        ctx.device_inputs = device_inputs
        ctx.used = used
        ctx.save_for_backward(*tensors)
        with torch.no_grad():
            outs = run(tensors)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        inputs = [
            t.detach().requires_grad_(t.requires_grad)
            for t in ctx.saved_tensors
        ]
        with torch.enable_grad():
            outs = ctx.run(inputs)
        if ctx.used is not None:
            # the parameters each device used inside the layer, which the
            # forward (without a graph) could not show
            for d, out in enumerate(outs):
                ctx.used(d, device_reached_parameters(out))
        pairs = [(o, g) for o, g in zip(outs, grads)
                 if g is not None and o.requires_grad]
        torch.autograd.backward([o for o, _ in pairs],
                                [g for _, g in pairs])
        return (None, None, None, *[t.grad for t in inputs])


def joint_checkpoint(layers, payloads, tasks, distributed, used=None):
    """The outputs of ``layers[d]`` (one lego layer, called by every device
    ``d``) on ``payloads[d] = (x, routing, args, kwargs)``, recomputed in
    backward for all devices together (:class:`_JointCheckpoint`);
    ``used(d, ids)`` learns in backward which parameters device ``d`` used
    inside the layer."""
    layer = layers[0]
    if any(m is not layer for m in layers):
        raise RuntimeError('the devices reached different lego layers in '
                           'one call; every device must run the same '
                           'layers in the same order')
    k = len(payloads)
    weights = [p[1].weights for p in payloads]
    has_weight = [w is not None for w in weights]

    def run(tensors):
        xs = tensors[:k]
        ws = iter(tensors[k:])
        ws = [next(ws) if h else None for h in has_weight]

        # the recomputation in backward runs outside the tasks' contexts,
        # as a rank's checkpointed layer does: its norms update the shared
        # running statistics again, not the per-task ones
        recompute = torch.is_grad_enabled()

        def combine(mods, inputs, ids):
            return cross_task_bn(
                mods, inputs,
                [None if recompute else tasks[d] for d in ids], distributed)

        def device(d):
            x, routing, args, kwargs = payloads[d]
            return lambda: layer._combine(xs[d], ws[d], routing.active,
                                          *args, **kwargs)

        return Lockstep(tasks, combine).run([device(d) for d in range(k)])

    tensors = [p[0] for p in payloads] + [w for w in weights if w is not None]
    # device d's inputs among the node's tensor inputs: its x and weights
    device_inputs, slot = [], k
    for d in range(k):
        device_inputs.append([d] + ([slot] if has_weight[d] else []))
        slot += has_weight[d]
    return list(_JointCheckpoint.apply(run, device_inputs, used, *tensors))


def device_forward(model: nn.Module, batches: Sequence[dict],
                   devices: Sequence[VirtualDevice],
                   names: Optional[Dict[int, str]], distributed: bool,
                   tally: NormTally, process: int = 0,
                   usage: Optional['DeviceUsage'] = None
                   ) -> List[Tuple[str, dict, Optional[CollectiveRecord]]]:
    """The losses of every device of this process.

    Args:
        model (GPPF): the model.
        batches (list[dict]): one batch per device, with its ``'task'``.
        devices (list[VirtualDevice]): the devices.
        names (dict, optional): cross-task norm names by ``id`` to record
            each device's norm calls (:class:`CollectiveCheck`); None when
            nothing is recorded.
        distributed (bool): pool the norms' statistics across processes.
        tally (NormTally): the per-device BatchNorm runs.
        process (int): this process's rank, for error messages.
        usage (DeviceUsage, optional): learns, in backward, the parameters
            each device used inside layers recomputed with ``with_cp``.

    Returns:
        list[tuple]: ``(task, losses, record)`` per device.
    """
    tasks = [b['task'] for b in batches]
    datas = []
    for device, batch in zip(devices, batches):
        with device.active():
            datas.append(model.data_preprocessor(batch, training=True))
    records = [
        CollectiveRecord(t, names) if names is not None else None
        for t in tasks
    ]

    def combine(modules, xs, ids):
        if isinstance(modules[0], LegoLayer):
            # with_cp: a lego layer of every device, recomputed together
            return joint_checkpoint(
                modules, xs, [tasks[d] for d in ids], distributed,
                None if usage is None else usage.add_ids)
        for d, m in zip(ids, modules):
            if records[d] is not None:
                records[d].before(m)
        outs = cross_task_bn(modules, xs, [tasks[d] for d in ids],
                             distributed)
        for d, m, out in zip(ids, modules, outs):
            if records[d] is not None:
                records[d].calls.append((m, out))
        return outs

    def name(d: int) -> str:
        return (f'process {process}, virtual device {d} (device '
                f'{devices[d].index} of the run, task {tasks[d]!r})')

    def enter(d):
        def fn():
            devices[d].enter()
            tally.begin()
        return fn

    def leave(d):
        def fn():
            tally.end()
            devices[d].leave()
        return fn

    saved = raw_rng_state()
    lockstep = Lockstep(tasks, combine, [enter(d) for d in range(len(tasks))],
                        [leave(d) for d in range(len(tasks))], name)
    try:
        features = model.lockstep_features(
            [d['inputs'] for d in datas], tasks, lockstep)
    finally:
        set_raw_rng_state(saved)
    out = []
    for d, (device, data) in enumerate(zip(devices, datas)):
        task = tasks[d]
        with device.active():
            tally.begin()
            try:
                with precomputed_backbone(model.algorithm(task),
                                          features[d], task):
                    losses = model._run_forward(data, mode='loss')
            except Exception as e:
                raise DeviceError(f'{name(d)} failed in its algorithm: '
                                  f'{type(e).__name__}: {e}') from e
            tally.end()
        out.append((task, losses, records[d]))
    return out


class VirtualBatch(dict):
    """The batches of a process's virtual devices in one iteration
    (``batches``, one per device, each with its ``'task'``) and the
    devices (``devices``); what :class:`SIMTTrainLoop` gives
    ``train_step`` when ``virtual_devices > 1``."""

    @property
    def tasks(self) -> List[str]:
        return [b['task'] for b in self['batches']]


def device_train_step(wrapper, data: VirtualBatch,
                      optim_wrapper) -> List[dict]:
    """:meth:`GradientFusionWrapper.train_step` for the virtual devices of
    a process: forward of every device (:func:`device_forward`), one
    backward of their summed losses, fusion by device, update.

    Returns:
        list[dict]: the log variables of every device.
    """
    module = wrapper.module
    batches, devices = data['batches'], data['devices']
    if wrapper._snapshot_due:
        wrapper._snapshot_norms()
        wrapper._snapshot_due = False
    guard = not hasattr(optim_wrapper, 'loss_scaler')
    if guard:
        wrapper.nonfinite.snapshot()
    check = wrapper.collectives
    names = check.names if check.names else None
    tally = NormTally(list(wrapper._norms()))
    with optim_wrapper.optim_context(wrapper):
        results = device_forward(
            module, batches, devices, names, wrapper.distributed, tally,
            process=wrapper.rank, usage=wrapper.device_usage)
    ran = tally.finish()
    total = None
    logs = []
    for d, (task, losses, record) in enumerate(results):
        loss, log_vars = module.parse_losses(losses)
        if names is not None:
            # every cross-task norm of the forward makes its backward
            # collective (a device whose head ignores some outputs)
            loss = check.tie(task, loss, record)
        wrapper.device_usage.add(d, loss)
        logs.append(log_vars)
        total = loss if total is None else total + loss
    del results
    total = optim_wrapper.scale_loss(total)
    optim_wrapper.backward(total)
    for name, count in ran.items():
        wrapper.device_norm_runs[name] = wrapper.device_norm_runs.get(
            name, 0) + count
    if optim_wrapper.should_update():
        params = wrapper._trainable()
        counts = wrapper.device_usage.counts(params)
        wrapper.device_usage = DeviceUsage()
        wrapper.fuse_gradients(device_counts=counts)
        tasks = ', '.join(data.tasks)
        if not guard or wrapper.nonfinite.check(params, tasks, total):
            optim_wrapper.step()
        optim_wrapper.zero_grad()
        if wrapper.sync_norms:
            wrapper.sync_norm_buffers(device_runs=wrapper.device_norm_runs)
        wrapper.device_norm_runs = {}
    return logs
