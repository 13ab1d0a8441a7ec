import numpy as np
import pytest
import tensorflow as tf

from maco_keras import augmentation
from maco_keras import seeding
from maco_keras.core import crops as core_crops
from maco_keras.core import draws


def row(seed, key=0, step=0):
    """One unit's draw row (seed, key, step)."""
    return tf.constant([seed, key, step], tf.int32)


def test_both_crop_and_resize_match_tensorflow():
    images = tf.random.stateless_normal((3, 40, 28, 2), seed=(0, 1))
    boxes = augmentation.sample_boxes(row(4, 2), 9, tf.constant(0.4), augmentation.Augmentation(crop_center=0.3))
    indices = tf.constant([0, 1, 2] * 3)
    reference = tf.image.crop_and_resize(images, boxes, indices, (13, 17)).numpy()
    gathered = augmentation.crop_and_resize_gather(images, boxes, indices, (13, 17))
    crop_major = augmentation.crop_and_resize_crop_major(images, boxes, 3, (13, 17))
    np.testing.assert_allclose(gathered.numpy(), reference, atol=1e-4)
    np.testing.assert_allclose(crop_major.numpy(), reference, atol=1e-6)


@pytest.mark.parametrize("num_images", [1, 3])
def test_crop_and_resize_gradients_are_deterministic_and_agree(num_images):
    images = tf.Variable(tf.random.stateless_normal((num_images, 96, 96, 3), seed=(1, 1)))
    boxes = augmentation.sample_boxes(row(3, 2), 24 * num_images, tf.constant(0.3), augmentation.Augmentation())
    indices = tf.tile(tf.range(num_images), [24])
    weights = tf.random.stateless_normal((24 * num_images, 40, 40, 3), seed=(2, 2))

    @tf.function
    def gradient(gather):
        with tf.GradientTape() as tape:
            if gather:
                crops = augmentation.crop_and_resize_gather(images, boxes, indices, (40, 40))
            else:
                crops = augmentation.crop_and_resize_crop_major(images, boxes, 24, (40, 40))
            loss = tf.reduce_sum(tf.square(crops * weights))
        return tape.gradient(loss, images)

    for gather in (True, False):
        first = gradient(gather).numpy()
        for _ in range(3):
            np.testing.assert_array_equal(gradient(gather).numpy(), first)
    reference = gradient(True).numpy()
    np.testing.assert_allclose(gradient(False).numpy(), reference, rtol=1e-3, atol=1e-4 * np.abs(reference).max())


def test_uniform_boxes_stay_inside_and_follow_the_scale():
    boxes = augmentation.sample_boxes(row(5, 5), 4000, tf.constant(0.25), augmentation.Augmentation()).numpy()
    assert boxes.min() >= 0 and boxes.max() <= 1 + 1e-6
    sides = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(sides, boxes[:, 3] - boxes[:, 1], atol=1e-6)  # square
    assert abs(sides.mean() - 0.25) < 0.01 and abs(sides.std() - 0.1) < 0.01
    assert sides.min() >= 0.05 - 1e-6


def test_augment_is_crop_major_and_seeded():
    # Image i is constant i: crop k*N+i must come from image i.
    images = tf.reshape(tf.range(3, dtype=tf.float32), (3, 1, 1, 1)) * tf.ones((3, 32, 32, 2))
    aug = augmentation.Augmentation()
    seeds = seeding.unit_draws(1, 0, [10, 11, 12])
    crops = augmentation.augment(seeds, images, 4, (8, 8), aug, 0.3, 0.0, 0.0)
    assert crops.shape == (12, 8, 8, 2)
    np.testing.assert_allclose(crops.numpy()[:, 0, 0, 0], [0, 1, 2] * 4, atol=1e-6)
    noisy = augmentation.augment(seeds, images, 4, (8, 8), aug, 0.3, 0.1, 0.0)
    again = augmentation.augment(seeds, images, 4, (8, 8), aug, 0.3, 0.1, 0.0)
    other = augmentation.augment(seeding.unit_draws(2, 0, [10, 11, 12]), images, 4, (8, 8), aug, 0.3,
                                 0.1, 0.0)
    np.testing.assert_array_equal(noisy.numpy(), again.numpy())
    assert not np.array_equal(noisy.numpy(), other.numpy())
    assert 0 < np.abs((noisy - crops).numpy()).max() <= 0.1 + 1e-6


@pytest.mark.parametrize("aug", [augmentation.Augmentation(flip=True),
                                 augmentation.Augmentation(crop_center=0.15, noise_on="crops")])
def test_an_images_draws_do_not_depend_on_its_batch(aug):
    images = tf.random.stateless_uniform((3, 32, 32, 3), (1, 2))
    keys = [10, 11, 12]
    alone = [augmentation.augment(seeding.unit_draws(4, 1, keys[i:i + 1]), images[i:i + 1], 4, (8, 8),
                                  aug, 0.3, 0.1, 0.05) for i in range(3)]
    together = augmentation.augment(seeding.unit_draws(4, 1, keys), images, 4, (8, 8), aug, 0.3, 0.1,
                                    0.05)
    for i in range(3):
        np.testing.assert_array_equal(together.numpy()[i::3], alone[i].numpy())
    # Another unit's key gives other draws.
    moved = augmentation.augment(seeding.unit_draws(4, 1, [13]), images[:1], 4, (8, 8), aug, 0.3, 0.1,
                                 0.05)
    assert not np.array_equal(moved.numpy(), alone[0].numpy())


