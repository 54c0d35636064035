# Copyright (c) gppf_mm contributors. All rights reserved.
"""gppf_mm imports and builds the demo's model with transformers >= 5
installed, where mmpretrain 1.2.0 alone fails at import.

transformers 5 is simulated by a package that reports version 5.0.0 and,
like transformers 5 for mmpretrain's BLIP models, lacks the
``transformers.modeling_utils`` names they import; mmpretrain's own
version check reads the version from the package metadata.
"""
import os
import os.path as osp
import subprocess
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(REPO, 'configs', 'gppf',
                'gppf_lego-r50-slim-n2-soft_2xb-simt-450it_gppf-bench.py')


# every module mmpretrain 1.2.0 imports from transformers
MODULES = ('', 'activations', 'modeling_outputs', 'modeling_utils', 'utils',
           'models', 'models.auto', 'models.auto.auto_factory', 'models.bert',
           'models.bert.configuration_bert', 'models.opt',
           'models.opt.configuration_opt')
# names mmpretrain's BLIP language model imports that transformers 5 lacks
GONE_IN_5 = ('apply_chunking_to_forward', 'find_pruneable_heads_and_indices',
             'prune_linear_layer')


PLACEHOLDER = """__version__ = {version!r}
_made = {{}}


class Placeholder:

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        raise NotImplementedError('a test placeholder')

    from_config = from_pretrained


def __getattr__(name):
    if name.startswith('__') or name in {missing!r}:
        raise AttributeError(name)
    if name not in _made:
        base = Placeholder
        if name.startswith('AutoModel'):
            from transformers.models.auto.auto_factory import \\
                _BaseAutoModelClass as base
        _made[name] = type(name, (base, ), {{}})
    return _made[name]
"""


def fake_transformers(root, version='5.0.0'):
    """A transformers whose every public name is a placeholder class, minus
    the names version 5 dropped (for version >= 5)."""
    gone = GONE_IN_5 if int(version.split('.')[0]) >= 5 else ()
    for name in MODULES:
        parts = ['transformers'] + [p for p in name.split('.') if p]
        folder = osp.join(root, *parts)
        os.makedirs(folder, exist_ok=True)
        missing = gone if name == 'modeling_utils' else ()
        with open(osp.join(folder, '__init__.py'), 'w') as f:
            f.write(PLACEHOLDER.format(version=version, missing=missing))
    info = osp.join(root, f'transformers-{version}.dist-info')
    os.makedirs(info)
    with open(osp.join(info, 'METADATA'), 'w') as f:
        f.write(f'Metadata-Version: 2.1\nName: transformers\n'
                f'Version: {version}\n')
    return root


def run(code, root):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(
                   [root, os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=env)


BUILD_DEMO = f'''
import gppf_mm
from gppf_mm.upstream import guard_mmpretrain_multimodal, prepare_upstream
from importlib.metadata import version
assert version('transformers') == '5.0.0'
import mmpretrain.models
from mmpretrain.utils.dependency import WITH_MULTIMODAL
assert WITH_MULTIMODAL is False and guard_mmpretrain_multimodal()
from gppf_mm.visualization.cka import build_model
model = build_model({DEMO!r}, None)
assert type(model.algorithms['shapes_cls']).__name__ == 'ImageClassifier'
print('tasks', sorted(model.algorithms))
'''


def test_mmpretrain_fails_without_the_guard(tmp_path):
    """The simulation reproduces the failure: mmpretrain imports its BLIP
    models and stops."""
    proc = run('import mmpretrain.models', fake_transformers(str(tmp_path)))
    assert proc.returncode != 0
    assert 'NoneType takes no arguments' in proc.stderr, proc.stderr[-2000:]
    assert 'multimodal' in proc.stderr


def test_gppf_mm_builds_the_demo_model_beside_transformers_5(tmp_path):
    proc = run(BUILD_DEMO, fake_transformers(str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tasks ['aerial_det', 'indoor_seg', 'nature_seg', 'shapes_cls'," \
        " 'street_det']" in proc.stdout


def test_transformers_4_left_to_mmpretrain(tmp_path):
    """With transformers 4.x mmpretrain decides as it always does: the
    guard does not touch it (loaded alone: the fake 4.x would break
    mmpretrain's real BLIP import, which is not the guard's business)."""
    guard = osp.join(REPO, 'gppf_mm', 'upstream', 'mmpretrain_guard.py')
    code = (
        'import importlib.util, sys\n'
        f'spec = importlib.util.spec_from_file_location("g", {guard!r})\n'
        'g = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(g)\n'
        'assert g.transformers_major() == 4\n'
        'assert g.guard_mmpretrain_multimodal() is False\n'
        "assert 'mmpretrain.utils.dependency' not in sys.modules\n")
    proc = run(code, fake_transformers(str(tmp_path), '4.40.0'))
    assert proc.returncode == 0, proc.stderr[-2000:]
