"""The analysis code (FLOPs, benchmark) is apart from the runtime package: ``import mmvit_ext`` and building a
model never import ``mmvit_ext.analysis``."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_import_and_build_do_not_load_analysis():
    code = ('import sys\nimport mmvit_ext\nimport mmvit_ext.utils.launch\nfrom mmvit_ext.registry import MODELS\n'
            "MODELS.build(dict(type='P2T', arch='tiny'))\n"
            "print(sorted(m for m in sys.modules if m.startswith('mmvit_ext.analysis')))\n")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == '[]', out.stdout
