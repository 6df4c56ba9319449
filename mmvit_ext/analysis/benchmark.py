"""Latency, throughput, peak memory, params and FLOPs of one or more configs, on CPU or CUDA.

What is measured (see also ``docs/tools/benchmark.md``):

* **Latency** of one batch of ``batch_size`` dummy images of ``H×W``:

  - ``mode='infer'``: ``model.eval()`` under ``torch.no_grad()``; the network forward only: for whole models
    ``model(inputs, data_samples, mode='tensor')`` (backbone + neck + heads, no post-processing), or
    ``mode='predict'`` with ``forward='predict'`` (adds the task's post-processing, e.g. NMS or resizing
    logits); for ``part='backbone'`` the backbone forward. Data preprocessing (normalisation, padding) is done
    once beforehand and is not timed.
  - ``mode='train'``: ``model.train()``; forward (``mode='tensor'``, so no loss computation or target
    assignment) plus ``backward()`` of a surrogate loss, the sum of the means of all outputs. No optimizer step;
    the ``zero_grad(set_to_none=True)`` before each run is not timed.
  - ``compile=True``: the timed callable is ``torch.compile``'d; the first warm-up round compiles it, so at least
    one warm-up round is required.

  :func:`time_interleaved` is the one timing loop of the analysis tools (``tools/analysis_tools/benchmark.py`` and
  ``expedite_report.py``). With several cases the timed runs are interleaved in one process (round ``r`` runs A,
  B, C, ... once each, and so on ``repeat`` times), so a slow phase of a shared machine hits all cases alike;
  ratios against the first config are reported. Each run's wall-clock time and process CPU time are recorded,
  with the device synchronised before and after the run (only on CUDA). NOTE: ``torch.utils.benchmark.Timer``
  does not fit this loop: its ``timeit(n)`` runs at least two untimed executions before every measurement and
  ``blocked_autorange`` times one statement in blocks, so neither can time one run per case per round.
* **Throughput**: ``batch_size / median latency`` images/s.
* **Peak memory**, measured for each config in a fresh child process (``multiprocessing`` spawn) that builds the
  model and runs one warm-up plus ``memory_iters`` runs of the same work: on CUDA
  ``torch.cuda.max_memory_allocated()`` (weights + activations + workspace); on CPU the growth of the peak
  resident set size (``VmHWM`` in ``/proc/self/status``, reset through ``/proc/self/clear_refs`` after the
  imports) over the resident size before the model was built. With ``compile=True`` it includes what compiling
  takes.
* **Params** and **FLOPs**: :func:`mmvit_ext.analysis.flops.count_flops` on one image (MACs per image, the
  papers' "FLOPs"), with the uncompiled model in eval mode.
"""
import gc
import json
import multiprocessing as mp
import os
import os.path as osp
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from mmvit_ext.utils.launch import UserError, check_compiler, compile_kwargs, resolve_config_path, resolve_device
from .flops import MACS_UNIT, count_flops
from .inputs import build_model_from_cfg, load_analysis_config, parse_shape, prepare_model_and_inputs

__all__ = [
    'BenchmarkSpec', 'JSON_KEYS', 'TimedCase', 'Timings', 'describe_timed_work', 'build_benchmark', 'time_interleaved',
    'measure_peak_memory', 'run_benchmark', 'format_results', 'write_json', 'read_proc_status_kb'
]

#: Keys every JSON record has (more may follow).
JSON_KEYS = ('config', 'params', 'flops', 'latency_ms_median', 'latency_ms_min', 'latency_ms_max', 'images_per_s',
             'peak_mem_mb')


