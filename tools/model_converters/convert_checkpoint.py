#!/usr/bin/env python
"""Convert an official checkpoint into mmvit_ext's layout.

    python tools/model_converters/convert_checkpoint.py FAMILY SRC DST [--target classifier|backbone]

FAMILY is one of ``mmvit_ext.converters.CONVERTERS`` (e.g. ``p2t``). ``--target classifier`` (default) writes an
mmpretrain ``ImageClassifier`` state dict (``backbone.*`` + ``head.fc.*``) usable as ``load_from`` of our ImageNet
configs; ``--target backbone`` writes bare backbone weights for ``init_cfg=dict(type='Pretrained', ...)``.
Conversion is strict: an official key that is not used, or a missing one, stops with the list of keys. The weights
are taken from ``state_dict``, else ``model`` (DeiT-style training checkpoints), else ``model_ema``, else the bare
dict, and the output line says which; ``--ema`` takes ``model_ema`` of a checkpoint that holds both.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    from mmvit_ext.converters import CONVERTERS
    parser = argparse.ArgumentParser(description='Convert an official checkpoint to mmvit_ext keys')
    parser.add_argument('family', choices=sorted(CONVERTERS), help='model family')
    parser.add_argument('src', help='official checkpoint (bare, or wrapped in "model" / "state_dict")')
    parser.add_argument('dst', help='output path (.pth)')
    parser.add_argument(
        '--target',
        choices=['classifier', 'backbone'],
        default='classifier',
        help='classifier: backbone.* + head.fc.* (mmpretrain); backbone: bare backbone keys')
    parser.add_argument(
        '--ema',
        action='store_true',
        help='convert checkpoint["model_ema"] (EMA weights of a DeiT-style training checkpoint) instead of "model"')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmvit_ext import __version__
    from mmvit_ext.converters import get_converter, state_dict_location
    from mmvit_ext.utils.checkpoint import safe_torch_load
    from mmvit_ext.utils.launch import UserError, user_errors
    with user_errors(args.debug):
        if not osp.isfile(args.src):
            raise UserError(f'source checkpoint {args.src!r} does not exist')
        # training configs pickled next to the weights (argparse.Namespace, yacs CfgNode) load as inert data
        checkpoint = safe_torch_load(args.src, map_location='cpu')
        if args.ema:
            if not (isinstance(checkpoint, dict) and 'model_ema' in checkpoint):
                keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
                raise UserError(f'--ema: {args.src!r} has no "model_ema" entry (it has {keys}); drop --ema')
            checkpoint = checkpoint['model_ema']
        try:
            location = ("checkpoint['model_ema']" if args.ema else state_dict_location(checkpoint))
            state_dict = get_converter(args.family)(checkpoint, target=args.target)
        except (KeyError, ValueError) as err:
            raise UserError(f'cannot convert {args.src!r} as {args.family}: {err}') from None
        os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
        meta = dict(
            converted_from=osp.basename(args.src),
            weights=location,
            family=args.family,
            target=args.target,
            mmvit_ext_version=__version__)
        torch.save(dict(meta=meta, state_dict=state_dict), args.dst)
        print(f'converted {len(state_dict)} tensors from {location} ({args.family}, {args.target}) -> {args.dst}')


if __name__ == '__main__':
    main()
