"""NAdam's update as a pure function of (weights, gradients, state): Keras's `Nadam`, step for step.

A compiled JAX loop carries the state in its `fori_loop`; PyTorch and TensorFlow call the
same function. `tests/test_backends.py` checks it against `keras.optimizers.Nadam`.
"""

import numpy as np
from keras import ops

# float32 like Keras's (cast to the weights' dtype): `1 - beta_2` is then 0.00099998713, not 0.001.
BETA_1, BETA_2, EPSILON = np.float32(0.9), np.float32(0.999), np.float32(1e-7)
ONE = np.float32(1.0)


def initial_state(weights):
    """(momentum, velocity, u_product) for `weights`, as a freshly built `keras.optimizers.Nadam` holds."""
    zeros = ops.zeros_like(weights)
    return zeros, zeros, ops.ones((), "float32")


def update(weights, gradient, state, step, learning_rate):
    """One NAdam step *down* `gradient`.

    Args:
        weights, gradient: float32 tensors of one shape.
        state: (momentum, velocity, u_product).
        step: int32 scalar, the steps taken before this one (Keras's `iterations`).
        learning_rate: float32 scalar.

    Returns:
        (new weights, new state).
    """
    momentum, velocity, u_product = state
    local_step = ops.cast(ops.add(step, 1), "float32")
    u_t = ops.multiply(BETA_1, ops.subtract(1.0, ops.multiply(0.5, ops.power(np.float32(0.96), local_step))))
    u_t_1 = ops.multiply(BETA_1, ops.subtract(1.0, ops.multiply(0.5, ops.power(np.float32(0.96),
                                                                                  ops.add(local_step, 1.0)))))
    u_product_t = ops.multiply(u_product, u_t)
    u_product_t_1 = ops.multiply(u_product_t, u_t_1)
    beta_2_power = ops.power(BETA_2, local_step)
    momentum = ops.add(momentum, ops.multiply(ops.subtract(gradient, momentum), ONE - BETA_1))
    velocity = ops.add(velocity, ops.multiply(ops.subtract(ops.square(gradient), velocity), ONE - BETA_2))
    m_hat = ops.add(ops.divide(ops.multiply(u_t_1, momentum), ops.subtract(1.0, u_product_t_1)),
                    ops.divide(ops.multiply(ops.subtract(1.0, u_t), gradient), ops.subtract(1.0, u_product_t)))
    v_hat = ops.divide(velocity, ops.subtract(1.0, beta_2_power))
    weights = ops.subtract(weights, ops.divide(ops.multiply(m_hat, learning_rate), ops.add(ops.sqrt(v_hat), EPSILON)))
    return weights, (momentum, velocity, u_product_t)
