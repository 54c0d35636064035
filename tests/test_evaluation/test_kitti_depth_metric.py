# Copyright (c) gppf_mm contributors. All rights reserved.
"""KITTIDepthMetric against hand computations: the Garg / Eigen crops, the
1e-3..80 m range, clipped predictions and KITTI's SILog."""
import math

import pytest
import torch

from gppf_mm.evaluation import KITTIDepthMetric


def evaluate(metric, gt, pred):
    metric.process({}, [dict(gt_depth_map=dict(data=gt[None].clone()),
                             pred_depth_map=dict(data=pred[None].clone()))])
    return metric.compute_metrics(metric.results)


def test_garg_crop_range_and_metrics_equal_hand_computation():
    # 10 x 20 map; the Garg crop keeps rows int(0.408 * 10) = 4 ..
    # int(0.992 * 10) = 9 (exclusive) and columns 0 .. 19 (exclusive)
    gt = torch.full((10, 20), 10.0)
    pred = torch.full((10, 20), 50.0)  # wrong everywhere outside the crop
    pred[4:9, 0:19] = 10.0
    pred[4:9, 0:10] = 20.0  # ratio 2 in columns 0 .. 9, exact in 10 .. 18
    gt[6, 5] = 0.0  # no ground truth: not evaluated
    gt[7, 15] = 90.0  # beyond 80 m: not evaluated
    pred[7, 15] = 500.0
    # evaluated: 49 pixels at ratio 2, 44 exact
    m = evaluate(KITTIDepthMetric(crop_type='garg'), gt, pred)
    p, ln2 = 49 / 93, math.log(2)
    expected = dict(
        d1=1 - p, d2=1 - p, d3=1 - p,  # 2 > 1.25 ** 3 = 1.953
        abs_rel=p * 10 / 10,
        sq_rel=p * 10**2 / 10,
        rmse=math.sqrt(p * 10**2),
        rmse_log=math.sqrt(p * ln2**2),
        log10=p * math.log10(2),
        # 100 * sqrt(mean(e^2) - mean(e)^2), e = ln 2 on a share p
        silog=100 * math.sqrt(p * ln2**2 - (p * ln2)**2))
    assert m == pytest.approx(expected, rel=1e-5)


def test_eigen_crop_differs_from_garg():
    gt = torch.full((100, 100), 10.0)
    pred = gt.clone()
    # row 35 is in the Eigen crop (33 .. 91) but not in Garg's (40 .. 99)
    pred[35, 10:90] = 20.0
    assert evaluate(KITTIDepthMetric(crop_type='garg'), gt,
                    pred)['abs_rel'] == 0
    eigen = evaluate(KITTIDepthMetric(crop_type='eigen'), gt, pred)
    rows, cols = 91 - 33, 96 - 3
    assert eigen['abs_rel'] == pytest.approx(80 / (rows * cols), rel=1e-5)


def test_predictions_are_clipped_to_the_evaluation_range():
    gt = torch.full((1, 4), 10.0)
    pred = torch.tensor([[200.0, float('inf'), float('nan'), 10.0]])
    m = evaluate(KITTIDepthMetric(crop_type=None), gt, pred)
    # 200 and inf -> 80, nan -> 1e-3
    errors = torch.tensor([70.0, 70.0, 1e-3 - 10, 0.0])
    assert m['rmse'] == pytest.approx(errors.pow(2).mean().sqrt().item(),
                                      rel=1e-5)
    assert m['d1'] == pytest.approx(0.25)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='crop_type'):
        KITTIDepthMetric(crop_type='kb')
    with pytest.raises(ValueError, match='unknown metrics'):
        KITTIDepthMetric(depth_metrics=['d1', 'delta1'])
    m = KITTIDepthMetric(depth_metrics=['d1', 'silog'])
    gt = torch.full((4, 4), 5.0)
    assert set(evaluate(m, gt, gt)) == {'d1', 'silog'}


def test_clipping_leaves_the_callers_predictions_alone():
    pred = torch.tensor([[[200.0, 10.0]]])
    sample = dict(gt_depth_map=dict(data=torch.full((1, 1, 2), 10.0)),
                  pred_depth_map=dict(data=pred))
    KITTIDepthMetric(crop_type=None).process({}, [sample])
    assert sample['pred_depth_map']['data'] is pred
    assert pred[0, 0, 0] == 200.0
