"""VecEnv's resets and episode sums, and the running observation normalizer: exact against NumPy
for any split of the data into batches, constant dimensions passed through."""

import jax
import jax.numpy as jnp
import numpy as np
import probe_envs

from wrappers import VecEnv, normalize, normalizer_init, normalizer_scale, normalizer_update


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


def test_a_dimension_that_never_varied_passes_through_unscaled():
    """A command input that was constant in training (spread 0, or float round-off) is only
    shifted: a 0.001 deviation on the robot stays 0.001 instead of becoming 10."""
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 1.0, (100, 3)).astype(np.float32)
    data[:, 1] = 0.0  # never varied
    data[:, 2] = 0.3 + rng.normal(0.0, 1e-8, 100)  # constant up to float noise
    stats = normalizer_update(normalizer_init(3), jnp.asarray(data))
    x = jnp.asarray(data[0]) + jnp.array([0.0, 0.001, 0.001])
    z = normalize(stats, x)
    np.testing.assert_allclose(z[1:], [0.001, 0.001], atol=1e-4)
    np.testing.assert_allclose(normalizer_scale(stats)[1:], 1.0)
    assert 0.5 < float(normalizer_scale(stats)[0]) < 2.0  # a varying dimension keeps its std


def test_vec_env_resets_with_fresh_keys_and_zeroes_episode_sums():
    """Three episodes per env, each from its own reset draw; sums restart after every done."""
    venv = VecEnv(probe_envs.RandomStart(), 4)

    def body(vstate, _):
        nxt = venv.step(vstate, jnp.zeros((4, 1)))
        return nxt, (vstate.env.obs[:, 0], nxt)

    start = venv.reset(jax.random.key(0))
    _, (obs, traj) = jax.jit(lambda s: jax.lax.scan(body, s, None, 6))(start)
    firsts = np.asarray(obs[::2])  # (3 episodes, 4 envs): each episode's first observation
    assert len(np.unique(firsts)) == firsts.size, firsts
    done = np.asarray(traj.env.terminated)
    np.testing.assert_array_equal(done, np.tile([False, True], 3)[:, None].repeat(4, 1))
    np.testing.assert_array_equal(np.asarray(traj.stats.episode_return)[done], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.stats.episode_length)[done], 0)
    np.testing.assert_array_equal(np.asarray(traj.stats.term_sums["main"])[done], 0.0)
    np.testing.assert_array_equal(np.asarray(traj.stats.done_return)[done], 2.0)
    np.testing.assert_array_equal(np.asarray(traj.stats.done_term_sums["main"])[done], 2.0)
    np.testing.assert_array_equal(np.asarray(traj.stats.done_return)[~done], 0.0)
