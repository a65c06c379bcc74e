"""Diagnostics against hand-made matrices with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab import diagnostics as dg


def test_ranks():
    s = jnp.array([3.0, 1.0, 1e-6, 0.0])
    assert int(dg.numerical_rank(s)) == 2
    assert int(dg.numerical_rank(s, rtol=1e-8)) == 3
    assert float(dg.effective_rank(jnp.array([2.0, 2.0, 2.0]))) == pytest.approx(3.0)
    assert float(dg.effective_rank(jnp.array([5.0, 0.0]))) == pytest.approx(1.0)
    assert float(dg.effective_rank(jnp.zeros(3))) == 0.0
    M = np.outer([1.0, 2.0], [3.0, 0.0, 1.0])
    assert int(dg.numerical_rank(M)) == 1


def test_rank_one_ratio_and_alignment():
    rng = np.random.default_rng(0)
    u, v, w = rng.normal(size=4), rng.normal(size=3), rng.normal(size=2)
    aligned = (jnp.outer(u, v), jnp.outer(w, u))  # W_2's right singular vector is W_1's left one
    np.testing.assert_allclose(dg.rank_one_ratio(aligned), [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(dg.alignment(aligned), [1.0], atol=1e-12)
    u_perp = rng.normal(size=4)
    u_perp -= u_perp @ u / (u @ u) * u
    crossed = (jnp.outer(u, v), jnp.outer(w, u_perp))
    np.testing.assert_allclose(dg.alignment(crossed), [0.0], atol=1e-12)
    assert float(dg.rank_one_ratio((jnp.eye(4),))[0]) == pytest.approx(0.5)


def test_balancedness():
    bal = dl.Net((3, 4, 2)).init(0, scheme="balanced", target=np.arange(6.0).reshape(2, 3))
    b = dg.balancedness(bal)
    assert float(b.normalised) < 1e-12
    unbalanced = (2.0 * bal[0], bal[1] / 2.0)
    b = dg.balancedness(unbalanced)
    gap = np.asarray(unbalanced[1].T @ unbalanced[1] - unbalanced[0] @ unbalanced[0].T)
    assert float(b.per_pair[0]) == pytest.approx(np.linalg.norm(gap))
    assert 0.1 < float(b.normalised) <= 1.0


def test_bad_arguments_name_the_argument():
    from dlnlab.errors import ConfigError, DataError

    good = dl.Net((3, 4, 2)).init(0, scheme="gaussian", scale=0.5)
    with pytest.raises(DataError, match=r"^params\[1\]: expected 4 columns \(the rows of params\[0\]\), got shape"):
        dg.balancedness((good[0], np.ones((2, 3))))
    W = np.array(good[0])
    W[1, 2] = np.nan
    with pytest.raises(DataError, match=r"^params\[0\]: contains NaN or infinite values \(first at index \(1, 2\)\)"):
        dg.alignment((W, good[1]))
    with pytest.raises(DataError, match=r"^x: expected a matrix \(2-D\) or its singular values \(1-D\)"):
        dg.effective_rank(np.ones((2, 2, 2)))
    with pytest.raises(DataError, match=r"^A: expected a matrix .* got shape \(3,\)"):
        dg.singular_values(np.ones(3))
    with pytest.raises(ConfigError, match=r"^rtol: expected a value >= 0.0, got -1.0"):
        dg.numerical_rank(np.eye(2), rtol=-1.0)
    with pytest.raises(DataError, match=r"^params: expected a non-empty sequence of weight matrices, got str"):
        dg.layer_norms("W")


def test_batched_singular_values_equal_numpy_and_run_one_matrix_at_a_time():
    """Under vmap the SVD is a scan of unbatched kernels (jaxlib's batched CPU SVD can deadlock in a loop)."""
    from dlnlab.diagnostics._spectra import svdvals

    W = np.random.default_rng(0).normal(size=(3, 4, 5, 6))
    got = jax.jit(jax.vmap(jax.vmap(svdvals)))(W)
    np.testing.assert_allclose(got, np.linalg.svd(W, compute_uv=False), rtol=1e-12, atol=1e-12)
    assert "scan" in str(jax.make_jaxpr(jax.vmap(svdvals))(W[0]))


_WIDE_BATCHED_FLOW = """
import jax, numpy as np, dlnlab as dl
jax.config.update("jax_enable_x64", True)
prob = dl.Regression.from_moments(np.eye(5), np.random.default_rng(0).normal(size=(4, 5)), 30.0)
obj, net = dl.Objective(prob), dl.Net((5, 256, 4))
inits = [net.init(jax.random.key(s), scheme="gaussian", scale=1e-3) for s in range(29)]
runs = dl.train_batched(obj, inits, dl.Flow(t1=200.0), stop=dl.Stop(loss=0.5 * float(obj.value(inits[0]))),
                        record=dl.Record(summaries=("loss", "singular_values", dl.diagnostics.plateau_summaries)))
assert all(r.status == "converged" for r in runs), [r.status for r in runs]
"""


def test_vmapped_flow_recording_wide_layer_spectra_finishes():
    """This call waited forever with jaxlib's batched SVD in the summaries (2 CPU threads, width 256)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WIDE_BATCHED_FLOW], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
