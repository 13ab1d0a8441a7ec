"""Run folders: a long visualization written unit by unit, then browsed.

- `storage`: local paths or `gs://`/`s3://` URLs (`tf.io.gfile`), written then renamed.
- `results`: a run folder (manifest, one `.npz`/`.png` per unit, shards, resume, verify).
- `examples`: the natural images of a folder that most activate each unit.
- `atlas`: a run folder as a browsable static site.
- `cli`: `maco-keras` (`python -m maco_keras`): `visualize`, `atlas`, `verify`, `layers` from the shell.

Run folders know no command line or atlas (`tests/test_layering.py`); the core and the
backends know no run folder.
"""