@dataclass
class BenchmarkSpec:
    """Everything needed to rebuild one benchmark case (it is sent to the memory child process).

    Args:
        config (str): Config path, or a host-repository config ``'pkg::dir/file.py'``.
        shape (tuple[int, int]): Input ``H, W``.
        batch_size (int): Images per timed run.
        part (str): ``'model'`` or ``'backbone'``.
        mode (str): ``'infer'`` or ``'train'``.
        forward (str): ``'tensor'`` or ``'predict'`` (``'predict'`` only for whole models in infer mode).
        device (str): ``'auto'``, ``'cpu'`` or ``'cuda[:i]'``.
        threads (int, optional): ``torch.set_num_threads`` value; ``None`` keeps torch's default.
        cfg_options (dict, optional): Config overrides.
        seed (int): Seed of the weights' initialisation and the dummy images.
        compile (bool): ``torch.compile`` the timed callable (compiled by the first run).
    """
    config: str
    shape: Tuple[int, int]
    batch_size: int = 1
    part: str = 'model'
    mode: str = 'infer'
    forward: str = 'tensor'
    device: str = 'auto'
    threads: Optional[int] = None
    cfg_options: Optional[dict] = None
    seed: int = 0
    compile: bool = False

    def validate(self) -> None:
        """Raise :class:`~mmvit_ext.utils.launch.UserError` for inconsistent settings."""
        if self.mode not in ('infer', 'train'):
            raise UserError(f"mode must be 'infer' or 'train', got {self.mode!r}")
        if self.part not in ('model', 'backbone'):
            raise UserError(f"part must be 'model' or 'backbone', got {self.part!r}")
        if self.forward not in ('tensor', 'predict'):
            raise UserError(f"forward must be 'tensor' or 'predict', got {self.forward!r}")
        if self.forward == 'predict' and (self.mode != 'infer' or self.part != 'model'):
            raise UserError("forward='predict' (--forward predict) needs mode='infer' and part='model'")
        if self.batch_size < 1:
            raise UserError(f'batch size must be >= 1, got {self.batch_size}')
        if self.threads is not None and self.threads < 1:
            raise UserError(f'threads must be >= 1, got {self.threads}')


def describe_timed_work(mode: str, part: str, forward: str = 'tensor', compiled: bool = False) -> str:
    """One sentence saying exactly what a timed run contains."""
    what = 'backbone forward' if part == 'backbone' else (
        "model forward in mode='predict' (network + post-processing)"
        if forward == 'predict' else "model forward in mode='tensor' (backbone + neck + heads, no post-processing)")
    if compiled:
        what = f'torch.compile({what}), compiled during the warm-up'
    if mode == 'infer':
        return f'infer: model.eval(), torch.no_grad(), {what}; data preprocessing done once, not timed'
    return (f'train: model.train(), {what} + backward() of a surrogate loss (sum of output means); '
            'no loss heads/target assignment, no optimizer step; zero_grad not timed')


# ---------------------------------------------------------------------------------------------------------------
# The timing loop
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TimedCase:
    """One case of :func:`time_interleaved`.

    Args:
        run (Callable[[int], Any]): The timed work; called with the round index (0-based, warm-up rounds
            included), e.g. to pick that round's input.
        prepare (Callable[[int], Any], optional): Untimed set-up before each run (``zero_grad``, resetting
            counters), with the round index.
        sync (Callable[[], Any], optional): Waits for queued device work; called before the clocks start and
            before they stop (e.g. ``torch.cuda.synchronize``).
    """
    run: Callable[[int], Any]
    prepare: Optional[Callable[[int], Any]] = None
    sync: Optional[Callable[[], Any]] = None


@dataclass
class Timings:
    """Seconds of the timed rounds of one case, in round order: wall-clock (``time.perf_counter``) and CPU time
    of the whole process, all threads (``time.process_time``; it hardly depends on other processes' load)."""
    wall: List[float] = field(default_factory=list)
    cpu: List[float] = field(default_factory=list)


