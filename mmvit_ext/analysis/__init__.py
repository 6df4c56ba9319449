"""Analysis code of the tools: FLOP counting, latency / memory benchmarks and their model inputs.

* :mod:`mmvit_ext.analysis.flops`: MMEngine's ``FlopAnalyzer`` plus the operator handles it lacks;
* :mod:`mmvit_ext.analysis.benchmark`: the one timing loop (cases interleaved in one process) and the peak-memory
  child process;
* :mod:`mmvit_ext.analysis.inputs`: configs, models and dummy inputs shared by both.

Nothing here is needed to build or train a model, and neither ``import mmvit_ext`` nor building a model imports
this package (``tests/test_tools/test_analysis_isolation.py``); the analysis tools import the modules they use.
"""
