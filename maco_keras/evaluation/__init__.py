"""Evaluation: how good the pictures are, and showing them.

- `metrics`: the paper's plausibility (and Deep-KNN), FID and KID, transferability, and
  the faithfulness check (`path_similarity`).
- `plots`: pictures and their transparency in a Matplotlib grid.

It comes after the run folders (`plots` reuses their PNG helpers); nothing before it
imports it (`tests/test_layering.py`).
"""
