"""``mmvit_ext.utils.compat``: the import-time patches of MMEngine (and the code relying on mmseg / mmdet
internals) stop with a clear error on a version they were not written for."""
import os.path as osp
import subprocess
import sys
import warnings

import mmengine
import pytest

import mmvit_ext  # noqa: F401
from mmvit_ext.utils.compat import SKIP_ENV, SUPPORTED, IncompatibleVersionError, check_version, version_matches

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_version_matches():
    assert version_matches('0.10.7', '0.10.x') and version_matches('0.10.0', '0.10.*')
    assert version_matches('1.2.2rc1', '1.2.x') and version_matches('3.3', '3.3.0')
    assert not version_matches('0.11.0', '0.10.x') and not version_matches('0.1.0', '0.10.x')
    assert not version_matches('3.3.1', '3.3.0')


def test_installed_stack_is_supported():
    for package, spec in SUPPORTED.items():
        pytest.importorskip(package)
        check_version(package, spec, 'anything')


@pytest.mark.parametrize('package', ['mmengine', 'mmseg', 'mmdet'])
def test_other_version_names_installed_supported_and_fix(package, monkeypatch):
    module = pytest.importorskip(package)
    monkeypatch.delenv(SKIP_ENV, raising=False)
    monkeypatch.setattr(module, '__version__', '9.0.1')
    with pytest.raises(IncompatibleVersionError) as err:
        check_version(package, SUPPORTED[package], 'some internals')
    text = str(err.value)
    pip_name = 'mmsegmentation' if package == 'mmseg' else package
    assert f'{package} 9.0.1 is installed' in text and f'written for {package} {SUPPORTED[package]}' in text
    assert f'pip install "{pip_name}==' in text and f'{SKIP_ENV}=1' in text and 'some internals' in text
    assert isinstance(err.value, ImportError)


def test_each_mmengine_patch_checks_the_version(monkeypatch):
    """Both patch installers refuse an unsupported MMEngine before patching (they run on ``import mmvit_ext``)."""
    from mmvit_ext.utils.checkpoint import install_safe_checkpoint_loader
    from mmvit_ext.utils.config import register_mim_package
    monkeypatch.delenv(SKIP_ENV, raising=False)
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    with pytest.raises(IncompatibleVersionError, match='_get_cfg_path'):
        register_mim_package()
    with pytest.raises(IncompatibleVersionError, match='CheckpointLoader'):
        install_safe_checkpoint_loader()


def test_escape_hatch_warns_instead(monkeypatch):
    from mmvit_ext.utils.config import register_mim_package
    monkeypatch.setenv(SKIP_ENV, '1')
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        register_mim_package()
    assert any('going on anyway' in str(w.message) for w in caught)


def test_import_fails_clearly_on_another_mmengine():
    """A fresh interpreter with a different MMEngine version: ``import mmvit_ext`` raises the error."""
    code = ('import mmengine\nmmengine.__version__ = "0.11.2"\n'
            'try:\n    import mmvit_ext\nexcept ImportError as err:\n    print(type(err).__name__, err)\n')
    env = {k: v for k, v in __import__('os').environ.items() if k != SKIP_ENV}
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('IncompatibleVersionError mmengine 0.11.2 is installed'), out.stdout
