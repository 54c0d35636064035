# Copyright (c) gppf_mm contributors. All rights reserved.
"""The KITTI (Eigen split) depth evaluation protocol on MMSeg's
``DepthMetric``."""
from typing import Dict, Optional, Sequence

import torch
from mmseg.evaluation import DepthMetric
from mmseg.registry import METRICS
from torch import Tensor

# The evaluation crops of the KITTI Eigen split, as fractions of the image
# height (rows) and width (columns): Garg et al. (ECCV 2016) and Eigen et
# al. (NeurIPS 2014).
CROPS = {
    'garg': ((0.40810811, 0.99189189), (0.03594771, 0.96405229)),
    'eigen': ((0.3324324, 0.91351351), (0.0359477, 0.96405229)),
}


@METRICS.register_module()
class KITTIDepthMetric(DepthMetric):
    """Depth metrics as the KITTI Eigen-split literature reports them (the
    paper's Table 4: d1, d2, d3, AbsRel, SqRel, RMSE, RMSElog, SILog).

    It is MMSeg's ``DepthMetric`` (per-image metrics averaged over the
    images; ``nyu_crop`` and no crop kept) with what KITTI needs and MMSeg
    lacks:

    - the Garg and Eigen crops (``crop_type='garg'`` / ``'eigen'``), taken
      as fractions of each ground-truth map's size;
    - predictions clipped to ``[min_depth_eval, max_depth_eval]`` before
      the metrics (non-finite ones to the nearest bound), ground truth
      evaluated where ``min_depth_eval < gt < max_depth_eval`` (1e-3 and
      80 m by default);
    - SILog as ``100 * sqrt(mean(e^2) - mean(e)^2)`` with ``e = log(pred) -
      log(gt)`` (MMSeg's is ``sqrt(mean(e^2) - 0.5 * mean(e)^2)``).

    Args:
        crop_type (str, optional): ``'garg'`` (default), ``'eigen'``,
            ``'nyu_crop'`` or None.
        min_depth_eval (float): Defaults to 1e-3.
        max_depth_eval (float): Defaults to 80.
        depth_metrics (Sequence[str], optional): a subset of ``METRICS``.
        **kwargs: ``DepthMetric``'s other arguments.
    """
    default_prefix = 'depth'

    def __init__(self,
                 crop_type: Optional[str] = 'garg',
                 min_depth_eval: float = 1e-3,
                 max_depth_eval: float = 80.0,
                 depth_metrics: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if crop_type not in (None, 'nyu_crop', *CROPS):
            raise ValueError(f'KITTIDepthMetric: crop_type must be one of '
                             f'{[None, "nyu_crop", *CROPS]}, got '
                             f'{crop_type!r}')
        if not 0 <= min_depth_eval < max_depth_eval:
            raise ValueError(
                f'KITTIDepthMetric: need 0 <= min_depth_eval < '
                f'max_depth_eval, got {min_depth_eval}, {max_depth_eval}')
        super().__init__(
            crop_type=None if crop_type in CROPS else crop_type,
            min_depth_eval=min_depth_eval, max_depth_eval=max_depth_eval,
            **kwargs)
        self.crop_type = crop_type
        if depth_metrics is not None:
            unknown = [m for m in depth_metrics if m not in self.METRICS]
            if unknown:
                raise ValueError(f'KITTIDepthMetric: unknown metrics '
                                 f'{unknown}; choose from {self.METRICS}')
            self.metrics = tuple(depth_metrics)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        clipped = []  # copies: other evaluators see the raw predictions
        for sample in data_samples:
            pred = torch.nan_to_num(
                sample['pred_depth_map']['data'], nan=self.min_depth_eval,
                posinf=self.max_depth_eval, neginf=self.min_depth_eval)
            clipped.append(dict(sample, pred_depth_map=dict(
                sample['pred_depth_map'],
                data=pred.clamp(self.min_depth_eval, self.max_depth_eval))))
        super().process(data_batch, clipped)

    def _get_eval_mask(self, gt_depth: Tensor) -> Tensor:
        if self.crop_type not in CROPS:
            return super()._get_eval_mask(gt_depth)
        valid = (gt_depth > self.min_depth_eval) & (gt_depth <
                                                     self.max_depth_eval)
        (top, bottom), (left, right) = CROPS[self.crop_type]
        h, w = gt_depth.shape[-2:]
        crop = torch.zeros_like(valid)
        crop[..., int(top * h):int(bottom * h), int(left * w):int(right *
                                                                  w)] = True
        return valid & crop

    @staticmethod
    def _calc_all_metrics(gt_depth: Tensor,
                          pred_depth: Tensor) -> Dict[str, float]:
        metrics = DepthMetric._calc_all_metrics(gt_depth, pred_depth)
        err = torch.log(pred_depth) - torch.log(gt_depth)
        metrics['silog'] = (100 * torch.sqrt(
            (err**2).mean() - err.mean()**2)).item()
        return metrics
