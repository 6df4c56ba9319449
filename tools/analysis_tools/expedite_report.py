#!/usr/bin/env python
"""Expedite report: how close an hourglass model's features are to its plain twin's, and what clustering and
reconstruction cost.

    python tools/analysis_tools/expedite_report.py PLAIN HOURGLASS [PLAIN HOURGLASS ...] --shape H W
        [--part backbone|model] [--repeat N] [--warmup K] [--images DIR] [--checkpoint CKPT] [--threads T]
        [--seed S] [--json OUT] [--cfg-options k=v ...] [--hourglass-options k=v ...] [--debug]

For each pair (a plain config and the hourglass config that inherits it, e.g. the ``configs/expedite/`` pairs):

1. Both models are built; the plain one gets its weights (``--checkpoint``, a full-model checkpoint of the plain
   config, loaded strictly: a checkpoint that does not fit stops with its missing / unexpected / mis-shaped keys;
   otherwise the host's own random initialisation, ``init_weights()`` without the pretrained weights) and the
   hourglass model loads the plain model's ``state_dict`` strictly (the Expedite wrappers add no parameters), so
   both run the same weights.
2. Images: the files of ``--images DIR`` (any size, resized to ``--shape``), or synthetic scenes (textured
   background and shaded shapes, :func:`mmvit_ext.datasets.demo_data.render_scene`). Each goes through the model's
   data preprocessor (normalisation, padding), batch 1.
3. ``warmup`` untimed rounds, then ``repeat`` timed rounds, one image per round, plain then hourglass (the timing
   loop of ``benchmark.py``, :func:`mmvit_ext.analysis.benchmark.time_interleaved`), in eval mode under
   ``torch.no_grad()``. ``--part backbone`` (default) times the backbone forward, ``--part model`` the whole
   network (``mode='tensor'``: backbone + neck + heads).
4. Reported: the median wall-clock latency of both and the speed-up (also best-of-N and in process CPU time,
   which hardly depends on the load of other processes); the time inside the hourglass layers (clustering:
   ``TokenClustering.forward``; reconstruction: ``TokenReconstruction.weights`` + ``apply_weights``; for Swin also
   the window padding/partition around them) and its share of the hourglass forward (median over rounds); the
   cosine similarity between the hourglass and plain **backbone** outputs of the timed rounds, per output map and
   per token (over channels): mean, 1st percentile and minimum, plus the relative L2 error.

With random weights the similarities say how the hourglass perturbs *these* features only; they do not predict the
accuracy of trained weights. Timings are of this machine under its current load (the JSON records threads and
torch version). Mistakes stop with one ``error:`` line (exit status 2); ``--debug`` shows the traceback.
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import statistics
import sys
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# MMEngine 0.10.7 imports pkg_resources (needed for ``mmdet::`` bases); its deprecation notice is only noise here.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Expedite: feature similarity and clustering/reconstruction cost, plain vs hourglass')
    parser.add_argument(
        'configs',
        nargs='+',
        metavar='CONFIG',
        help='pairs PLAIN HOURGLASS [PLAIN HOURGLASS ...] (files or pkg::dir/file.py)')
    parser.add_argument('--shape', type=int, nargs='+', default=[512, 512], help='input size "H W" (or one number)')
    parser.add_argument(
        '--part',
        choices=['backbone', 'model'],
        default='backbone',
        help='time the backbone (default) or the whole network; similarity is always measured on '
        'the backbone outputs')
    parser.add_argument('--repeat', type=int, default=3, help='timed rounds (one image each) per pair')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument(
        '--images',
        default=None,
        metavar='DIR',
        help='folder of images (resized to --shape); default: synthetic scenes')
    parser.add_argument(
        '--checkpoint',
        default=None,
        help='full-model checkpoint of the PLAIN config (one pair only); default: random weights')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights and synthetic images')
    parser.add_argument('--json', default=None, metavar='OUT', help='write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides for every config, k=v')
    parser.add_argument(
        '--hourglass-options',
        nargs='+',
        action=DictAction,
        help='overrides for the hourglass configs only, e.g. model.backbone.expedite.alpha=8')
    parser.add_argument('--quiet', action='store_true', help='no progress messages')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def check_args(args) -> None:
    """Raise :class:`~mmvit_ext.utils.launch.UserError` for arguments that do not fit together."""
    from mmvit_ext.utils.launch import UserError
    if len(args.configs) % 2:
        raise UserError('give the configs in pairs: PLAIN HOURGLASS [PLAIN HOURGLASS ...]')
    if args.checkpoint and len(args.configs) > 2:
        raise UserError('--checkpoint belongs to one plain config: give a single pair')
    if args.repeat < 1 or args.warmup < 0:
        raise UserError('need --repeat >= 1 and --warmup >= 0')


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------
def load_images(num, shape, folder=None, seed=0):
    """``num`` RGB uint8 images (H, W, 3) of ``shape``: files of ``folder`` (cycled, resized), or synthetic scenes."""
    import cv2

    from mmvit_ext.utils.launch import UserError
    h, w = shape
    if folder:
        files = sorted(
            f for f in glob.glob(osp.join(folder, '**', '*'), recursive=True) if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise UserError(f'--images: no images ({", ".join(IMAGE_EXTS)}) under {folder}')
        images = []
        for i in range(num):
            bgr = cv2.imread(files[i % len(files)], cv2.IMREAD_COLOR)
            if bgr is None:
                raise UserError(f'--images: cannot read {files[i % len(files)]}')
            images.append(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1].copy())
        return images
    from mmvit_ext.datasets.demo_data import render_scene
    return [
        render_scene(np.random.default_rng([seed, i]), (h, w), num_shapes=(4, 10), radius_range=(0.05, 0.18))[0]
        for i in range(num)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------
def _strip_pretrained(cfg):
    """No downloads: drop ``model.pretrained`` and the backbone's ``init_cfg`` (random weights are the host's own
    ``init_weights`` scheme)."""
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None


def _clocks():
    """(wall-clock, process CPU) seconds, the clocks of :func:`mmvit_ext.analysis.benchmark.time_interleaved`."""
    return time.perf_counter(), time.process_time()


class _OpTimer:
    """Accumulates the wall-clock and CPU time spent inside wrapped callables (CPU: calls are synchronous)."""

    def __init__(self):
        self.wall, self.cpu = {}, {}

    def wrap(self, owner, name, key):
        fn = getattr(owner, name)
        self.wall.setdefault(key, 0.0)
        self.cpu.setdefault(key, 0.0)

        def timed(*args, **kwargs):
            wall, cpu = _clocks()
            try:
                return fn(*args, **kwargs)
            finally:
                wall_end, cpu_end = _clocks()
                self.wall[key] += wall_end - wall
                self.cpu[key] += cpu_end - cpu

        setattr(owner, name, timed)  # an instance attribute: shadows the method for calls through ``self``

    def reset(self):
        for key in self.wall:
            self.wall[key] = self.cpu[key] = 0.0


def instrument(backbone):
    """Time the hourglass layers of an Expedite backbone; returns the :class:`_OpTimer`."""
    if getattr(backbone, 'expedite_cfg', None) is None:
        from mmvit_ext.utils.launch import UserError
        raise UserError(f'{type(backbone).__name__} is not an enabled Expedite backbone (mmvit_ext.Hourglass*); '
                        'give the configs as PLAIN HOURGLASS pairs')
    timer = _OpTimer()
    timer.wrap(backbone.clustering, 'forward', 'clustering')
    timer.wrap(backbone.reconstruction, 'weights', 'reconstruction')
    timer.wrap(backbone.reconstruction, 'apply_weights', 'reconstruction')
    if hasattr(backbone, '_cluster_windows'):  # Swin: padding + window partition/reverse around the ops
        timer.wrap(backbone, '_cluster_windows', 'windowed')
        timer.wrap(backbone, '_reconstruct_windows', 'windowed')
    return timer


def build_pair(plain_cfg, hourglass_cfg, checkpoint=None, seed=0):
    """Plain and hourglass models (eval mode) with the same weights; see the module docstring.

    Raises:
        StateDictMismatchError: ``checkpoint`` does not fit the plain model, or the hourglass model does not have
            exactly the plain model's keys and shapes.
    """
    from mmengine.logging import MMLogger

    from mmvit_ext.analysis.inputs import build_model_from_cfg
    from mmvit_ext.utils.checkpoint import load_state_dict_strict
    from mmvit_ext.utils.launch import load_checkpoint_strict
    for cfg in (plain_cfg, hourglass_cfg):
        _strip_pretrained(cfg)
    torch.manual_seed(seed)
    plain = build_model_from_cfg(plain_cfg, 'model')
    if checkpoint:
        load_checkpoint_strict(plain, checkpoint, what=f'the plain model of {plain_cfg.filename}')
    else:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # init_weights logs one INFO entry per parameter
        try:
            plain.init_weights()
        finally:
            logger.setLevel(level)
    hourglass = build_model_from_cfg(hourglass_cfg, 'model')
    load_state_dict_strict(
        hourglass,
        plain.state_dict(),
        source=f'the weights of the plain model ({plain_cfg.filename})',
        hint=f'{hourglass_cfg.filename} must inherit the plain config and change only the backbone type and '
        '`expedite` (the Expedite wrappers add no parameters).')
    return plain.eval(), hourglass.eval()


def make_inputs(model, scope, images):
    """Each RGB image through the model's data preprocessor -> (list of batch-1 input tensors, data samples)."""
    from mmvit_ext.analysis.inputs import prepare_model_and_inputs
    h, w = images[0].shape[:2]
    wrapped, _ = prepare_model_and_inputs(model, (h, w), batch_size=1, device='cpu', scope=scope)
    samples = wrapped.data_samples
    inputs = []
    for img in images:
        # the pipelines load BGR (OpenCV); the preprocessor converts with bgr_to_rgb
        bgr = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float()
        inputs.append(model.data_preprocessor(dict(inputs=[bgr], data_samples=samples), False)['inputs'])
    return inputs, samples


