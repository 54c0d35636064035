# Copyright (c) gppf_mm contributors. All rights reserved.
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from gppf_mm.registry import HOOKS
from gppf_mm.utils.checkpoint import write_text_atomic


@HOOKS.register_module()
class GPPFCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` with a crash-safe order of writes.

    MMEngine removes the checkpoints beyond ``max_keep_ckpts`` before it
    writes the new one and writes ``last_checkpoint`` in place: a process
    killed during the save (preemption) could leave no complete checkpoint
    (``max_keep_ckpts=1``) or a pointer to a partial file. Here:

    1. the new checkpoint is written (by :class:`GPPFRunner`, to a temporary
       name that is flushed and renamed: never a partial file at a final
       name);
    2. ``last_checkpoint`` is replaced atomically to point at it, so
       ``--resume`` always finds a complete checkpoint;
    3. only then is the checkpoint that falls out of ``max_keep_ckpts``
       removed.

    Arguments and everything else are MMEngine's.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        drop = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)
        if drop is not None:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(drop))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
