"""Runs maco_keras on the Keras backend in KERAS_BACKEND and writes what it got to an .npz: the tests
of `test_backends.py` start it once per backend (a process has one Keras backend).

Usage: python backend_worker.py TASK OUT.npz [MODEL]
"""

import json
import os
import sys

import numpy as np

TASK, OUT = sys.argv[1], sys.argv[2]
MODEL = sys.argv[3] if len(sys.argv) > 3 else None


def tiny_model():
    """A small functional model whose weights come from NumPy: the same on every backend."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="predictions")(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def load():
    import keras

    return tiny_model() if MODEL is None else keras.models.load_model(MODEL)


def visualizer_and_engine(model, config, other):
    """Units 3 and 5 through a `Visualizer` with `config` (scores, pictures, transparency), the pictures with `other`
    (what the settings move: "plain_images"), and on TensorFlow also its engine's, `maco`."""
    import keras

    import maco_keras

    visualization = maco_keras.Visualizer(model, config, verbose=False)(units=[3, 5])
    result = dict(images=visualization.images, scores=visualization.scores, transparency=visualization.transparency,
                  plain_images=maco_keras.Visualizer(model, other, verbose=False)(units=[3, 5]).images)
    if keras.backend.backend() == "tensorflow":
        engine = maco_keras.maco(model, units=[3, 5], config=config, verbose=False, return_visualization=True)
        result.update(engine_images=engine.images, engine_scores=engine.scores,
                      engine_transparency=engine.transparency)
    return result


