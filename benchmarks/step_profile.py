"""Where one optimization step's time goes, at the paper's settings.

Times each part of a MACO step on its own, as the loop runs it (compiled with
`tf.function`, already traced; medians of `--repeats` timings of `--iterations` calls):
- model: the model's forward + backward (gradient w.r.t. its input) on the step's K * N
  crops: the floor that the rest is overhead on;
- image: `MacoImage` forward (irfft2d, standardize, recorrelate, sigmoid) + backward;
- noise: the image-sized U(-a, a) noise (and the Gaussian term, 0 by default), each
  image's drawn from its unit's own seed;
- boxes + crops: drawing each image's boxes from its seed and cutting K * N crops,
  forward only;
- crop gradient: the deterministic gradient of the crops w.r.t. the images, with
  `native`'s compiled kernel where it is built (the header says); the last column times
  the fallback the loop uses without it (TF's kernel one crop per image at a time);
- optimizer: one NAdam update of the phase;
- schedules: what the fast preset (maco's defaults) adds: the coarse-to-fine mask on the
  phase gradient and setting the step's learning rate;
- whole step: the loop itself (`maco` with a reused loop, over `--steps` steps, with the
  schedules of `--preset`: fast, the default, or paper), divided by the steps.
"whole step / model" is the step's cost over the floor; "parts / model" is the sum of the
parts over it, which leaves out what only the whole step has (transparency, scores, loop)
and counts what the parts pay alone (one call each).

Run:  python benchmarks/step_profile.py [--sizes 1 4] [--crops 32] [--image-size 512] [--preset fast|paper]
"""

import argparse
import os
import statistics
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import maco_keras  # noqa: E402
from common import floor_steps, markdown_table, shared_dir  # noqa: E402
from maco_keras import augmentation, native, optimization, parameterization, seeding  # noqa: E402
from maco_keras.core import draws  # noqa: E402
from maco_keras import steps as steps_lib  # noqa: E402

UNITS = [1, 21, 31, 95, 207, 309, 417, 980]  # spread-out ImageNet classes (no tuning involved)


def median_ms(function, iterations, repeats):
    function()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            function()
        times.append((time.perf_counter() - start) / iterations)
    return 1000 * statistics.median(times)


def parts(model, num_images, crops, image_size, iterations, repeats):
    """{part: ms} for one step's parts, each compiled and timed alone."""
    input_size = model.input_shape[1:3]
    images_layer = parameterization.MacoImage(num_images, image_size, values_range=(-1.0, 1.0), seed=0)
    settings = augmentation.Augmentation(crop_scale_of="area")
    seeds = seeding.unit_draws(3, 4, seeding.unit_keys([f"Neuron#predictions_{unit}" for unit in range(num_images)]))
    seed = seeds[0]
    images = tf.identity(images_layer())
    boxes = augmentation.sample_boxes(seed, crops * num_images, tf.constant(0.25), settings)
    crop_gradient = tf.random.uniform((crops * num_images, *input_size, 3))
    image_gradient = tf.random.uniform(images.shape)
    optimizer = keras.optimizers.Nadam(1.0)
    optimizer.build(images_layer.trainable_variables)

    @tf.function
    def image_part():
        with tf.GradientTape() as tape:
            rendered = images_layer()
        return tape.gradient(rendered, images_layer.trainable_variables, output_gradients=image_gradient)

    @tf.function
    def noise_part():
        noise_keys = tf.stack([seeding.stream_keys(seeds, draws.NOISE),
                               seeding.stream_keys(seeds, draws.GAUSSIAN_NOISE)], axis=1)
        return augmentation.add_noise(noise_keys, images, tf.constant(0.1), tf.constant(0.0))

    @tf.function
    def crops_part():
        _, drawn_boxes, _ = augmentation.draw(seeds, images, crops, settings, tf.constant(0.25), tf.constant(0.0),
                                              tf.constant(0.0))
        return augmentation.crop_and_resize_crop_major(images, drawn_boxes, crops, input_size)

    def gradient_of_crops():
        with tf.GradientTape() as tape:
            tape.watch(images)
            cut = augmentation.crop_and_resize_crop_major(images, boxes, crops, input_size)
        return tape.gradient(cut, images, output_gradients=crop_gradient)

    crop_gradient_part = tf.function(gradient_of_crops)
    # The same gradient as the loop computes it where `native`'s kernel is not built: the
    # choice is made while tracing, so it is traced here with the kernel switched off.
    fallback_crop_gradient_part = tf.function(gradient_of_crops)
    with mock.patch.dict(os.environ, {"MACO_KERAS_NATIVE": "0"}):
        fallback_crop_gradient_part.get_concrete_function()

    gradients = [tf.random.uniform(v.shape) for v in images_layer.trainable_variables]

    @tf.function
    def optimizer_part():
        optimizer.apply_gradients(zip(gradients, images_layer.trainable_variables))

    radii = [tf.constant(radius, tf.float32) for radius in optimization.frequency_radii(images_layer)]
    learning_rate, cutoff = tf.constant(0.5), tf.constant(0.5)

    @tf.function
    def schedules_part():
        # What the fast preset adds to a step, as the loop does it: the coarse-to-fine mask
        # on the phase gradient and this step's learning rate.
        optimizer.learning_rate = learning_rate
        return steps_lib.coarse_to_fine_gradients(gradients, radii, cutoff)

    named = [("model (floor)", floor_steps(model, crops * num_images, 1)), ("image fwd+bwd", image_part), ("noise", noise_part),
             ("boxes + crops", crops_part), ("crop gradient", crop_gradient_part), ("optimizer", optimizer_part),
             ("schedules", schedules_part)]
    measured = {name: median_ms(function, iterations, repeats) for name, function in named}
    # Not a part of the step (the loop runs one or the other): shown for comparison.
    fallback = median_ms(fallback_crop_gradient_part, iterations, repeats)
    return measured, fallback


