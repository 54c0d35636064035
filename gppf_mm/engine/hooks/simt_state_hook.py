# Copyright (c) gppf_mm contributors. All rights reserved.
from mmengine.hooks import Hook

from gppf_mm.registry import HOOKS


def _simt_loop(runner):
    """The runner's train loop if it is built and keeps SIMT state."""
    loop = getattr(runner, '_train_loop', None)
    if loop is None or isinstance(loop, dict):
        return None
    return loop if hasattr(loop, 'load_simt_states') else None


@HOOKS.register_module()
class SIMTStateHook(Hook):
    """Put every rank's SIMT state into checkpoints and restore it.

    The state of a rank is its task generator, the batches it consumed per
    task, its global RNG states (torch, CUDA when initialised, numpy,
    Python) and its Gumbel noise generators, taken at the end of an
    iteration. :class:`SIMTTrainLoop` exchanges the states of all ranks at
    the iterations whose end writes a checkpoint (MMEngine calls
    ``before_save_checkpoint`` on rank 0 only, so no collective can run
    there); rank 0 stores the list, indexed by rank, as
    ``checkpoint['simt']``. It holds tensors, numbers, strings, lists and
    dicts only, so it loads with ``torch.load(weights_only=True)``.

    On resume (``after_load_checkpoint``, on every rank) each rank takes its
    own entry, so its sequence of (task, sample indices) continues as in an
    uninterrupted run; the batches consumed before are skipped as indices,
    without decoding them. The states are applied when training starts and
    only if it resumes: ``load_from`` without ``resume`` (MMEngine calls the
    same hook then) loads weights only.

    :class:`SIMTTrainLoop` registers this hook itself when a config lacks it.

    Args:
        allow_world_size_change (bool): resume a checkpoint of another
            number of ranks approximately instead of raising.
            Defaults to False.
    """
    priority = 'VERY_LOW'

    def __init__(self, allow_world_size_change: bool = False) -> None:
        self.allow_world_size_change = allow_world_size_change

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = _simt_loop(runner)
        if loop is None or not loop.gathered_states:
            return
        states = loop.gathered_states
        if int(states[0].get('iter', -1)) != runner.iter + 1:
            # a save the loop did not foresee (not an iteration-based
            # CheckpointHook): states of an older iteration would make the
            # resume fail its iteration check, so store none
            runner.logger.warning(
                f'SIMTStateHook: the checkpoint of iteration '
                f'{runner.iter + 1} holds no SIMT state (the last exchange '
                f'was at iteration {states[0].get("iter")}); a resume from '
                f'it continues the task draws approximately')
            return
        checkpoint['simt'] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('simt')
        loop = _simt_loop(runner)
        if states is None or loop is None:
            return
        loop.load_simt_states(
            states, allow_world_size_change=self.allow_world_size_change)
