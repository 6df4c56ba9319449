"""Shared test set-up."""
import pytest
import torch

# Model-heavy unit tests run with one intra-op thread: the CI/dev machines have 2 shared cores, where two OpenMP
# threads competing with other processes are up to 50x slower than one.
SINGLE_THREAD_DIRS = ('test_backbones', 'test_converters')


@pytest.fixture
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Integration tests: `make test` runs them, `make test-fast` (-m "not integration") skips them. They start
# subprocesses (the tools, a fresh interpreter, pip), train/test end to end, build host detectors/segmentors, export
# ONNX, or take more than ~5 s on the 2 shared cores. Whole files by name; single tests by function name (every
# parametrized case). Keep the lists short and explicit: a new test of that kind is added here. `slow` tests are
# integration tests too.
INTEGRATION_FILES = (
    'test_configs.py',  # builds every config's host detector / segmentor / classifier and runs it
    'test_config_inheritance.py',  # mmvit_ext:: bases in subprocesses, pip install into a fresh location
    'test_train_test_e2e.py',  # tools/train.py, tools/test.py, dist_train in subprocesses
    'test_convert_checkpoint.py',  # the converter CLI, then an mmpretrain classifier from the converted file
)
INTEGRATION_TESTS = (
    'test_lazy_import_from_a_fresh_process',  # test_registry.py: a fresh interpreter per host library (~6 s each)
    'test_found_from_an_mmseg_pipeline_in_a_fresh_process',  # test_transforms.py: a fresh interpreter
    'test_config_test_pipeline_end_to_end',  # test_transforms.py: a P2T config's mmseg test pipeline on images
    'test_onnx_export_equals_eager',  # test_p2t.py: ONNX export + onnxruntime
    'test_run_benchmark_two_configs_with_memory',  # test_benchmark.py: spawns the peak-memory process (~7 s)
    'test_host_config_backbone_with_memory_child',  # test_benchmark.py: the same with an mmseg config (~7 s)
)


def _is_integration(item) -> bool:
    return (item.path.name in INTEGRATION_FILES or getattr(item, 'originalname', item.name) in INTEGRATION_TESTS
            or item.get_closest_marker('slow') is not None)


def pytest_collection_modifyitems(items):
    for item in items:
        if any(part in SINGLE_THREAD_DIRS for part in item.path.parts):
            item.add_marker(pytest.mark.usefixtures('single_thread'))
        if _is_integration(item):
            item.add_marker(pytest.mark.integration)
