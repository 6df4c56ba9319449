"""The error scheme of every command-line tool: a person-fixable mistake is printed as one message.

Every tool runs its work inside ``with user_errors(args.debug):``. A :class:`UserError` (or one of the other
person-fixable errors listed in :func:`user_errors`) is printed as ``error: <message>`` on stderr and the tool exits
with status 2; ``--debug`` re-raises it with the full traceback. Argument-syntax errors stay argparse's own (usage
line, exit status 2).

This module imports nothing beyond the standard library, so that light tools (``tools/misc/make_demo_data.py``,
``tools/analysis_tools/analyze_logs.py``) can use it without importing torch. :mod:`mmvit_ext.utils.launch`
re-exports :class:`UserError` and :func:`user_errors`.
"""
import sys
from contextlib import contextmanager
from typing import Iterator, List, Type

__all__ = ['UserError', 'ConfigError', 'user_errors', 'DOCS_DATASETS', 'CONVERTER_CLI']

DOCS_DATASETS = 'docs/dataset_prepare.md'
CONVERTER_CLI = 'tools/model_converters/convert_checkpoint.py FAMILY SRC DST'

# Exceptions of other mmvit_ext modules that are person-fixable too: (module, class name). They are looked up in
# ``sys.modules`` and never imported here: an exception of a class can only have been raised once its module is
# loaded, and importing them would import torch.
_OTHER_USER_ERRORS = (
    ('mmvit_ext.utils.checkpoint', 'UnsafeCheckpointError'),
    ('mmvit_ext.utils.checkpoint', 'StateDictMismatchError'),
    ('mmvit_ext.utils.compat', 'IncompatibleVersionError'),
    ('mmvit_ext.models.backbones.base', 'PretrainedLoadError'),
)


class UserError(Exception):
    """A mistake in a command line, a config or a file that a person can fix; the tools print it without a
    traceback."""


class ConfigError(UserError, ValueError):
    """A bad argument of a module (unknown ``arch``, out-of-range ``out_indices``, an input below the minimum size)
    whose message names the fix: a ``ValueError`` for code that catches those, one line in the tools.

    MMEngine's registry re-raises a build error as ``type(err)(f'class `X` in ...: {err}')``, so the class (and
    the one-line treatment) survives nested builds.
    """


def _user_error_types() -> tuple:
    types: List[Type[BaseException]] = [UserError]
    for module_name, class_name in _OTHER_USER_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            types.append(cls)
    return tuple(types)


def _registry_hint(message: str) -> str:
    from mmvit_ext.registry import MODELS
    ours = ', '.join(sorted(MODELS.module_dict)) or '(none)'
    return (f'{message}\nCheck the spelling of the type. Modules of this package are written with their scope, '
            f"e.g. type='mmvit_ext.P2T' (registered: {ours}); modules of mmdet/mmseg/mmpretrain need the config's "
            'default_scope or an explicit prefix such as mmdet.RetinaNet.')


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Print a person-fixable error as one message (exit status 2) instead of a traceback.

    Covered: :class:`UserError` (and :class:`ConfigError`: bad module arguments, inputs below a minimum size);
    refused (:class:`~mmvit_ext.utils.checkpoint.UnsafeCheckpointError`) or unfitting
    (:class:`~mmvit_ext.utils.checkpoint.StateDictMismatchError`, including a backbone's strict
    ``init_cfg=Pretrained`` load) checkpoints; unsupported library versions
    (:class:`~mmvit_ext.utils.compat.IncompatibleVersionError`); unknown registry types; missing files and
    folders, and files that cannot be written; MMEngine's own strict-load errors.

    Args:
        debug (bool): ``--debug``: re-raise with the full traceback instead. Defaults to False.
    """
    try:
        yield
    except Exception as err:  # noqa: B902  (classified below; everything else propagates unchanged)
        if debug:
            raise
        message = _user_message(err)
        if message is None:
            raise
        print(f'error: {message}\n(run with --debug for the full traceback)', file=sys.stderr)
        raise SystemExit(2) from None


def _user_message(err: Exception):
    """The message to print for a person-fixable ``err``, or ``None`` for a genuine bug (re-raised)."""
    if isinstance(err, _user_error_types()):
        return str(err)
    if isinstance(err, KeyError):
        text = err.args[0] if err.args else ''
        if isinstance(text, str) and 'registry' in text:
            return _registry_hint(text.split(' Please check')[0])
        return None
    if isinstance(err, FileNotFoundError):
        return (f'{err}\nCheck the path in the command line or config (data_root, ann_file, load_from, '
                f'init_cfg.checkpoint); datasets are described in {DOCS_DATASETS}.')
    if isinstance(err, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return f'{err}\nCheck the path and its permissions.'
    if isinstance(err, RuntimeError):
        text = str(err)
        if 'state_dict' in text and ('Missing key' in text or 'Unexpected key' in text):
            return f'{text}\nOfficial (non-mmvit_ext) checkpoints must be converted first: python {CONVERTER_CLI}'
    return None
