"""relaxomap.train.experiment — the ablation experiment (``relaxomap experiment ablation``).

Its configuration (variants, scenarios, sizes), the runner that synthesises, trains and evaluates, the
statistics (paired tests, targets) and the results page.
"""
