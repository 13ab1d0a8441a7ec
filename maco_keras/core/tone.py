"""A picture's tone given as per-channel pixel statistics (`pixel_statistics`): the sigmoid's offset and scale.

`render` standardizes the picture to one contrast by default. With pixel statistics
(ImageNet's, or a mean and a standard deviation per channel), each RGB channel is
standardized on its own and given the logit offset b and scale a under which
`sigmoid(b + a * z)`, z a standardized Gaussian field, has those pixel statistics. The fit
is NumPy and SciPy, once per configuration; every backend renders with its result.
"""

import numpy as np

IMAGENET_PIXEL_STATISTICS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet's per-channel RGB pixel mean and standard deviation, in [0, 1] (the usual normalization constants)."""


def check_pixel_statistics(mean, std):
    """(mean, std) as float64 arrays (C,), or a ValueError when no sigmoid of a Gaussian has them.

    The cheap half of `fit_pixel_statistics`: validation at the boundary without the fit.
    """
    mean, std = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
    if mean.shape != std.shape or mean.ndim != 1:
        raise ValueError(f"expected a mean and a std of one value per channel, received: mean={mean.tolist()}, "
                         f"std={std.tolist()}")
    # A pixel in (0, 1) with mean m has variance below m (1 - m): Bernoulli's, the sigmoid's limit.
    if np.any(mean <= 0) or np.any(mean >= 1) or np.any(std <= 0) or np.any(std ** 2 >= mean * (1 - mean)):
        raise ValueError(f"expected means in (0, 1) and standard deviations in (0, sqrt(mean * (1 - mean))), "
                         f"received: mean={mean.tolist()}, std={std.tolist()}")
    return mean, std


def fit_pixel_statistics(mean, std):
    """The Gaussian logits whose sigmoid has, per channel, the given pixel mean and standard deviation.

    A picture rendered as `sigmoid(b + a * z)`, z a standardized Gaussian field, has pixels
    whose mean and spread depend on (a, b) through the sigmoid's curve; this inverts that
    map per channel, by Gauss-Hermite quadrature and a root finder.

    Args:
        mean: per-channel pixel means in (0, 1), e.g. `IMAGENET_PIXEL_STATISTICS[0]`.
        std: per-channel pixel standard deviations, each in (0, sqrt(mean * (1 - mean))).

    Returns:
        (offset, scale): float32 arrays (C,), b and a above.

    Example:
        >>> offset, scale = fit_pixel_statistics(*IMAGENET_PIXEL_STATISTICS)
    """
    from scipy import optimize

    mean, std = check_pixel_statistics(mean, std)
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    weights = weights / weights.sum()

    def moments(offset, log_scale):
        pixels = 1.0 / (1.0 + np.exp(-(offset + np.exp(log_scale) * nodes)))
        first = weights @ pixels
        return first, np.sqrt(max(weights @ pixels ** 2 - first ** 2, 1e-12))

    offsets, scales = [], []
    for m, s in zip(mean, std):
        start = (np.log(m / (1 - m)), np.log(s / (m * (1 - m))))
        solution = optimize.fsolve(lambda p: np.subtract(moments(*p), (m, s)), start, xtol=1e-10)
        offsets.append(solution[0])
        scales.append(np.exp(solution[1]))
    return np.asarray(offsets, np.float32), np.asarray(scales, np.float32)


def resolve_pixel_statistics(pixel_statistics, channels, name="pixel_statistics"):
    """None, or ((mean per channel), (std per channel)) as tuples of floats; "imagenet" is ImageNet's.

    `channels`: the count expected (None: any, the same for both).
    """
    if pixel_statistics is None:
        return None
    if isinstance(pixel_statistics, str):
        if pixel_statistics != "imagenet":
            raise ValueError(f"expected {name} None, 'imagenet' or (mean, std), received: "
                             f"{name}={pixel_statistics!r}")
        pixel_statistics = IMAGENET_PIXEL_STATISTICS
    try:
        mean, std = (tuple(float(value) for value in np.ravel(part)) for part in pixel_statistics)
    except (TypeError, ValueError):
        raise ValueError(f"expected {name} None, 'imagenet' or (mean, std), received: "
                         f"{name}={pixel_statistics!r}") from None
    if not mean or len(mean) != len(std):
        raise ValueError(f"expected {name} with one mean and one standard deviation per channel, received: "
                         f"{name}={pixel_statistics!r}")
    if channels is not None and len(mean) != channels:
        raise ValueError(f"expected {name} with {channels} means and {channels} standard deviations (one per "
                         f"channel), received: {name}={pixel_statistics!r}")
    try:
        check_pixel_statistics(mean, std)  # the fit itself runs once per configuration
    except ValueError as error:
        raise ValueError(f"{error} (from {name})") from None
    return mean, std


def tone(pixel_statistics, channels):
    """`render`'s `tone`: None, or the fitted (offset, scale) float32 arrays (C,) of `pixel_statistics`."""
    statistics = resolve_pixel_statistics(pixel_statistics, channels)
    return None if statistics is None else fit_pixel_statistics(*statistics)
