"""One registry, reachable from mmdet, mmseg and mmpretrain configs as ``type='mmvit_ext.Name'``."""
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

import mmvit_ext  # noqa: F401
from mmvit_ext.registry import MODELS

HOSTS = ['mmdet', 'mmseg', 'mmpretrain']


def test_registry_scope_and_parent():
    from mmengine.registry import MODELS as ROOT
    assert MODELS.scope == 'mmvit_ext'
    assert MODELS.parent is ROOT
    assert ROOT.children['mmvit_ext'] is MODELS
    assert 'P2T' in MODELS.module_dict


@pytest.mark.parametrize('host', HOSTS)
def test_build_from_host_scope(host):
    registry = __import__(f'{host}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(host):
        backbone = registry.build(dict(type='mmvit_ext.P2T', arch='tiny', out_indices=(3, )))
    assert type(backbone).__module__ == 'mmvit_ext.models.backbones.p2t'
    out = backbone(torch.randn(1, 3, 96, 96))
    assert len(out) == 1 and out[0].shape == (1, 384, 3, 3)


@pytest.mark.parametrize('host', HOSTS)
def test_lazy_import_from_a_fresh_process(host):
    """A host config needs neither ``import mmvit_ext`` nor ``custom_imports``: MMEngine imports
    ``mmvit_ext.registry`` for the ``mmvit_ext.`` prefix and the registry's ``locations`` register the models."""
    code = (f'import sys\nfrom mmengine.registry import init_default_scope\nfrom {host}.registry import MODELS\n'
            f"init_default_scope('{host}')\nassert 'mmvit_ext' not in sys.modules\n"
            "m = MODELS.build(dict(type='mmvit_ext.P2T', arch='tiny'))\n"
            "print(type(m).__name__, m.out_channels)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('P2T [48, 96, 240, 384]') or 'P2T (48, 96, 240, 384)' in out.stdout


def test_unscoped_name_is_not_found_from_host_scope():
    """Siblings are not searched: the scope prefix is required (documented in the README)."""
    from mmseg.registry import MODELS as SEG_MODELS
    init_default_scope('mmseg')
    with pytest.raises(KeyError, match='P2T is not in the mmseg::model registry'):
        SEG_MODELS.build(dict(type='P2T'))


HOST_PACKAGES = ('mmdet', 'mmseg', 'mmpretrain', 'torchvision')


def _run(code):
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_native_backbone_imports_no_host_package():
    """``import mmvit_ext`` and building P2T import only torch, mmcv and mmengine (fresh process)."""
    code = ('import sys\nimport mmvit_ext\nfrom mmvit_ext.registry import MODELS\n'
            "m = MODELS.build(dict(type='mmvit_ext.P2T', arch='tiny'))\n"
            "MODELS.get('P2T')\n"
            f'print(sorted(p for p in {HOST_PACKAGES!r} if p in sys.modules))\n'
            "print('mmvit_ext.models.hosts' in sys.modules)\n")
    assert _run(code).split() == ['[]', 'False']


def test_host_wrapper_is_imported_on_first_lookup():
    """The Expedite wrappers are reached by name from a host scope, without any import of ours (fresh process)."""
    code = ('import sys\nfrom mmengine.registry import init_default_scope\nfrom mmseg.registry import MODELS\n'
            "init_default_scope('mmseg')\n"
            "m = MODELS.build(dict(type='mmvit_ext.HourglassViT', img_size=(32, 32), patch_size=8, embed_dims=16,\n"
            '                      num_layers=2, num_heads=2, expedite=dict(alpha=1, cluster_shape=(2, 2))))\n'
            "print(type(m).__module__)\n")
    assert _run(code).strip().endswith('mmvit_ext.models.hosts.expedite')


def test_host_modules_table_is_what_the_hosts_register():
    from mmvit_ext.registry import HOST_MODULES
    MODELS.import_hosts()
    hosts = {
        name: cls.__module__
        for name, cls in MODELS.module_dict.items() if cls.__module__.startswith('mmvit_ext.models.hosts.')
    }
    assert hosts == HOST_MODULES
