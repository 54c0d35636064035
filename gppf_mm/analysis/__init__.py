# Copyright (c) gppf_mm contributors. All rights reserved.
from .cka import (
    MinibatchCKA,
    cka_matrices,
    collect_layer_grams,
    gram_linear,
    hsic_unbiased,
    hsic_unbiased_matrix,
    layer_display_names,
    lego_layers,
    linear_cka,
    record_layer_grams,
)
from .selection import selection_flips, selection_summary

__all__ = [
    'MinibatchCKA', 'cka_matrices', 'collect_layer_grams', 'gram_linear',
    'hsic_unbiased', 'hsic_unbiased_matrix', 'layer_display_names',
    'lego_layers', 'linear_cka', 'record_layer_grams', 'selection_flips',
    'selection_summary'
]
