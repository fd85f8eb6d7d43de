"""Downstream fidelity: what a segmenter does with a synthetic image, and weight-free tissue consistency.

- :mod:`.lesionwise`: BraTS 2023 lesion-wise and legacy Dice / HD95 on WT, TC, ET.
- :mod:`.conventions`: per-label scores as BraSyn 2025's tutorial and SynthRAD2025 compute them.
- :mod:`.surface`: the surface distances behind every HD95 (area-weighted surfels, boundary voxels).
- :mod:`.segmenters`: segmenters as plugins (``cmsbench.segmenters``), the built-in ``command`` segmenter.
- :mod:`.tissue`: HU-band tissue classes of real and synthetic CT (Dice per class, bone MAE).
- :mod:`.metrics`: the registered downstream metrics (``seg_*`` in regions wt/tc/et; tissue consistency).
- :mod:`.scoring`: a segmenter bound to a run (training on the train split, the cache of real-image
  segmentations), used by ``cmsbench run/score --downstream``.
- :mod:`.mode_scores`: the segmentation halves of the modes ``brasyn2023``, ``brasyn2025``, ``synthrad2025_seg``.
"""
