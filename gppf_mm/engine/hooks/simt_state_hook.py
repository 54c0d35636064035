# Copyright (c) gppf_mm contributors. All rights reserved.
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook

from gppf_mm.engine.runner.simt_loop import SIMTTrainLoop
from gppf_mm.registry import HOOKS


@HOOKS.register_module()
class SIMTStateHook(Hook):
    """Put every rank's SIMT state into checkpoints and restore it.

    The state of each rank (task-sampler generator, batches consumed per
    task, global RNG states) is gathered by the loop at the end of every
    iteration; rank 0 writes the list as ``checkpoint['simt']``. On resume
    every rank takes its own entry, so its sequence of (task, sample
    indices) continues as in an uninterrupted run, without decoding the
    skipped batches.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = runner.train_loop if runner._train_loop is not None and \
            not isinstance(runner._train_loop, dict) else None
        if isinstance(loop, SIMTTrainLoop) and loop.gathered_states:
            checkpoint['simt'] = loop.gathered_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('simt')
        loop = runner._train_loop
        if states is None or not isinstance(loop, SIMTTrainLoop):
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            raise ValueError(
                f'the checkpoint holds the SIMT state of {len(states)} '
                f'ranks but this run has {world_size}; resume with the same '
                'number of processes (or load the weights with load_from '
                'and resume=False)')
        loop.load_state_dict(states[rank])