def _feature_maps(outputs):
    """The (B, C, H, W) maps among backbone outputs (class tokens dropped)."""
    from mmvit_ext.analysis.inputs import flatten_tensors
    return [t for t in flatten_tensors(outputs) if t.dim() == 4]


class _Runner:
    """One timed unit for a model: the backbone or the whole network on one round's input; keeps the last
    backbone outputs."""

    def __init__(self, model, samples, part, inputs):
        self.model, self.samples, self.part, self.inputs = model, samples, part, inputs
        self.backbone_out = None
        model.backbone.register_forward_hook(self._keep)

    def _keep(self, module, args, output):
        self.backbone_out = [t.detach() for t in _feature_maps(output)]

    def __call__(self, round_index):
        """One run on the input of round ``round_index``."""
        x = self.inputs[round_index]
        with torch.no_grad():
            if self.part == 'backbone':
                self.model.backbone(x)
            else:
                self.model(x, self.samples, mode='tensor')


def compare(hourglass_maps, plain_maps):
    """Per output map: per-token cosine similarity over channels (mean, 1st percentile, min), relative L2 error."""
    rows = []
    for i, (h, p) in enumerate(zip(hourglass_maps, plain_maps)):
        assert h.shape == p.shape, f'output {i}: hourglass {tuple(h.shape)} vs plain {tuple(p.shape)}'
        cos = F.cosine_similarity(h.double(), p.double(), dim=1).flatten()
        rows.append(dict(cos=cos, rel_l2=float((h - p).double().norm() / p.double().norm().clamp_min(1e-30))))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------
