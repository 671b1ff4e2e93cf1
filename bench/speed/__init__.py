"""Speed and the regression gate: evaluator speed, trainer throughput, GPU speed, the gate, the asv suite.

Entry points: ``evaluator.run`` (``lrbench speed``), ``trainer.measure`` (``lrbench train-speed``),
``python -m bench.speed.gpu`` (a GPU machine) and ``python -m bench.speed.regression`` (the CI gate, a fresh
process on purpose). ``asv_benchmarks/`` is the asv suite (``asv.conf.json``), which loads the gate's code.
"""