def main():
    import keras

    import maco_keras
    from maco_keras import objectives
    from maco_keras.core import draws

    result = {}
    if TASK == "draws":
        from maco_keras.core import crops, render

        config = maco_keras.MacoConfig(image_size=64, crops=8, seed=3)
        for step in (-1, 0, 5):
            h = draws.stream_key(3, 1234567, step, draws.NOISE)
            result[f"bits_{step}"] = keras.ops.convert_to_numpy(draws.bits(h, (1000,)))
            result[f"normal_{step}"] = keras.ops.convert_to_numpy(draws.normal(h, (1000,)))
            result[f"boxes_{step}"] = keras.ops.convert_to_numpy(crops.boxes(3, 1234567, step, 8, 0.3, config))
            result[f"two_boxes_{step}"] = keras.ops.convert_to_numpy(crops.boxes(3, 1234567, step, 2, 0.3, config))
            result[f"noise_{step}"] = keras.ops.convert_to_numpy(crops.noise(3, 1234567, step, (64, 64, 3), 0.2))
        phase = keras.ops.convert_to_numpy(render.initial_phase(draws.uniform(draws.stream_key(3, 7, -1, 1), (3, 64, 33))))
        result["phase"] = phase
    elif TASK == "run":
        # One unit for 3 steps, with each step's inputs, scores and pictures.
        from maco_keras.core.plan import Plan

        model = load()
        size = model.input_shape[1]
        config = maco_keras.MacoConfig(steps=3, image_size=size + size // 2, crops=4, seed=0)
        viz = maco_keras.Visualizer(model, config, verbose=False)
        visualization = viz(units=[309 if MODEL else 3])
        compiled = viz.objective(units=[309 if MODEL else 3])
        plan = Plan(config, compiled, viz.input_shape)
        key = int(draws.unit_keys(compiled.names)[0])
        schedules = config.schedules()
        phase = plan.initial_phase(0, key)
        magnitude = viz.magnitudes(1)[0]
        image = plan.picture(phase, magnitude)
        result["phase0"] = keras.ops.convert_to_numpy(phase)
        result["image0"] = keras.ops.convert_to_numpy(image)
        for step in range(3):
            result[f"crops_{step}"] = keras.ops.convert_to_numpy(plan.crops(
                image, 0, key, step, float(schedules["crop_scale"][step]), float(schedules["noise"][step])))
        result.update(images=visualization.images, scores=visualization.scores,
                      transparency=visualization.transparency)
        if keras.backend.backend() == "tensorflow":
            # TensorFlow's engine (`maco`: MacoImage, TF's CropAndResize and its kernel): the same draws.
            import tensorflow as tf

            from maco_keras import augmentation, parameterization, seeding

            images = parameterization.MacoImage(1, config.image_size, magnitude=magnitude, values_range=config.values_range,
                                                contrast=config.contrast)
            images.reset(0, np.array([key], np.int32))
            result["engine_phase0"] = images.phase.numpy()[0]
            result["engine_image0"] = images().numpy()[0]
            settings = augmentation.Augmentation(crop_scale_std=config.crop_scale_std, crop_scale_of=config.crop_scale_of)
            for step in range(3):
                result[f"engine_crops_{step}"] = augmentation.augment(
                    seeding.unit_draws(0, step, [key]), images(), config.crops, viz.input_shape[:2], settings,
                    tf.constant(schedules["crop_scale"][step]), tf.constant(schedules["noise"][step]), 0.0).numpy()
            engine = maco_keras.maco(model, units=[309 if MODEL else 3], config=config, verbose=False,
                                     return_visualization=True)
            result.update(engine_images=engine.images, engine_scores=engine.scores,
                          engine_transparency=engine.transparency)
    elif TASK == "same_bits":
        model = load()
        size = model.input_shape[1]
        settings = dict(steps=3, image_size=size + size // 4, crops=4, seed=0, verbose=False)
        unit = 309 if MODEL else 3
        first, _ = maco_keras.maco(model, units=[1, unit], **settings)
        second, _ = maco_keras.maco(model, units=[1, unit], **settings)
        alone, _ = maco_keras.maco(model, units=[unit], **settings)
        result.update(first=first, second=second, alone=alone)
        viz = maco_keras.Visualizer(model, maco_keras.MacoConfig(**{k: v for k, v in settings.items() if k != "verbose"}),
                                    verbose=False)
        viz(units=[1, 2])
        viz(units=[5, 7])
        result["traces"] = np.array([runner.trace_count for runner in viz._runners.values()])
    elif TASK == "objectives":
        # A nested model's inner channel, a composition, an inversion-like direction at a layer.
        model = load()
        outer = keras.Sequential([keras.Input(model.input_shape[1:]), model], name="outer")
        settings = dict(steps=2, image_size=model.input_shape[1] + 8, crops=2, seed=0, verbose=False)
        nested, _ = maco_keras.maco(objectives.channel(outer, f"{model.name}/conv2", [0, 3]), **settings)
        flat, _ = maco_keras.maco(objectives.channel(model, "conv2", [0, 3]), **settings)
        result.update(nested=nested, flat=flat)
        reference = np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
        inversion = maco_keras.maco(objectives.inversion(model, "conv2", reference), return_visualization=True,
                                    **settings)
        result.update(inversion_scores=inversion.scores)
        composed = maco_keras.maco(objectives.channel(model, "conv1", 2) + 0.5 * objectives.logit(model, [1, 2]),
                                   return_visualization=True, **settings)
        result["composed_names"] = np.array(composed.names)
    elif TASK == "distribution":
        # VITAL's feature distribution term composed with logits, through a Visualizer: the same draws everywhere.
        model = load()
        references = np.random.default_rng(2).uniform(-1, 1, (3, 40, 40, 3)).astype(np.float32)  # resized to 32
        objective = objectives.logit(model, [1, 2]) + 0.5 * objectives.feature_distribution(
            model, ["conv1", "conv2"], references)
        config = maco_keras.MacoConfig(steps=3, image_size=40, crops=4, seed=0)
        visualization = maco_keras.Visualizer(model, config, verbose=False)(objective)
        result.update(images=visualization.images, scores=visualization.scores, names=np.array(visualization.names))
    elif TASK == "diversity":
        # Lucid's diversity (each crop's style against the other copies'), two copies of a logit, through a Visualizer:
        # the units are one computation; on TensorFlow also its engine, `maco`.
        from maco_keras import applications

        model = load()
        objective = objectives.logit(model, 3) + applications.diversity(model, "conv1", copies=2, weight=2.0)
        config = maco_keras.MacoConfig(steps=3, image_size=40, crops=4, seed=0)
        viz = maco_keras.Visualizer(model, config, verbose=False)
        visualization = viz(objective)
        plain = viz(objectives.logit(model, 3) + applications.diversity(model, "conv1", copies=2, weight=0.0))
        result.update(images=visualization.images, scores=visualization.scores, names=np.array(visualization.names),
                      plain_images=plain.images)
        if keras.backend.backend() == "tensorflow":
            engine = maco_keras.maco(objective, config=config, verbose=False, return_visualization=True)
            result.update(engine_images=engine.images, engine_scores=engine.scores)
    elif TASK == "applications":
        # Feature inversion on a jittered canvas and feature accentuation of a real-looking image.
        from maco_keras import applications

        model = load()
        rng = np.random.default_rng(3)
        references = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
        inverted = applications.invert(model, "conv2", references, steps=3, crops=2, seed=0, verbose=False,
                                       return_visualization=True)
        smooth = np.cumsum(np.cumsum(rng.normal(0, 0.1, (40, 40, 3)), axis=0), axis=1)
        image = np.tanh(smooth / np.abs(smooth).max() * 2).astype(np.float32)
        accentuated = applications.accentuate(model, 3, image, "conv1", steps=3, crops=2, seed=0, verbose=False,
                                              return_visualization=True)
        # A prior from data: each unit's magnitude from its dataset examples (a folder of images).
        import tempfile

        from PIL import Image

        from maco_keras import examples

        folder = tempfile.mkdtemp()
        for index in range(3):
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(f"{folder}/photo_{index}.png")
        found = examples.dataset_examples(model, "conv2", "channel", folder, (-1.0, 1.0), [0, 1], top=2,
                                          verbose=False)
        magnitudes = examples.example_magnitudes(found, [0, 1], image_size=40)
        prior, _ = maco_keras.maco(objectives.channel(model, "conv2", [0, 1]), magnitude=magnitudes, steps=2,
                                   image_size=40, crops=2, seed=0, verbose=False)
        result.update(magnitudes=magnitudes, prior=prior)
        # Plotted with their transparency (Xplique's convention, without Xplique: it would import TensorFlow).
        import matplotlib

        matplotlib.use("Agg")
        figure = maco_keras.plots.plot_visualizations(inverted.images, inverted.transparency, names=["a", "b"])
        result["plotted"] = np.array(len([axis for axis in figure.axes if axis.images]))
        result.update(inverted_images=inverted.images, inverted_scores=inverted.scores,
                      accentuated=accentuated.images, accentuated_scores=accentuated.scores, image=image,
                      accentuated_names=np.array(accentuated.names))
    elif TASK == "vit":
        import hub_models

        model = hub_models.vit()
        block = objectives.channel(model, hub_models.BLOCKS["ViT"], [0, 1])
        vit = maco_keras.maco(block, steps=3, image_size=40, crops=2, seed=0, verbose=False, return_visualization=True)
        result.update(vit_images=vit.images, vit_scores=vit.scores)
    elif TASK == "devices":
        # One step's scores and phase gradients on every device JAX has (two host devices in the test), and on one.
        import jax

        from maco_keras.core.plan import Plan
        from maco_keras.backends.jax import Runner

        from maco_keras import applications

        model = load()
        config = maco_keras.MacoConfig(steps=1, image_size=48, crops=4, seed=0)
        viz = maco_keras.Visualizer(model, config, verbose=False)
        # Units each their own computation, and two copies coupled by diversity (one computation, its crops shared).
        for case, objective in (("", objectives.logit(model, [1, 3])),
                                ("coupled_", objectives.logit(model, 3) + applications.diversity(model, "conv1", 2))):
            compiled = viz.objective(objective)
            plan = Plan(config, compiled, viz.input_shape)
            keys = draws.unit_keys(compiled.names)
            phases = np.stack([keras.ops.convert_to_numpy(plan.initial_phase(0, int(key))) for key in keys])
            for name, devices in (("one", jax.devices()[:1]), ("all", jax.devices())):
                runner = Runner(plan, compiled, devices)
                scores, _, gradients = runner.step_gradients(phases, 0, 0, keys, viz.magnitudes(2), compiled.masks,
                                                             compiled.scales, 0.5, 0.2)
                result.update({f"{case}scores_{name}": scores, f"{case}gradients_{name}": gradients})
            if not case:
                # crop_chunk=1 per device: chunks of two crops, one on each device.
                runner = Runner(Plan(config, compiled, viz.input_shape, crop_chunk=2), compiled, jax.devices())
                scores, _, gradients = runner.step_gradients(phases, 0, 0, keys, viz.magnitudes(2), compiled.masks,
                                                             compiled.scales, 0.5, 0.2)
                result.update(chunked_scores_all=scores, chunked_gradients_all=gradients)
        chunked = maco_keras.Visualizer(model, config.replace(steps=2), crop_chunk=1, verbose=False)(units=[1, 3])
        whole = maco_keras.Visualizer(model, config.replace(steps=2), devices=jax.devices()[:1],
                                      verbose=False)(units=[1, 3])
        result.update(chunked_images=chunked.images, whole_images=whole.images)
        result["devices"] = np.array(len(jax.devices()))
    elif TASK == "tone":
        # antialias (crops cut at twice the input, then 2x2 means) and pixel_statistics (each channel its own tone):
        # through a Visualizer, and on TensorFlow also its engine, `maco`.
        config = maco_keras.MacoConfig(steps=3, image_size=48, crops=4, seed=0, antialias=True,
                                       pixel_statistics="imagenet")
        result.update(visualizer_and_engine(load(), config, config.replace(antialias=False, pixel_statistics=None)))
    elif TASK == "complex":
        # phase_as="complex": each frequency's phase a (real, imaginary) pair, normalized when rendered, through a
        # Visualizer; on TensorFlow also its engine, `maco` (MacoImage's complex weight and Keras's Nadam).
        model = load()
        config = maco_keras.MacoConfig(steps=3, image_size=48, crops=4, seed=0, phase_as="complex")
        result.update(visualizer_and_engine(model, config, config.replace(phase_as="angle")))
        # A run started from given phases (feature accentuation's), held as complex numbers.
        from maco_keras import applications

        smooth = np.cumsum(np.cumsum(np.random.default_rng(3).normal(0, 0.1, (40, 40, 3)), axis=0), axis=1)
        image = np.tanh(smooth / np.abs(smooth).max() * 2).astype(np.float32)
        from maco_keras.core import render

        _, phase = render.image_spectrum(image[None], (-1.0, 1.0))
        magnitude, _ = render.image_spectrum(image[None], (-1.0, 1.0))
        for form in ("complex", "angle"):
            started = maco_keras.Visualizer(model, config.replace(image_size=40, steps=1, learning_rate=1e-6,
                                                                  phase_as=form),
                                            magnitude=magnitude, verbose=False)(units=[3], start_phases=phase)
            result[f"started_{form}"] = started.images
        result["image"] = image
    elif TASK == "redirect":
        # The ReLU redirect (relu_redirect_steps) on a dead channel: plain ReLU gives it no gradient, the redirect does.
        from maco_keras import models
        from maco_keras.core.plan import Plan

        model = load()
        kernel, bias = model.get_layer("conv2").get_weights()
        bias[3] = -100.0  # channel 3 of conv2 never fires
        model.get_layer("conv2").set_weights([kernel, bias])
        objective = objectives.channel(model, "conv2", [3])
        config = maco_keras.MacoConfig(steps=4, image_size=40, crops=2, seed=0)
        still = maco_keras.Visualizer(model, config, verbose=False)(objective)
        viz = maco_keras.Visualizer(model, config.replace(relu_redirect_steps=2), verbose=False)
        moved = viz(objective)
        compiled = viz.objective(objective)
        plan = Plan(config, compiled, viz.input_shape)
        start = plan.picture(plan.initial_phase(0, int(draws.unit_keys(compiled.names)[0])), viz.magnitudes(1)[0])
        result.update(still=still.images, still_scores=still.scores, moved=moved.images, moved_scores=moved.scores,
                      start=keras.ops.convert_to_numpy(start),
                      traces=np.array([runner.trace_count for runner in viz._runners.values()]))
        # The forward pass is plain ReLU's inside the block; the layers are themselves again after it.
        inputs = np.random.default_rng(4).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
        with models.redirecting_relus(model):
            result["forward_redirected"] = keras.ops.convert_to_numpy(model(inputs))
        result["forward"] = keras.ops.convert_to_numpy(model(inputs))
        result["restored"] = np.array(model.get_layer("conv2").activation is keras.activations.relu)
        # A ReLU6 layer (MobileNet's) with a dead channel before it, in a nested model.
        inner_inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(4, 3, name="conv")(inner_inputs)
        x = keras.layers.ReLU(6.0, name="relu6")(x)
        inner = keras.Model(inner_inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x)),
                            name="inner")
        rng = np.random.default_rng(5)
        inner.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in inner.get_weights()])
        kernel, bias = inner.get_layer("conv").get_weights()
        bias[1] = -100.0
        inner.get_layer("conv").set_weights([kernel, bias])
        outer = keras.Sequential([keras.Input((32, 32, 3)), inner], name="outer")
        relu6 = objectives.channel(outer, "inner/relu6", [1])
        for name, steps in (("relu6_still", 0), ("relu6_moved", 2)):
            result[name] = maco_keras.Visualizer(outer, config.replace(relu_redirect_steps=steps),
                                                 verbose=False)(relu6).images
        if keras.backend.backend() == "tensorflow":
            engine = maco_keras.maco(objective, config=config.replace(relu_redirect_steps=2), verbose=False,
                                     return_visualization=True)
            result.update(engine_images=engine.images, engine_scores=engine.scores)
    elif TASK == "chunks":
        # crop_chunk: a unit's crops through the model two and one at a time, against all four at once.
        model = load()
        config = maco_keras.MacoConfig(steps=3, image_size=48, crops=4, seed=0, antialias=True)
        objective = objectives.channel(model, "conv2", [1, 4]) + 0.5 * objectives.logit(model, 2)
        for name, chunk in (("whole", None), ("two", 2), ("one", 1)):
            visualization = maco_keras.Visualizer(model, config, crop_chunk=chunk, verbose=False)(objective)
            result.update({f"{name}_images": visualization.images, f"{name}_scores": visualization.scores,
                           f"{name}_transparency": visualization.transparency})
        viz = maco_keras.Visualizer(model, config, crop_chunk=2, verbose=False)
        viz(units=[1, 2])
        viz(units=[5, 7])
        result["traces"] = np.array([runner.trace_count for runner in viz._runners.values()])
        result["maco_images"], _ = maco_keras.maco(objective, config=config, crop_chunk=2, verbose=False)
        # A diversity term compares every crop of a step: a chunk of all of them runs, a smaller one is refused.
        from maco_keras import applications

        diverse = objectives.logit(model, 3) + applications.diversity(model, "conv1", copies=2)
        result["diverse_whole"] = maco_keras.Visualizer(model, config.replace(steps=1), crop_chunk=4,
                                                        verbose=False)(diverse).images
        messages = []
        for make in (lambda: maco_keras.Visualizer(model, config, crop_chunk=2, verbose=False)(diverse),
                     lambda: maco_keras.Visualizer(model, config, devices=[], verbose=False)):
            try:
                make()
                messages.append("no error")
            except ValueError as error:
                messages.append(str(error))
        result["messages"] = np.array(messages)
    elif TASK == "errors":
        model = load()
        messages = []
        for settings in (dict(strategy=None), dict(jit_compile=True), dict(steps=0), dict(crop_scale_of="volume")):
            try:
                maco_keras.maco(model, units=[1], verbose=False, **settings)
                messages.append("no error")
            except (TypeError, ValueError) as error:
                messages.append(str(error))
        result["messages"] = np.array(messages)
    result["tensorflow_imported"] = np.array("tensorflow" in sys.modules)
    result["xplique_imported"] = np.array("xplique" in sys.modules)
    result["backend"] = np.array(keras.backend.backend())
    np.savez(OUT, **result)


if __name__ == "__main__":
    main()