def _expedite_summary(backbone):
    cfg = dict(backbone.expedite_cfg)
    if isinstance(cfg.get('cluster_shape'), tuple):
        cfg['cluster_shape'] = list(cfg['cluster_shape'])
    return cfg


def report_pair(plain_path,
                hourglass_path,
                shape,
                *,
                part='backbone',
                repeat=3,
                warmup=1,
                images=None,
                checkpoint=None,
                cfg_options=None,
                hourglass_options=None,
                seed=0,
                log=print):
    """Measure one pair (see the module docstring); returns a JSON-serialisable dict."""
    from mmvit_ext.analysis.benchmark import TimedCase, time_interleaved
    from mmvit_ext.analysis.inputs import load_analysis_config
    plain_cfg = load_analysis_config(plain_path, cfg_options, 'cpu')
    hourglass_cfg = load_analysis_config(hourglass_path, cfg_options, 'cpu')
    if hourglass_options:
        hourglass_cfg.merge_from_dict(hourglass_options)
    scope = plain_cfg.get('default_scope')
    log(f'building {plain_path} and {hourglass_path} ...')
    plain, hourglass = build_pair(plain_cfg, hourglass_cfg, checkpoint, seed)
    timer = instrument(hourglass.backbone)
    imgs = load_images(warmup + repeat, shape, images, seed)
    inputs, samples = make_inputs(plain, scope, imgs)
    runners = [_Runner(plain, samples, part, inputs), _Runner(hourglass, samples, part, inputs)]
    op_times, sims = [], None  # op_times: dicts per timed round

    def after_round(r, timings):
        nonlocal sims
        op_times.append(
            dict(wall=dict(timer.wall, total=timings[1].wall[-1]), cpu=dict(timer.cpu, total=timings[1].cpu[-1])))
        rows = compare(runners[1].backbone_out, runners[0].backbone_out)
        if sims is None:
            sims = [dict(shape=list(runners[0].backbone_out[i].shape[1:]), cos=[], rel_l2=[]) for i in range(len(rows))]
        for acc, row in zip(sims, rows):
            acc['cos'].append(row['cos'])
            acc['rel_l2'].append(row['rel_l2'])

    log(f'{warmup} warm-up + {repeat} timed rounds (one image each), plain then hourglass ...')
    cases = [TimedCase(run=runners[0]), TimedCase(run=runners[1], prepare=lambda r: timer.reset())]
    timings = time_interleaved(cases, repeat=repeat, warmup=warmup, after_round=after_round)
    times = tuple(list(zip(t.wall, t.cpu)) for t in timings)  # per model: (wall, cpu) seconds per timed round

    med = statistics.median
    plain_ms, hour_ms = 1e3 * med(t[0] for t in times[0]), 1e3 * med(t[0] for t in times[1])
    plain_cpu, hour_cpu = 1e3 * med(t[1] for t in times[0]), 1e3 * med(t[1] for t in times[1])

    def share(keys, clock):
        return [100 * sum(o[clock][k] for k in keys) / o[clock]['total'] for o in op_times]

    shares = share(('clustering', 'reconstruction'), 'wall')
    result = dict(
        plain=plain_path,
        hourglass=hourglass_path,
        backbone=type(hourglass.backbone).__name__,
        expedite=_expedite_summary(hourglass.backbone),
        shape=list(shape),
        input_shape=list(inputs[0].shape),
        part=part,
        weights=f'checkpoint {checkpoint}' if checkpoint else 'random (host init_weights, no pretrained weights)',
        images=f'{images} (resized)' if images else 'synthetic scenes (mmvit_ext.datasets.demo_data.render_scene)',
        state_dict_compatible=True,
        repeat=repeat,
        warmup=warmup,
        seed=seed,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        plain_ms=plain_ms,
        hourglass_ms=hour_ms,
        speedup=plain_ms / hour_ms,
        speedup_best=min(t[0] for t in times[0]) / min(t[0] for t in times[1]),
        plain_cpu_ms=plain_cpu,
        hourglass_cpu_ms=hour_cpu,
        speedup_cpu=plain_cpu / hour_cpu,
        clustering_ms=1e3 * med(o['wall']['clustering'] for o in op_times),
        reconstruction_ms=1e3 * med(o['wall']['reconstruction'] for o in op_times),
        ops_share_percent=med(shares),
        ops_share_percent_max=max(shares),
        ops_share_percent_cpu=med(share(('clustering', 'reconstruction'), 'cpu')),
    )
    if 'windowed' in op_times[0]['wall']:
        result['windowed_ops_ms'] = 1e3 * med(o['wall']['windowed'] for o in op_times)
        result['windowed_ops_share_percent'] = med(share(('windowed', ), 'wall'))
    result['outputs'] = []
    for i, acc in enumerate(sims):
        cos = torch.cat(acc['cos'])
        result['outputs'].append(
            dict(
                index=i,
                shape=acc['shape'],
                cos_mean=float(cos.mean()),
                cos_p01=float(torch.quantile(cos, 0.01)),
                cos_min=float(cos.min()),
                rel_l2=statistics.fmean(acc['rel_l2'])))
    result['final_cos_mean'] = result['outputs'][-1]['cos_mean']
    return result


