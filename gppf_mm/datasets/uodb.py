# Copyright (c) gppf_mm contributors. All rights reserved.
"""The VOC-layout detection datasets of the Universal Object Detection
Benchmark (UODB) and of the embedded benchmark's ``underwater_voc``."""
import os.path as osp

from mmdet.datasets import XMLDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class UODBDataset(XMLDataset):
    """A detection dataset in the Pascal VOC layout (``Annotations/*.xml``,
    ``ImageSets/Main/<split>.txt``, images in ``JPEGImages``), as UODB
    releases its datasets.

    It is MMDet's ``VOCDataset`` with two differences: the image suffix is
    configurable (several UODB datasets ship ``.png`` images, which
    ``XMLDataset`` cannot find), and ``metainfo['dataset_type']`` is not set
    to ``'VOC2007'`` / ``'VOC2012'`` from the folder name, so that
    ``VOCMetric`` reports the dataset's own class names instead of Pascal
    VOC's and takes its ``eval_mode`` from the config without a warning.
    Box coordinates are read as VOC's 1-based pixel indices, as
    ``VOCDataset`` reads them.

    Args:
        img_suffix (str): suffix of the image files. Defaults to ``'.jpg'``.
        **kwargs: ``XMLDataset``'s arguments; ``metainfo`` must name the
            ``classes``.
    """

    def __init__(self, img_suffix: str = '.jpg', **kwargs) -> None:
        if not isinstance(img_suffix, str) or not img_suffix.startswith('.'):
            raise ValueError(f"UODBDataset: img_suffix must look like '.jpg'"
                             f' or \'.png\', got {img_suffix!r}')
        self.img_suffix = img_suffix
        super().__init__(**kwargs)

    def parse_data_info(self, img_info: dict) -> dict:
        stem = osp.splitext(img_info['file_name'])[0]
        img_info = dict(img_info, file_name=stem + self.img_suffix)
        return super().parse_data_info(img_info)
