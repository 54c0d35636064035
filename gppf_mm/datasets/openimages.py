# Copyright (c) gppf_mm contributors. All rights reserved.
"""Open Images challenge 2019 detection, readable by MMDet's own metric."""
from mmdet.datasets import OpenImagesChallengeDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class OpenImagesChallenge2019Dataset(OpenImagesChallengeDataset):
    """MMDet's ``OpenImagesChallengeDataset`` whose instances also carry the
    group-of flag as ``is_group_of``.

    MMDet 3.3's challenge dataset stores the flag as ``is_group_ofs``,
    while ``OpenImagesMetric`` (and MMDet's non-challenge
    ``OpenImagesDataset``) use ``is_group_of``: evaluating the challenge
    dataset fails with ``KeyError: 'is_group_of'``. Everything else is the
    upstream class.
    """

    def load_data_list(self):
        data_list = super().load_data_list()
        for info in data_list:
            for instance in info.get('instances', []):
                if 'is_group_ofs' in instance:
                    instance.setdefault('is_group_of',
                                        instance['is_group_ofs'])
        return data_list
