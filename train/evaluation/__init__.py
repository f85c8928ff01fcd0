"""relaxomap.train.evaluation — how good are the maps.

The metric definitions (:mod:`.metrics`: regions, fixed parenchyma range, signed bias, CSF anchor of PD), their
accumulation per subject and tissue (:mod:`.accumulate`), the two reference predictors (:mod:`.baselines`: the
NLLS fit and the segmentation-only oracle prior), the side-by-side evaluation of checkpoints on synth stores
(:mod:`.evaluate`), and its written report (:mod:`.tables`, :mod:`.report`, JSON, figures).
"""