def test_area_scale_takes_the_square_root():
    aug = augmentation.Augmentation(crop_scale_std=0.0, crop_scale_of="area")
    boxes = augmentation.sample_boxes(row(5, 6), 10, tf.constant(0.25), aug).numpy()
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="crop_scale_of"):
        augmentation.Augmentation(crop_scale_of="volume")


def test_jitter_boxes_follow_xplique_standard_transforms():
    aug = augmentation.Augmentation(crop_center="jitter", flip=True)
    boxes = augmentation.sample_boxes(row(7, 7), 2000, tf.constant(0.5), aug).numpy()
    sides = boxes[:, 2] - boxes[:, 0]
    # 1 + 2 pad - sum(jitters) - sum(post jitters) / scale, scale in [0.92, 0.96]
    assert sides.min() >= 1 + 0.5 - 1.0 - 0.125 / 0.92 - 1e-6 and sides.max() <= 1 + 0.5 - 1.0 - 0.125 / 0.96 + 1e-6
    assert boxes[:, :2].min() >= -0.25 - 1e-6
    flipped = augmentation.flip_boxes(row(1, 1), tf.constant(boxes)).numpy()
    mirrored = flipped[:, 1] > flipped[:, 3]
    assert 0.4 < mirrored.mean() < 0.6


def test_noise_adds_each_term_whose_amplitude_is_not_zero():
    images = tf.random.stateless_uniform((2, 8, 8, 3), (5, 6))
    keys = tf.constant([[1, 2], [3, 4]])  # each image's uniform and Gaussian stream keys
    uniform = tf.stack([(draws.uniform(key, (8, 8, 3)) * 2.0 - 1.0) * 0.1 for key in keys[:, 0]])
    gaussian = tf.stack([0.2 * draws.normal(key, (8, 8, 3)) for key in keys[:, 1]])
    add_noise = tf.function(augmentation.add_noise)  # as in the loop: the amplitudes are tensors
    amplitudes = [(0.1, 0.0), (0.0, 0.2), (0.1, 0.2), (0.0, 0.0)]
    expected = [images + uniform, images + gaussian, images + uniform + gaussian, images]
    for (a, std), want in zip(amplitudes, expected):
        got = add_noise(keys, images, tf.constant(a), tf.constant(std))
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("scale_of", ["side", "area"])
def test_macos_crops_and_noise_are_the_cores_to_the_bit(scale_of):
    """TensorFlow's engine draws MACO's boxes and noise as every backend's core does (`core.crops`)."""
    import maco_keras

    config = maco_keras.MacoConfig(crop_scale_std=0.15, crop_scale_of=scale_of)
    aug = augmentation.Augmentation(crop_scale_std=0.15, crop_scale_of=scale_of)
    images = tf.random.stateless_uniform((2, 24, 24, 3), (5, 6))
    keys = [11, 987654321]
    drawn, boxes, _ = tf.function(augmentation.draw)(seeding.unit_draws(7, 5, keys), images, 3, aug,
                                                      tf.constant(0.4), tf.constant(0.1), tf.constant(0.0))
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(boxes.numpy()[i::2], core_crops.boxes(7, key, 5, 3, 0.4, config).numpy())
        np.testing.assert_array_equal(drawn.numpy()[i], (images[i] + core_crops.noise(7, key, 5, (24, 24, 3), 0.1)).numpy())


def test_antialiased_crops_are_box_filtered_crops_of_twice_the_size(tiny_model):
    import maco_keras

    images = tf.random.stateless_uniform((2, 64, 64, 3), (3, 4))
    seeds = seeding.unit_draws(1, 0, [5, 6])
    plain = augmentation.Augmentation()
    smooth = augmentation.Augmentation(antialias=True)
    drawn, boxes, noise_keys = augmentation.draw(seeds, images, 3, smooth, 0.5, 0.0, 0.0)
    crops = augmentation.cut(drawn, boxes, 0, 3, (8, 8), smooth, noise_keys, 0.0, 0.0)
    large = augmentation.cut(drawn, boxes, 0, 3, (16, 16), plain, noise_keys, 0.0, 0.0)
    assert crops.shape == (6, 8, 8, 3)
    np.testing.assert_allclose(crops.numpy(), tf.nn.avg_pool2d(large, 2, 2, "VALID").numpy(), rtol=1e-6, atol=1e-6)
    kwargs = dict(units=[1, 2], steps=2, image_size=40, crops=4, seed=0, verbose=False)
    smoothed, _ = maco_keras.maco(tiny_model, antialias=True, **kwargs)
    chunked, _ = maco_keras.maco(tiny_model, antialias=True, crop_chunk=2, **kwargs)
    np.testing.assert_array_equal(smoothed, chunked)
    assert not np.array_equal(smoothed, maco_keras.maco(tiny_model, **kwargs)[0])
