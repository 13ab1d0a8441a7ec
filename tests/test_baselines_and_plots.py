"""The paper's baselines (`fourier`, `pixel` and their parameterizations) and `plots`."""

import keras
import matplotlib
import numpy as np
import pytest

from maco_keras import baselines, plots
from maco_keras.parameterization import FourierImage, PixelImage

matplotlib.use("Agg")


@pytest.mark.parametrize("layer_class, kwargs", [(FourierImage, {"decay_power": 1.0, "std": 0.02}),
                                                 (PixelImage, {"std": 0.02})])
def test_baseline_parameterizations_render_reset_and_round_trip(layer_class, kwargs):
    images = layer_class(2, (24, 20), values_range=(-1, 1), seed=0, **kwargs)
    rendered = images().numpy()
    assert rendered.shape == (2, 24, 20, 3) and rendered.min() >= -1 and rendered.max() <= 1
    # Per-image min-max stretch, as Xplique's `optimize`: each image spans the range.
    np.testing.assert_allclose(rendered.reshape(2, -1).min(1), -1, atol=1e-3)
    np.testing.assert_allclose(rendered.reshape(2, -1).max(1), 1, atol=1e-3)
    images.reset(5)
    first = images().numpy()
    images.reset(5)
    np.testing.assert_array_equal(images().numpy(), first)
    images.reset(6)
    assert not np.array_equal(images().numpy(), first)
    copy = layer_class.from_config(images.get_config())
    copy.set_weights(images.get_weights())
    np.testing.assert_allclose(copy().numpy(), images().numpy(), rtol=1e-6)
    assert keras.saving.get_registered_object(f"maco_keras>{layer_class.__name__}") is layer_class


@pytest.mark.parametrize("method", [baselines.fourier, baselines.pixel])
def test_baselines_raise_their_objective_and_are_deterministic(method, tiny_model):
    kwargs = dict(units=[2, 5], steps=30, image_size=40, crops=4, seed=1, verbose=False,
                  return_visualization=True)
    first = method(tiny_model, **kwargs)
    again = method(tiny_model, **kwargs)
    assert first.images.shape == (2, 40, 40, 3) and first.transparency.shape == (2, 40, 40, 3)
    np.testing.assert_array_equal(first.images, again.images)
    assert np.all(first.scores[-5:].mean(0) > first.scores[:5].mean(0))


def test_baselines_reject_unknown_transforms(tiny_model):
    with pytest.raises(ValueError, match="transforms"):
        baselines.fourier(tiny_model, units=[1], transforms="random", verbose=False)


def test_plot_visualizations_size_and_transparency_as_alpha():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    transparency = np.zeros((3, 16, 16, 3), np.float32)
    transparency[:, :8] = 1.0  # the model looked at the top half only
    figure = plots.plot_visualizations(images, transparency, names=["a", "b", "c"], cols=2, img_size=2.0)
    assert tuple(figure.get_size_inches()) == (4.0, 4.0)  # 2 columns x 2 rows of 2 inches
    axes = [axis for axis in figure.axes if axis.images]
    assert len(axes) == 3 and [axis.get_title() for axis in axes] == ["a", "b", "c"]
    drawn = axes[0].images[-1].get_array()
    assert drawn.shape[-1] == 4  # RGBA: the transparency is the alpha channel
    alpha = np.asarray(drawn[..., 3], np.float32)
    assert alpha[:8].min() > alpha[8:].max()
    matplotlib.pyplot.close(figure)
    alpha = plots.transparency_alpha(transparency)
    assert alpha.shape == (3, 16, 16, 1) and alpha[:, :8].min() == 1.0 and alpha[:, 8:].max() == 0.0


def test_the_transparency_plot_without_xplique_draws_what_xplique_draws():
    """JAX and PyTorch draw a picture with its transparency without Xplique (which imports TensorFlow): the same
    RGBA array as Xplique's `plot_maco`."""
    from xplique.plots import plot_maco

    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
    transparency = rng.gamma(1.0, 1.0, (16, 16, 3)).astype(np.float32)
    drawn = []
    for draw in (plot_maco, plots.plot_with_transparency):
        figure = matplotlib.pyplot.figure()
        draw(image, transparency, percentile_alpha=70)
        drawn.append(np.asarray(figure.axes[0].images[-1].get_array()))
        matplotlib.pyplot.close(figure)
    assert drawn[0].shape == (16, 16, 4)
    np.testing.assert_allclose(drawn[1], drawn[0], atol=1e-6)
