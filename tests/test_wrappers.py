"""Running observation normalizer: exact against NumPy for any split of the data into batches."""

import jax
import jax.numpy as jnp
import numpy as np

from wrappers import normalize, normalizer_init, normalizer_update


def test_welford_matches_numpy_over_uneven_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 5)).astype(np.float32) * np.arange(1, 6)
    stats = normalizer_init(5)
    for chunk in np.split(data, [1, 10, 300, 301, 999]):
        stats = normalizer_update(stats, jnp.asarray(chunk))
    assert float(stats.count) == 1000
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, data.std(0), rtol=1e-4)
    z = normalize(stats, jnp.asarray(data))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)


def test_normalizer_is_identity_before_data_and_clips():
    stats = normalizer_init(3)
    x = jnp.array([1.0, -2.0, 30.0])
    np.testing.assert_allclose(normalize(stats, x), [1.0, -2.0, 10.0])


def test_normalizer_update_is_jittable_and_batched_shape():
    stats = jax.jit(normalizer_update)(normalizer_init(2), jnp.ones((4, 8, 2)))
    assert float(stats.count) == 32
    np.testing.assert_allclose(stats.mean, 1.0)
    np.testing.assert_allclose(normalize(stats, jnp.ones(2)), 0.0)
