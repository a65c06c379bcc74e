"""Curvature: every method agrees with the dense Hessian; Morse indices of known points."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab import curvature
from dlnlab.errors import ConfigError


@pytest.fixture
def setting(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=60)
    obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=0.01)
    params = dl.Net((3, 4, 3, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.5)
    return obj, params


def test_dense_hessian_matches_finite_differences_of_the_gradient(setting):
    obj, params = setting
    H = curvature.hessian(obj, params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    grad = jax.jit(lambda x: jax.flatten_util.ravel_pytree(obj.grad(unravel(x)))[0])
    eps = 1e-6
    for j in [0, 5, 17, flat.size - 1]:
        e = jnp.zeros_like(flat).at[j].set(eps)
        np.testing.assert_allclose((grad(flat + e) - grad(flat - e)) / (2 * eps), H[:, j], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_and_power_match_the_dense_spectrum(setting, which):
    obj, params = setting
    w = np.linalg.eigvalsh(curvature.hessian(obj, params))
    ref = w[::-1][:3] if which == "largest" else w[:3]
    lz = curvature.top_eigenvalues(obj, params, k=3, which=which, method="lanczos")
    np.testing.assert_allclose(lz.values, ref, rtol=1e-8, atol=1e-10)
    pw = curvature.top_eigenvalues(obj, params, k=1, which=which, method="power", tol=1e-12)
    np.testing.assert_allclose(pw.values[0], ref[0], rtol=1e-5)
    H = curvature.hessian(obj, params)
    v = lz.vectors[0]
    np.testing.assert_allclose(H @ v, lz.values[0] * v, atol=1e-7)
    np.testing.assert_allclose(curvature.hvp(obj, params, v), H @ v, atol=1e-10)


def test_morse_index_of_known_points():
    """Depth 2, whitened, Syx = diag(3, 2, 1), hidden width 2.

    At the origin the loss is ||W_2 W_1 - S||^2 = ||S||^2 - 2 sum_h w2_h^T S w1_h + O(4): per hidden unit h the
    Hessian is [[0, -2 S], [-2 S^T, 0]], with eigenvalues +-2 s_i. So the origin is a saddle of index
    width * rank(S) = 6 whose lowest eigenvalues are -6, -6, -4, -4, -2, -2; the global minimum has index 0.
    """
    Syx = np.diag([3.0, 2.0, 1.0])
    obj = dl.Objective(dl.Regression.from_moments(np.eye(3), Syx, 14.0))
    net = dl.Net((3, 2, 3))
    origin = net.init(0, scheme="zero")
    assert curvature.morse_index(obj, origin) == 6
    assert curvature.morse_index(obj, origin, method="lanczos") == 6
    low = curvature.top_eigenvalues(obj, origin, k=6, which="smallest", method="exact").values
    np.testing.assert_allclose(low, [-6.0, -6.0, -4.0, -4.0, -2.0, -2.0], atol=1e-9)
    best_rank_two = net.init(0, scheme="balanced", target=np.diag([3.0, 2.0, 0.0]))
    assert float(jnp.linalg.norm(jax.flatten_util.ravel_pytree(obj.grad(best_rank_two))[0])) < 1e-10
    assert curvature.morse_index(obj, best_rank_two) == 0


def test_sharpness_of_a_scalar_chain():
    """L(a, b) = (s - a b)^2 at a = b = sqrt(s): Hessian [[2b^2, 2ab], [2ab, 2a^2]] has top eigenvalue 4 s."""
    s = 2.5
    obj = dl.Objective(dl.Regression.from_moments(np.eye(1), np.array([[s]]), s**2))
    params = (jnp.full((1, 1), np.sqrt(s)), jnp.full((1, 1), np.sqrt(s)))
    assert curvature.sharpness(obj, params, method="exact") == pytest.approx(4 * s, rel=1e-12)


def test_callables_and_bad_options(setting):
    obj, params = setting
    value = curvature.sharpness(lambda p: obj.value(p), params)
    assert value == pytest.approx(curvature.sharpness(obj, params, method="exact"), rel=1e-8)
    with pytest.raises(ConfigError, match="method"):
        curvature.top_eigenvalues(obj, params, method="arnoldi")
    with pytest.raises(ConfigError, match="k"):
        curvature.top_eigenvalues(obj, params, k=10_000)


_TRACES = []


class _CountingLoss(eqx.Module):
    """A pytree callable: its arrays are traced arguments of the compiled kernels, and its Python body runs only
    while JAX traces it, so ``_TRACES`` counts traces (not calls)."""

    obj: dl.Objective

    def __call__(self, params):
        _TRACES.append(1)
        return self.obj.value(params)


@jax.jit
def _hessian_blocks(obj, params):
    return jax.hessian(obj.value)(params)


def _dense_reference(obj, params):
    """The Hessian assembled from jax.hessian's per-layer blocks (layer order, row-major within a layer) and its
    eigenvalues: nothing from dl.curvature."""
    blocks = _hessian_blocks(obj, tuple(params))
    H = np.block([[np.asarray(b).reshape(Wi.size, Wj.size) for Wj, b in zip(params, row, strict=True)]
                  for Wi, row in zip(params, blocks, strict=True)])
    return H, np.linalg.eigvalsh((H + H.T) / 2)


def test_compiled_kernels_are_reused_for_new_params_and_new_data(make_data):
    """A second call with new weights and new data of the same shapes gives the right answer without tracing
    the loss again, for every method (dense, HVP, Lanczos both ways, power, the three traces, SLQ)."""
    net = dl.Net((3, 4, 2))
    _TRACES.clear()
    answers = []
    for seed in range(2):
        X, Y = make_data(d_in=3, d_out=2, n=50)
        obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=0.05)
        params = net.init(jax.random.key(seed), scheme="gaussian", scale=0.7)
        f = _CountingLoss(obj)
        H = curvature.hessian(f, params)
        v = np.random.default_rng(seed).normal(size=H.shape[0])
        Hv = np.asarray(curvature.hvp(f, params, v))
        lz = curvature.top_eigenvalues(f, params, k=2, method="lanczos").values
        pw = curvature.sharpness(f, params, method="power", tol=1e-13)
        low = curvature.top_eigenvalues(f, params, which="smallest", method="power", tol=1e-13).values[0]
        low_lz = curvature.top_eigenvalues(f, params, k=2, which="smallest", method="lanczos").values
        traces = [curvature.trace(f, params, method="exact").value] + [
            curvature.trace(f, params, method=m, num_samples=12, key=seed).value for m in ("hutchinson", "hutch++")]
        dens = curvature.spectral_density(f, params, num_probes=2, num_steps=H.shape[0], key=seed)
        if seed == 0:
            first = len(_TRACES)
            assert first > 0
        H_ref, w_ref = _dense_reference(obj, params)
        answers.append(w_ref[-1])
        np.testing.assert_allclose(H, H_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(Hv, H_ref @ v, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(lz, w_ref[::-1][:2], rtol=1e-9)
        np.testing.assert_allclose([pw, low], [w_ref[-1], w_ref[0]], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(low_lz, w_ref[:2], rtol=1e-9, atol=1e-10)
        assert traces[0] == pytest.approx(np.trace(H_ref), rel=1e-12)
        assert all(abs(t - traces[0]) < 0.5 * abs(traces[0]) for t in traces[1:])  # 12 samples: loose, finite
        assert np.isin(np.round(dens.nodes[dens.weights > 1e-10], 6), np.round(w_ref, 6)).all()
    assert len(_TRACES) == first, "a second call with new params and data traced the loss again"
    assert abs(answers[0] - answers[1]) > 1e-3  # the second call did see the new point


def test_objective_argument_is_not_retraced(setting, monkeypatch):
    """Sharpness along a run with one dl.Objective traces Objective.value once, not once per call."""
    obj, params = setting
    calls = []
    original = dl.Objective.value

    def counting(self, p):
        calls.append(1)
        return original(self, p)

    monkeypatch.setattr(dl.Objective, "value", counting)
    steps = [tuple(W * (1 + 0.1 * k) for W in params) for k in range(2)]
    values = [curvature.sharpness(obj, p) for p in steps]
    n_first = len(calls)
    values += [curvature.sharpness(obj, p) for p in steps]
    assert len(calls) == n_first
    monkeypatch.undo()
    ref = [_dense_reference(obj, p)[1][-1] for p in steps]
    assert abs(ref[0] - ref[1]) > 1e-3
    np.testing.assert_allclose(values, ref * 2, rtol=1e-9)


# -- the compiled Lanczos on awkward objectives, bottom eigenvalues, blocks, warm-started steps ----------------
from curvature_cases import block_index, dense_reference, make_case  # noqa: E402


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_lanczos_matches_eigh_on_awkward_objectives(case, which):
    """Unequal widths and anisotropic data with per-layer decay, a residual net, a tanh MLP on a dict pytree and a
    diagonal network (an objective class with .value): Lanczos against eigh of the dense Hessian."""
    _, f, params = case
    H, w = dense_reference(f, params)
    ref = w[::-1][:4] if which == "largest" else w[:4]
    eig = curvature.top_eigenvalues(f, params, k=4, which=which, method="lanczos")
    np.testing.assert_allclose(eig.values, ref, rtol=1e-9, atol=1e-9 * np.abs(w).max())
    np.testing.assert_allclose(eig.vectors @ H, eig.values[:, None] * eig.vectors, atol=1e-7 * np.abs(w).max())


def test_bottom_eigenvalues_at_a_saddle_with_multiplicities():
    """At the origin of ``||W_2 W_1 - S||^2`` (whitened, S = diag(3, 2, 1), hidden width 2) the Hessian is
    ``[[0, -2 S], [-2 S^T, 0]]`` per hidden unit: eigenvalues +-2 s_i, each twice. Lanczos from one start vector
    sees each distinct value once before its Krylov space closes; it must continue and find the copies."""
    obj = dl.Objective(dl.Regression.from_moments(np.eye(3), np.diag([3.0, 2.0, 1.0]), 14.0))
    origin = dl.Net((3, 2, 3)).init(0, scheme="zero")
    low = curvature.top_eigenvalues(obj, origin, k=6, which="smallest", method="lanczos")
    np.testing.assert_allclose(low.values, [-6.0, -6.0, -4.0, -4.0, -2.0, -2.0], atol=1e-9)
    top = curvature.top_eigenvalues(obj, origin, k=3, method="lanczos")
    np.testing.assert_allclose(top.values, [6.0, 6.0, 4.0], atol=1e-9)


@pytest.mark.parametrize("name, layers", [("dln", (0,)), ("dln", (1, 2)), ("dln", (2,)), ("mlp", (0, 2))])
def test_block_eigenvalues_match_the_dense_hessian_block(name, layers):
    """The Hessian of one layer or a set of layers is the principal block of the full dense Hessian."""
    f, params = make_case(name, seed=3)
    H, _ = dense_reference(f, params)
    idx = block_index(params, layers)
    block = H[np.ix_(idx, idx)]
    wb = np.linalg.eigvalsh(block)
    np.testing.assert_allclose(curvature.hessian(f, params, layers=layers), block, rtol=1e-12, atol=1e-12)
    k = min(3, len(idx) - 1)
    top = curvature.top_eigenvalues(f, params, k=k, layers=layers).values
    low = curvature.top_eigenvalues(f, params, k=k, which="smallest", layers=layers).values
    np.testing.assert_allclose(top, wb[::-1][:k], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(low, wb[:k], rtol=1e-9, atol=1e-10)
    assert curvature.sharpness(f, params, layers=layers) == pytest.approx(wb[-1], rel=1e-9)


def test_warm_started_steps_inside_jit():
    """power_step and lanczos_step are pure: jitted, warm-started from the previous vector, they converge to the
    dense top eigenvalue; at a saddle (a negative eigenvalue largest in size) lanczos_step still gives the
    algebraically largest one."""
    f, params = make_case("dln", seed=1)
    _, w = dense_reference(f, params)
    x, _ = jax.flatten_util.ravel_pytree(params)
    power = jax.jit(lambda p, v: curvature.power_step(f, p, v, 50))
    lanczos = jax.jit(lambda p, v: curvature.lanczos_step(f, p, v, 12))
    v = jnp.ones_like(x)
    for _ in range(40):  # warm start: each call continues from the last vector
        lam, v = power(params, v)
    assert float(lam) == pytest.approx(w[-1], rel=1e-6)
    theta, u = lanczos(params, jnp.ones_like(x))
    theta, u = lanczos(params, u)
    assert float(theta) == pytest.approx(w[-1], rel=1e-9)
    assert float(jnp.linalg.norm(u)) == pytest.approx(1.0, rel=1e-12)
    obj = dl.Objective(dl.Regression.from_moments(np.eye(3), np.diag([3.0, 2.0, 1.0]), 14.0))
    tilt = (jnp.full((2, 3), 0.05), jnp.full((3, 2), -0.05))  # near the origin saddle: spectrum about +-6
    H, ws = dense_reference(obj, tilt)
    theta, _ = jax.jit(lambda p, v: curvature.lanczos_step(obj, p, v, 12))(tilt, jnp.arange(1.0, 13.0))
    assert float(theta) == pytest.approx(ws[-1], rel=1e-9)
