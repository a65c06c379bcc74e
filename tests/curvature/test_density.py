"""Spectral density by stochastic Lanczos quadrature: moments against exact spectral moments tr(H^k)/n, exact
nodes when the Krylov space is complete, a density that integrates to 1, blocks and the plot helper."""

import numpy as np
import pytest
from curvature_cases import block_index, dense_reference, make_case
from matplotlib.figure import Figure

from dlnlab import curvature


def test_moments_match_exact_spectral_moments():
    """Each probe's quadrature is exact for ``v^T H^k v / n`` (k < 2 num_steps), whose mean over Rademacher
    probes is ``tr(H^k) / n`` and whose variance is ``2 (||H^k||_F^2 - sum_i (H^k)_ii^2) / n^2``: the average of
    200 probes is within 4 standard errors of the exact moment (num_steps < n, so the quadrature is a genuine
    approximation of the spectrum)."""
    f, params = make_case("dln", seed=4)
    H, w = dense_reference(f, params)
    n = H.shape[0]
    probes = 200
    d = curvature.spectral_density(f, params, num_probes=probes, num_steps=6, key=7)
    assert d.nodes.shape == (probes, 6) and d.num_params == n
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, atol=1e-12)
    for k in (1, 2, 3, 5):
        Hk = np.linalg.matrix_power(H, k)
        exact = np.trace(Hk) / n
        se = np.sqrt(2 * (np.sum(Hk**2) - np.sum(np.diag(Hk) ** 2)) / n**2 / probes)
        assert abs(d.moment(k) - exact) < 4 * se, (k, d.moment(k), exact, se)
        assert exact == pytest.approx(np.mean(w**k), rel=1e-10)


def test_full_krylov_space_gives_the_exact_spectrum(case):
    """With num_steps = n every node with weight is an eigenvalue (up to rounding), through invariant subspaces
    (repeated eigenvalues) included."""
    _, f, params = case
    H, w = dense_reference(f, params)
    d = curvature.spectral_density(f, params, num_probes=2, num_steps=10**6)
    assert d.nodes.shape == (2, H.shape[0])
    seen = d.nodes[d.weights > 1e-10]
    gap = np.min(np.abs(seen[:, None] - w[None, :]), axis=1)
    assert gap.max() < 1e-8 * max(1.0, np.abs(w).max())


def test_density_integrates_to_one_with_the_stated_broadening():
    f, params = make_case("residual", seed=1)
    d = curvature.spectral_density(f, params, num_probes=3, num_steps=12, key=1)
    trap = lambda y: float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(d.grid)))
    assert trap(d.density) == pytest.approx(1.0, abs=1e-6)
    assert trap(d.grid * d.density) == pytest.approx(d.moment(1), rel=1e-6, abs=1e-8)
    assert trap(d.grid**2 * d.density) == pytest.approx(d.moment(2) + d.sigma**2, rel=1e-6)
    grid = np.linspace(d.nodes.min() - 4 * d.sigma, d.nodes.max() + 4 * d.sigma, 3000)
    d2 = curvature.spectral_density(f, params, num_probes=3, num_steps=12, key=1, sigma=d.sigma, grid=grid)
    np.testing.assert_array_equal(d2.grid, grid)
    np.testing.assert_allclose(np.interp(grid, d.grid, d.density), d2.density, rtol=1e-2, atol=1e-3 * d.density.max())


def test_block_density_and_plot():
    f, params = make_case("dln", seed=2)
    H, _ = dense_reference(f, params)
    idx = block_index(params, (1,))
    d = curvature.spectral_density(f, params, num_probes=2, num_steps=100, layers=1)
    assert d.num_params == len(idx)
    wb = np.linalg.eigvalsh(H[np.ix_(idx, idx)])  # a complete Krylov space: the nodes are the block's eigenvalues
    assert np.min(np.abs(d.nodes[d.weights > 1e-10][:, None] - wb[None]), axis=1).max() < 1e-8 * np.abs(wb).max()
    ax = Figure().add_subplot()
    assert d.plot(ax, log=True) is ax
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "Hessian eigenvalue"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), d.grid)