def whole_step(model, num_images, crops, image_size, steps, repeats, preset):
    settings = dict(units=UNITS[:num_images], steps=steps, crops=crops, image_size=image_size, verbose=False,
                    **maco_keras.presets.schedules(preset))
    maco_keras.maco(model, seed=0, **settings)  # traces the loop
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        maco_keras.maco(model, seed=repeat + 1, **settings)
        times.append((time.perf_counter() - start) / steps)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--model", default="mobilenet_v2_1.0_224.keras")
    parser.add_argument("--preset", choices=("fast", "paper"), default="fast",
                        help="the schedules of the whole step: maco's defaults (fast) or the paper's")
    args = parser.parse_args()
    for name in ("sizes", "crops", "image_size", "iterations", "repeats", "steps"):
        values = getattr(args, name) if name == "sizes" else [getattr(args, name)]
        if min(values) < 1:
            parser.error(f"expected positive --{name.replace('_', '-')}, received: {getattr(args, name)}")

    model = keras.models.load_model(shared_dir() / "models" / args.model)
    print(f"model {args.model}, crops {args.crops}, image {args.image_size}px, preset {args.preset}, "
          f"TF {tf.__version__}, "
          f"CPU threads {os.cpu_count()}, crop-gradient kernel {'built' if native.library() else 'not built'}",
          flush=True)
    rows = []
    for size in args.sizes:
        measured, fallback = parts(model, size, args.crops, args.image_size, args.iterations, args.repeats)
        measured["whole step"] = whole_step(model, size, args.crops, args.image_size, args.steps, args.repeats,
                                             args.preset)
        floor = measured["model (floor)"]
        parts_sum = sum(value for name, value in measured.items() if name != "whole step")
        rows.append([size] + [f"{value:.1f}" for value in measured.values()]
                    + [f"{parts_sum / floor:.3f}", f"{measured['whole step'] / floor:.3f}", f"{fallback:.1f}"])
        print(f"N={size}: " + ", ".join(f"{name} {value:.1f} ms" for name, value in measured.items()), flush=True)
    print(f"\nms per step (medians of {args.repeats} x {args.iterations} calls; whole step over {args.steps} steps):\n")
    print(markdown_table(["N"] + list(measured) + ["parts / model", "whole step / model",
                                                   "crop gradient without the kernel"], rows))


if __name__ == "__main__":
    main()