def time_interleaved(cases: Sequence[TimedCase],
                     repeat: int,
                     warmup: int,
                     *,
                     after_round: Optional[Callable[[int, List[Timings]], Any]] = None) -> List[Timings]:
    """The timing loop: ``warmup`` untimed rounds, then ``repeat`` timed rounds; every round runs A, B, C, ...
    once each, in that order.

    Args:
        cases (Sequence[TimedCase]): The cases.
        repeat (int): Timed rounds.
        warmup (int): Untimed rounds before them (compilation, lazy initialisation, caches).
        after_round (Callable, optional): Called after each timed round with the round index and the timings so
            far (e.g. to read per-round counters or compare the outputs of that round).

    Returns:
        list[Timings]: One per case, ``repeat`` values each.

    Raises:
        UserError: If ``repeat < 1`` or ``warmup < 0``.
    """
    if repeat < 1 or warmup < 0:
        raise UserError(f'need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}')
    timings = [Timings() for _ in cases]
    for r in range(warmup + repeat):
        for case, acc in zip(cases, timings):
            if case.prepare is not None:
                case.prepare(r)
            if case.sync is not None:
                case.sync()
            wall, cpu = time.perf_counter(), time.process_time()
            case.run(r)
            if case.sync is not None:
                case.sync()
            wall_end, cpu_end = time.perf_counter(), time.process_time()
            if r >= warmup:
                acc.wall.append(wall_end - wall)
                acc.cpu.append(cpu_end - cpu)
        if r >= warmup and after_round is not None:
            after_round(r, timings)
    return timings


class _Case:
    """A built model plus the unit of work that is timed."""

    def __init__(self, spec: BenchmarkSpec):
        spec.validate()
        self.spec = spec
        self.device = resolve_device(spec.device)
        torch.manual_seed(spec.seed)
        self.cfg = load_analysis_config(spec.config, spec.cfg_options, self.device)
        self.model = build_model_from_cfg(self.cfg, spec.part)
        self.model_type = type(self.model).__name__
        self.model.train(spec.mode == 'train')
        self.wrapped, self.inputs = prepare_model_and_inputs(
            self.model,
            spec.shape,
            batch_size=spec.batch_size,
            device=self.device,
            scope=self.cfg.get('default_scope'),
            mode=spec.forward,
            seed=spec.seed)
        self.forward = self.wrapped
        if spec.compile:
            self.forward = torch.compile(self.wrapped, **compile_kwargs(inference=spec.mode == 'infer'))

    def sync(self) -> None:
        """Wait for queued CUDA work (no-op on CPU)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def prepare(self, round_index: int = 0) -> None:
        """Untimed set-up before a run."""
        if self.spec.mode == 'train':
            self.wrapped.zero_grad(set_to_none=True)

    def run(self, round_index: int = 0) -> None:
        """One timed unit: see :func:`describe_timed_work`."""
        if self.spec.mode == 'infer':
            with torch.no_grad():
                self.forward(self.inputs)
            return
        outs = self.forward(self.inputs)
        losses = [o.float().mean() for o in outs if o.is_floating_point() and o.requires_grad]
        if not losses:
            raise RuntimeError(f'{self.spec.config}: no output requires grad; cannot time a backward pass')
        torch.stack(losses).sum().backward()

    def timed_case(self) -> TimedCase:
        """This case for :func:`time_interleaved`."""
        return TimedCase(run=self.run, prepare=self.prepare, sync=self.sync)

    def flops(self):
        """:class:`~mmvit_ext.analysis.flops.FlopsResult` for one image, counted in eval mode (not compiled)."""
        was_training = self.model.training
        self.model.eval()
        try:
            wrapped, inputs = prepare_model_and_inputs(
                self.model, self.spec.shape, batch_size=1, device=self.device, scope=self.cfg.get('default_scope'))
            return count_flops(wrapped, inputs)
        finally:
            self.model.train(was_training)


def build_benchmark(spec: BenchmarkSpec) -> _Case:
    """Build the model and inputs of ``spec``; the result has ``timed_case()``, ``flops()``, ``inputs``."""
    return _Case(spec)


# ---------------------------------------------------------------------------------------------------------------
# Peak memory in a child process
# ---------------------------------------------------------------------------------------------------------------
def read_proc_status_kb(key: str, pid: Union[int, str] = 'self') -> Optional[int]:
    """A ``kB`` value of ``/proc/<pid>/status`` (e.g. ``'VmHWM'``, ``'VmRSS'``), or ``None`` if unavailable."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _memory_worker(spec: BenchmarkSpec, iters: int, conn) -> None:
    """Child-process body of :func:`measure_peak_memory`; sends ``('ok', dict)`` or ``('error', text)``."""
    try:
        if spec.threads:
            torch.set_num_threads(spec.threads)
        device = resolve_device(spec.device)
        load_analysis_config(spec.config, spec.cfg_options, device)  # imports (custom_imports) before the baseline
        if device.type == 'cuda':
            torch.cuda.init()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            base_rss = read_proc_status_kb('VmRSS')
            if base_rss is None:
                raise RuntimeError('/proc/self/status is not readable; CPU peak memory needs Linux')
            if not _reset_peak_rss():
                base_rss = max(base_rss, read_proc_status_kb('VmHWM') or 0)
        case = _Case(spec)
        time_interleaved([case.timed_case()], repeat=max(iters, 1), warmup=1)
        if device.type == 'cuda':
            peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            kind = 'cuda max_memory_allocated'
        else:
            peak_mb = (read_proc_status_kb('VmHWM') - base_rss) / 1024
            kind = 'cpu peak RSS growth (VmHWM)'
        if spec.compile:
            kind += ', including torch.compile'
        conn.send(('ok', dict(peak_mem_mb=max(peak_mb, 0.0), peak_mem_kind=kind)))
    except BaseException:  # noqa: B902  (report anything to the parent)
        conn.send(('error', traceback.format_exc()))
    finally:
        conn.close()


