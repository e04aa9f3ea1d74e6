"""The throughput benchmark's parts (``benchmarks/bench_throughput.py`` is the command).

- :mod:`.timing`: timing windows (:class:`~.timing.Stopwatch`), measures, the loader alone;
- :mod:`.plain`: the plain PyTorch loops the framework is compared with;
- :mod:`.timer`: the callback that times the framework's steps (and interleaves the plain ones);
- :mod:`.phases`: the framework built from the CLI, and the train and eval phases;
- :mod:`.report`: the table and the printed report.
"""
