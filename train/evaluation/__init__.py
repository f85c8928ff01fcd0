"""relaxomap.train.evaluation — how good are the maps.

Image-quality metrics of predicted T1 / T2 / PD maps, the side-by-side evaluation of checkpoints and the
voxel-wise least-squares baseline on synth stores, and its written report (tables, JSON, figures).
"""
