"""The backend-neutral core: what every Keras backend shares, written once in `keras.ops` and NumPy.

- `config`: one frozen `MacoConfig` (validated once; presets are instances), schedules, `Ramp`.
- `draws`: one counter-based generator in int32 `keras.ops`: the same draws on every backend.
- `render`: a phase (and a fixed magnitude) to a picture.
- `tone`: per-channel pixel statistics (`pixel_statistics`) as the sigmoid's offset and scale (NumPy, SciPy).
- `crops`: the step's random crops and noise, and their bilinear cut as two small matmuls.
- `nadam`: the optimizer's update as a pure function (JAX's loop carries its state).
- `objectives`: objectives on tapped layer outputs, composed with `+` and `*`, scored in units' own values.
- `outcome`: what a run returns (`Visualization`) and how it fails (`NonFiniteError`).

Nothing here imports TensorFlow, Xplique, a backend module, run folders or the command
line (`tests/test_layering.py`); each backend (`maco_keras.backends`) compiles these
pieces its own way.
"""
