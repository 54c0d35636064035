# Copyright (c) gppf_mm contributors. All rights reserved.
"""Keep mmpretrain importable beside transformers >= 5.

mmpretrain 1.2.0 imports its multimodal models (BLIP, Flamingo, ...) when
``transformers >= 4.28`` is installed (``mmpretrain.utils.dependency.
WITH_MULTIMODAL``). Under transformers 5 their ``transformers.modeling_utils``
imports fail, ``PreTrainedModel`` becomes ``None``, and ``import
mmpretrain`` stops with ``TypeError: NoneType takes no arguments``; mmdet
imports mmpretrain (ReID data preprocessor), so nothing of gppf_mm loads.

GPPF uses none of the multimodal models. With transformers >= 5 installed,
:func:`guard_mmpretrain_multimodal` loads ``mmpretrain.utils.dependency``
ahead of mmpretrain with ``WITH_MULTIMODAL = False``; mmpretrain then
registers its placeholders for those models (which say what to install when
built), as it does without transformers. With transformers 4.28-4.x, or
none, mmpretrain is left to decide as it always does.
"""
import importlib.util
import os.path as osp
import sys

DEPENDENCY = 'mmpretrain.utils.dependency'
FIRST_BREAKING = 5  # transformers major version


def transformers_major():
    """The installed transformers' major version, or ``None``."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return int(version('transformers').split('.')[0])
    except (PackageNotFoundError, ValueError):
        return None


def guard_mmpretrain_multimodal():
    """Switch mmpretrain's multimodal import off under transformers >= 5.

    Returns ``True`` when the switch is (now) off because of the guard.
    Must run before ``mmpretrain`` is imported; afterwards it changes
    nothing and returns whether it had run.
    """
    major = transformers_major()
    if major is None or major < FIRST_BREAKING:
        return False
    loaded = sys.modules.get(DEPENDENCY)
    if loaded is not None:
        return getattr(loaded, '__gppf_guarded__', False)
    if 'mmpretrain' in sys.modules:
        return False  # too late: mmpretrain made its choice already
    spec = importlib.util.find_spec('mmpretrain')
    if spec is None or not spec.submodule_search_locations:
        return False
    path = osp.join(list(spec.submodule_search_locations)[0], 'utils',
                    'dependency.py')
    dep_spec = importlib.util.spec_from_file_location(DEPENDENCY, path)
    module = importlib.util.module_from_spec(dep_spec)
    dep_spec.loader.exec_module(module)
    module.WITH_MULTIMODAL = False
    module.__gppf_guarded__ = True
    sys.modules[DEPENDENCY] = module
    return True