def measure_peak_memory(spec: BenchmarkSpec, iters: int = 2, timeout: float = 900) -> Dict[str, Any]:
    """Peak memory of building ``spec``'s model and running its timed work, in a fresh spawned process.

    Args:
        spec (BenchmarkSpec): The case.
        iters (int): Runs after one warm-up run.
        timeout (float): Seconds to wait for the child.

    Returns:
        dict: ``peak_mem_mb`` (float) and ``peak_mem_kind`` (str).

    Raises:
        RuntimeError: If the child fails (its traceback is included) or times out.
    """
    ctx = mp.get_context('spawn')
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_worker, args=(spec, iters, send), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise RuntimeError(f'memory measurement of {spec.config} timed out after {timeout:.0f} s')
        status, payload = recv.recv()
    except EOFError:
        proc.join(5)
        raise RuntimeError(f'memory child process of {spec.config} died (exit code {proc.exitcode})')
    finally:
        recv.close()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    if status != 'ok':
        raise RuntimeError(f'memory measurement of {spec.config} failed in the child process:\n{payload}')
    return payload


# ---------------------------------------------------------------------------------------------------------------
# Driver and output
# ---------------------------------------------------------------------------------------------------------------
def run_benchmark(configs: Sequence[str],
                  shape: Union[int, Sequence[int]],
                  *,
                  batch_size: int = 1,
                  part: str = 'model',
                  mode: str = 'infer',
                  forward: str = 'tensor',
                  repeat: int = 20,
                  warmup: int = 5,
                  threads: Optional[int] = None,
                  device: str = 'auto',
                  cfg_options: Optional[dict] = None,
                  flops: bool = True,
                  memory: bool = True,
                  memory_iters: int = 2,
                  compile: bool = False,
                  log: Optional[Callable[[str], None]] = print) -> List[Dict[str, Any]]:
    """Benchmark every config (see the module docstring for what is measured).

    Args:
        configs (Sequence[str]): Config paths or host-repository configs (``'mmdet::pvt/...py'``); the first one
            is the reference of the ratios.
        shape (int | Sequence[int]): Input ``H, W``.
        batch_size (int): Images per timed run.
        part (str): ``'model'`` or ``'backbone'``.
        mode (str): ``'infer'`` or ``'train'``.
        forward (str): ``'tensor'`` or ``'predict'``.
        repeat (int): Timed runs per config.
        warmup (int): Untimed runs per config first.
        threads (int, optional): ``torch.set_num_threads`` (also in the memory child processes).
        device (str): ``'auto'``, ``'cpu'`` or ``'cuda[:i]'``.
        cfg_options (dict, optional): Overrides applied to every config.
        flops (bool): Count params/FLOPs (one JIT trace per config).
        memory (bool): Measure peak memory (one child process per config).
        memory_iters (int): Runs in the memory child after its warm-up run.
        compile (bool): ``torch.compile`` each timed model; the warm-up (at least one round) compiles it.
        log (Callable, optional): Progress messages (``None`` = silent).

    Returns:
        list[dict]: One record per config with the keys of :data:`JSON_KEYS` and more: ``flops`` is MACs per
        image (``None`` if not counted or the trace failed), ``peak_mem_mb`` is ``None`` if not measured,
        ``compiled`` says whether the timed model was compiled.

    Raises:
        UserError: For settings that do not fit together, a config that is not found, or ``compile=True`` with
            no warm-up round (the compilation would be timed) or without a C++ compiler on CPU.
    """
    log = log or (lambda msg: None)
    if not configs:
        raise UserError('give at least one config')
    if repeat < 1 or warmup < 0:
        raise UserError(f'need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}')
    if compile and warmup < 1:
        raise UserError('--compile needs --warmup >= 1: the first run compiles the model, and it must not be timed')
    for config in configs:
        resolve_config_path(config)  # fail before building anything
    shape = parse_shape(shape)
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if compile:
        check_compiler(dev)
    specs = [
        BenchmarkSpec(
            config=c,
            shape=shape,
            batch_size=batch_size,
            part=part,
            mode=mode,
            forward=forward,
            device=str(dev),
            threads=threads,
            cfg_options=cfg_options,
            compile=compile) for c in configs
    ]
    for spec in specs:
        spec.validate()

    records: List[Dict[str, Any]] = []
    cases: List[_Case] = []
    for spec in specs:
        log(f'building {spec.config} ...')
        case = build_benchmark(spec)
        cases.append(case)
        rec: Dict[str, Any] = dict(config=spec.config, model_type=case.model_type)
        if flops:
            try:
                res = case.flops()
                rec.update(params=res.params, flops=res.macs, flops_uncounted_ops=res.uncounted_unknown)
            except Exception as err:  # a model that cannot be traced still gets timed
                log(f'WARNING: FLOP counting failed for {spec.config}: {type(err).__name__}: {err}')
                rec.update(params=sum(p.numel() for p in case.model.parameters()), flops=None)
        else:
            rec.update(params=sum(p.numel() for p in case.model.parameters()), flops=None)
        records.append(rec)

    log(f'timing: {warmup} warm-up + {repeat} timed runs per config, interleaved over {len(cases)} config(s)' +
        (' (the first warm-up round compiles)' if compile else ''))
    timings = time_interleaved([c.timed_case() for c in cases], repeat=repeat, warmup=warmup)

    for rec, timing in zip(records, timings):
        ms = [1e3 * s for s in timing.wall]
        median = statistics.median(ms)
        rec.update(
            latency_ms_median=median,
            latency_ms_min=min(ms),
            latency_ms_max=max(ms),
            latency_ms_mean=statistics.fmean(ms),
            latency_ms_std=statistics.pstdev(ms),
            images_per_s=batch_size * 1e3 / median if median > 0 else None,
            peak_mem_mb=None,
            peak_mem_kind=None)
    del cases  # free the models before the memory children allocate theirs
    gc.collect()
    if dev.type == 'cuda':
        torch.cuda.empty_cache()
    if memory:
        for rec, spec in zip(records, specs):
            log(f'measuring peak memory of {spec.config} in a child process ...')
            try:
                rec.update(measure_peak_memory(spec, iters=memory_iters))
            except RuntimeError as err:
                log(f'WARNING: {err}')

    ref = records[0]
    for rec, spec in zip(records, specs):
        rec.update(
            flops_unit='MACs per image',
            part=part,
            mode=mode,
            forward=forward,
            compiled=compile,
            timed_work=describe_timed_work(mode, part, forward, compile),
            batch_size=batch_size,
            shape=list(shape),
            device=str(dev),
            device_name=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu',
            threads=torch.get_num_threads(),
            warmup=warmup,
            repeat=repeat,
            torch_version=torch.__version__)
        rec['ratio_vs_first'] = {
            'latency_ms_median': _ratio(rec['latency_ms_median'], ref['latency_ms_median']),
            'images_per_s': _ratio(rec['images_per_s'], ref['images_per_s']),
            'flops': _ratio(rec['flops'], ref['flops']),
            'params': _ratio(rec['params'], ref['params']),
            'peak_mem_mb': _ratio(rec['peak_mem_mb'], ref['peak_mem_mb']),
        }
    return records


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _short_name(config: str, width: int = 70) -> str:
    """The config as given (relative for local files), shortened in the middle to ``width`` characters."""
    name = config if '::' in config else osp.relpath(config)
    if len(name) <= width:
        return name
    head = (width - 3) // 2
    return name[:head] + '...' + name[-(width - 3 - head):]


