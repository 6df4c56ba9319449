"""``_base_ = 'mmvit_ext::...'`` from a config in an unrelated directory, for an editable install (this checkout)
and for a normal ``pip install .`` into a fresh location."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE = 'p2t/retinanet_p2t-s_fpn_1x_coco.py'
DOWNSTREAM = f"""_base_ = 'mmvit_ext::{BASE}'
train_dataloader = dict(batch_size=5)
model = dict(bbox_head=dict(num_classes=3))
"""
CHECK = """
import os.path as osp, sys
import mmvit_ext
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
cfg = Config.fromfile('downstream.py')
init_default_scope(cfg.default_scope)
model = MODELS.build(cfg.model)
mim = osp.join(osp.dirname(mmvit_ext.__file__), '.mim', 'configs')
print('package', osp.dirname(mmvit_ext.__file__))
print('linked', osp.islink(mim))
scopes = {h.get('_scope_') for h in cfg.default_hooks.values()} | {cfg.optim_wrapper.get('_scope_')}
print('scopes', sorted(map(str, scopes)))
print('result', cfg.default_scope, cfg.train_dataloader.batch_size, cfg.model.backbone.arch,
      type(model.backbone).__name__, model.bbox_head.num_classes, list(model.neck.in_channels))
"""
EXPECTED = "result mmdet 5 small P2T 3 [64, 128, 320, 512]"


def _run(code, cwd, env=None):
    out = subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def test_editable_install_resolves_mmvit_ext_bases(tmp_path):
    (tmp_path / 'downstream.py').write_text(DOWNSTREAM)
    stdout = _run(CHECK, cwd=tmp_path)
    assert EXPECTED in stdout
    assert f'package {osp.join(ROOT, "mmvit_ext")}' in stdout
    assert 'linked True' in stdout, 'an editable install links configs/ into mmvit_ext/.mim'
    # types defined in our configs stay in the host scope (mmdet), not _scope_='mmvit_ext'
    assert "'mmvit_ext'" not in stdout.split('scopes')[1].splitlines()[0]


def test_without_import_the_prefix_is_unknown(tmp_path):
    """Documents the one line a downstream repo needs: MMEngine alone does not know mmvit_ext::."""
    (tmp_path / 'downstream.py').write_text(DOWNSTREAM)
    code = "from mmengine.config import Config\nConfig.fromfile('downstream.py')\n"
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and 'does not support to load mmvit_ext config' in out.stderr


@pytest.mark.slow
def test_normal_install_ships_configs(tmp_path):
    """``pip install .`` (a wheel build) copies configs into the installed package."""
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                           cwd=ROOT,
                           capture_output=True,
                           text=True,
                           check=True).stdout.split()
    src = tmp_path / 'src'
    for rel in files:
        if osp.isfile(osp.join(ROOT, rel)):
            os.makedirs(src / osp.dirname(rel), exist_ok=True)
            shutil.copy2(osp.join(ROOT, rel), src / rel)
    site = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--target',
        str(site),
        str(src)
    ],
                   check=True,
                   capture_output=True,
                   timeout=600)
    installed = site / 'mmvit_ext' / '.mim'
    assert (installed / 'configs' / BASE).is_file() and not (installed / 'configs').is_symlink()
    assert (installed / 'model-index.yml').is_file()

    downstream = tmp_path / 'downstream'
    downstream.mkdir()
    (downstream / 'downstream.py').write_text(DOWNSTREAM)
    env = dict(os.environ, PYTHONPATH=str(site))
    stdout = _run(CHECK, cwd=downstream, env=env)
    assert EXPECTED in stdout
    assert f'package {site / "mmvit_ext"}' in stdout and 'linked False' in stdout
