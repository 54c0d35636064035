# UODB Kitchen (indoor, 5k):
# the paper's Table 8 settings: 13500 iterations
# of batch 16, lr x0.1 at 9000 and 12000, test size 800, anchor sizes
# [[32], [64], [128], [256], [512]] (one per FPN level).
_base_ = '../../_base_/downstream/faster-rcnn_r50-gppf-path_uodb.py'

data_root = 'data/uodb/Kitchen/'
classes = (
    'coca_cola_glass_bottle', 'coffee_mate_french_vanilla',
    'honey_bunches_of_oats_honey_roasted', 'hunts_sauce', 'mahatma_rice',
    'nature_valley_soft_baked_oatmeal_squares_cinnamon_brown_sugar',
    'nature_valley_sweet_and_salty_nut_almond', 'palmolive_orange',
    'pop_secret_light_butter', 'pringles_bbq', 'red_bull',
)
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=len(classes))))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png'))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        img_suffix='.png'))
test_dataloader = val_dataloader

max_iters = 13500
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[9000, 12000], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