def _fmt(value: Optional[float], spec: str) -> str:
    return 'n/a' if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = '  '.join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    out = [line, '-' * len(line)]
    for row in rows:
        out.append('  '.join(
            str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))))
    return '\n'.join(out)


def format_results(records: Sequence[Dict[str, Any]]) -> str:
    """Text report: settings, one row per config, and ratios against the first config."""
    if not records:
        return '(no results)'
    r0 = records[0]
    names = [_short_name(r['config']) for r in records]
    head = [
        f"Benchmark  {r0['timed_work']}",
        f"input {r0['batch_size']}x3x{r0['shape'][0]}x{r0['shape'][1]} (batch x C x H x W), device {r0['device']} "
        f"({r0['device_name']}), torch {r0['torch_version']}, {r0['threads']} CPU thread(s), torch.compile "
        f"{'on (compiled in the warm-up)' if r0.get('compiled') else 'off'}",
        f"{r0['warmup']} warm-up + {r0['repeat']} timed runs per config, interleaved (A B A B ...); "
        f'FLOPs = {MACS_UNIT} per image; peak memory: {r0.get("peak_mem_kind") or "not measured"}',
        '',
        '',
    ]
    rows = [[
        str(i), name,
        _fmt(r['params'] / 1e6 if r['params'] is not None else None, '.3f'),
        _fmt(r['flops'] / 1e9 if r['flops'] is not None else None, '.3f'),
        _fmt(r['latency_ms_median'], '.2f'),
        _fmt(r['latency_ms_min'], '.2f'),
        _fmt(r['latency_ms_max'], '.2f'),
        _fmt(r['images_per_s'], '.2f'),
        _fmt(r['peak_mem_mb'], '.1f')
    ] for i, (r, name) in enumerate(zip(records, names))]
    text = '\n'.join(head) + _table(
        ['#', 'config', 'params(M)', 'GMACs/img', 'median ms', 'min ms', 'max ms', 'img/s', 'peak MB'], rows)
    if len(records) > 1:
        ratio_rows = [[
            str(i), name,
            _fmt(r['ratio_vs_first']['params'], '.3f'),
            _fmt(r['ratio_vs_first']['flops'], '.3f'),
            _fmt(r['ratio_vs_first']['latency_ms_median'], '.3f'),
            _fmt(r['ratio_vs_first']['images_per_s'], '.3f'),
            _fmt(r['ratio_vs_first']['peak_mem_mb'], '.3f')
        ] for i, (r, name) in enumerate(zip(records, names))]
        text += '\n\nRatios vs #0 (' + names[0] + '):\n' + _table(
            ['#', 'config', 'params', 'GMACs', 'median latency', 'img/s', 'peak mem'], ratio_rows)
    for r, name in zip(records, names):
        if r.get('flops_uncounted_ops'):
            text += f"\nWARNING: {name}: ops without a FLOP handle: {', '.join(sorted(r['flops_uncounted_ops']))}"
    return text


def write_json(records: Sequence[Dict[str, Any]], path: str) -> None:
    """Write the records as a JSON list (keys of :data:`JSON_KEYS` first)."""
    ordered = []
    for rec in records:
        first = {k: rec.get(k) for k in JSON_KEYS}
        first.update({k: v for k, v in rec.items() if k not in first})
        ordered.append(first)
    dirname = osp.dirname(osp.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(ordered, f, indent=2)
        f.write('\n')