def format_report(results):
    """Text tables: timing / share per pair, then similarity per output map."""
    lines = []
    for res in results:
        lines += [
            f"{osp.basename(res['hourglass'])}  vs  {osp.basename(res['plain'])}",
            f"  {res['backbone']} {res['expedite']}",
            f"  input {res['input_shape']}, part={res['part']}, {res['repeat']} timed rounds after {res['warmup']} "
            f"warm-up, {res['threads']} thread(s); weights: {res['weights']}; images: {res['images']}",
            f"  wall-clock median: plain {res['plain_ms']:.1f} ms | hourglass {res['hourglass_ms']:.1f} ms | speed-up "
            f"{res['speedup']:.3f}x (best-of-{res['repeat']} {res['speedup_best']:.3f}x); CPU time: speed-up "
            f"{res['speedup_cpu']:.3f}x",
            f"  clustering {res['clustering_ms']:.1f} ms + reconstruction {res['reconstruction_ms']:.1f} ms = "
            f"{res['ops_share_percent']:.2f}% of the hourglass time (max {res['ops_share_percent_max']:.2f}%; "
            f"CPU time {res['ops_share_percent_cpu']:.2f}%)",
        ]
        if 'windowed_ops_ms' in res:
            lines.append(f"  with window padding/partition: {res['windowed_ops_ms']:.1f} ms = "
                         f"{res['windowed_ops_share_percent']:.2f}%")
        lines.append('  output  C x H x W          cos mean  cos p1   cos min  rel L2')
        for out in res['outputs']:
            dims = 'x'.join(str(s) for s in out['shape'])
            lines.append(f"  {out['index']:<6d}  {dims:<17s}  {out['cos_mean']:.4f}    {out['cos_p01']:.4f}   "
                         f"{out['cos_min']:.4f}  {out['rel_l2']:.4f}")
        lines.append('')
    return '\n'.join(lines)


def main(argv=None):
    """Entry point; returns the list of per-pair results."""
    args = parse_args(argv)
    from mmvit_ext.utils.launch import user_errors
    with user_errors(args.debug):
        from mmvit_ext.analysis.inputs import parse_shape
        check_args(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
        shape = parse_shape(args.shape)
        results = []
        for plain, hourglass in zip(args.configs[::2], args.configs[1::2]):
            results.append(
                report_pair(
                    plain,
                    hourglass,
                    shape,
                    part=args.part,
                    repeat=args.repeat,
                    warmup=args.warmup,
                    images=args.images,
                    checkpoint=args.checkpoint,
                    cfg_options=args.cfg_options,
                    hourglass_options=args.hourglass_options,
                    seed=args.seed,
                    log=log))
        print(format_report(results))
        if args.json:
            os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
            with open(args.json, 'w') as f:
                json.dump(results, f, indent=2)
                f.write('\n')
            print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
