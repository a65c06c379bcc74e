"""The spectral density of the Hessian by stochastic Lanczos quadrature (SLQ), with Gaussian broadening."""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._checks import as_array, as_float, as_int, as_key
from ..errors import ConfigError
from ._lanczos import tridiagonal
from ._operator import asymmetry_error, hvp_flat, nonfinite_error, prepare, random_key_data, stream_key, symmetry_tol

_COVER = 3.0  # a grid must reach this many sigmas beyond the extreme nodes (the mass left out is below 0.14 %)
_PAD = 5.0  # the default grid reaches this many sigmas beyond them (mass left out below 3e-7)


@dataclass(frozen=True, eq=False)
class SpectralDensity:
    """The Hessian's eigenvalue density estimated by stochastic Lanczos quadrature.

    For probe ``p`` (a Rademacher vector ``v``) Lanczos gives nodes ``theta_pj`` and weights ``w_pj`` (squared first
    components of the tridiagonal's eigenvectors, summing to 1) such that ``sum_j w_pj theta_pj^k = v^T H^k v /
    v^T v`` exactly for ``k < 2 num_steps``; averaged over probes this estimates ``tr(H^k) / n``, the ``k``-th
    moment of the eigenvalue distribution (Ubaru, Chen & Saad 2017). The density is that discrete measure
    broadened by a Gaussian of standard deviation ``sigma``:
    ``density(t) = (1/P) sum_pj w_pj exp(-(t - theta_pj)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``, evaluated on
    ``grid``; it integrates to 1 up to the Gaussian tails beyond the grid (a grid covers every node by at least
    3 sigma; the default grid by 5 sigma).

    Attributes:
        grid, density: where the density is evaluated and its values.
        nodes, weights: ``(num_probes, num_steps)`` quadrature nodes and weights.
        sigma: the Gaussian broadening (standard deviation, in eigenvalue units).
        num_params: the Hessian's size ``n``.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    num_params: int

    def moment(self, k: int) -> float:
        """The quadrature estimate of ``tr(H^k) / n`` (no broadening; the broadened density's second moment is
        this plus ``sigma^2``)."""
        k = as_int("k", k, low=0)
        return float(np.mean(np.sum(self.weights * self.nodes**k, axis=1)))

    def plot(self, ax=None, *, log: bool = False, **kwargs):
        """Draw the density against the eigenvalue on ``ax`` (a new figure's axes if None; the backend is
        matplotlib's current one); ``log=True`` uses a log scale for the density, where the small outlying
        eigenvalues show. Keyword arguments go to ``ax.plot``. Returns ``ax``."""
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.subplots(figsize=(5, 3.2))[1]
        ax.plot(self.grid, self.density, **kwargs)
        if log:
            ax.set_yscale("log")
            positive = self.density[self.density > 0]
            if positive.size:
                ax.set_ylim(max(positive.min(), positive.max() * 1e-12), positive.max() * 2)
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_ylabel("density")
        return ax


@eqx.filter_jit
def _slq(f, params, seed, *, probes: int, steps: int):
    """Nodes and weights of ``probes`` Lanczos quadratures with ``steps`` products each (probes one after the
    other: memory ``steps x n``), whether everything was finite, and the largest relative asymmetry."""
    x, _ = ravel_pytree(params)
    matvec = lambda v: hvp_flat(f, params, v)

    def probe(i):
        v = jax.random.rademacher(stream_key(seed, 0, i), x.shape, x.dtype)
        T, finite, asym, _ = tridiagonal(matvec, v, steps, seed, i + 1)  # stream i + 1: its breakdown vectors
        theta, Y = jnp.linalg.eigh(T)
        return theta, Y[0] ** 2, finite, asym

    nodes, weights, finite, asym = jax.lax.map(probe, jnp.arange(probes))
    return nodes, weights, jnp.all(finite), jnp.max(asym)


def _broaden(grid, nodes, weights, sigma):
    out = np.zeros_like(grid)
    for th, w in zip(nodes, weights, strict=True):  # one probe at a time: memory grid x steps
        out += np.exp(-0.5 * ((grid[:, None] - th[None]) / sigma) ** 2) @ w
    return out / (nodes.shape[0] * sigma * np.sqrt(2 * np.pi))


def _check_grid(grid, nodes, sigma):
    grid = as_array("grid", grid, ndim=1)
    if grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ConfigError(f"grid: expected at least 2 increasing points, got {grid.size} point(s)"
                          + ("" if grid.size < 2 else " not increasing"))
    lo, hi = float(nodes.min()) - _COVER * sigma, float(nodes.max()) + _COVER * sigma
    if grid[0] > lo or grid[-1] < hi:
        raise ConfigError(f"grid: [{grid[0]:.6g}, {grid[-1]:.6g}] does not cover the spectrum; expected it to reach "
                          f"[{lo:.6g}, {hi:.6g}] (the extreme quadrature nodes {float(nodes.min()):.6g} and "
                          f"{float(nodes.max()):.6g} +- {_COVER:g} sigma)")
    step = float(np.max(np.diff(grid)))
    if step > sigma:
        raise ConfigError(f"grid: spacing {step:.3g} is larger than sigma={sigma:.3g}, so the density is not "
                          "resolved and does not integrate to 1; expected a finer grid or a larger sigma")
    return grid


def spectral_density(f, params, *, num_probes: int = 4, num_steps: int = 50, key=None, sigma: float | None = None,
                     grid=None, num_grid: int | None = None, layers=None) -> SpectralDensity:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani,
    Krishnan & Xiao 2019, the method behind PyHessian's density plots).

    Args:
        f: a :class:`dlnlab.Objective`, any :class:`dlnlab.AbstractObjective` or a callable ``params -> scalar``.
        num_probes: independent Rademacher probes (the density is their average).
        num_steps: Lanczos steps (Hessian-vector products) per probe, full reorthogonalisation; capped at the
            number of parameters (then each probe's quadrature is the exact spectrum, weighted by the probe).
        key: seed or ``jax.random.key`` of the probes (default 0).
        sigma: Gaussian broadening, a standard deviation in eigenvalue units (default 1 % of the larger of the
            nodes' range and their largest magnitude).
        grid: increasing points where the density is evaluated, covering the extreme nodes by 3 sigma, spacing at
            most sigma (default: ``num_grid`` points over the nodes +- 5 sigma).
        num_grid: points of the default grid (default 1000; not with ``grid``).
        layers: ``None`` or indices of parameter arrays: the density of that Hessian block.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p: jnp.sum(jnp.array([1.0, 1.0, 3.0]) * p ** 2)      # eigenvalues 2, 2, 6
        >>> d = spectral_density(f, jnp.zeros(3), num_probes=1, num_steps=3)
        >>> round(d.moment(1), 10), round(float(d.density.sum() * (d.grid[1] - d.grid[0])), 4)
        (3.3333333333, 1.0)
    """
    num_probes = as_int("num_probes", num_probes, low=1)
    num_steps = as_int("num_steps", num_steps, low=1)
    key = as_key("key", 0 if key is None else key)
    if sigma is not None:
        sigma = as_float("sigma", sigma, low=0.0, low_open=True)
    if grid is not None and num_grid is not None:
        raise ConfigError("num_grid: does not apply with an explicit grid; expected None when grid is given")
    num_grid = 1000 if num_grid is None else as_int("num_grid", num_grid, low=2)
    g, x, n, dtype = prepare(f, params, layers)
    nodes, weights, finite, asym = _slq(g, x, random_key_data(key), probes=num_probes, steps=min(num_steps, n))
    if not bool(finite):
        raise nonfinite_error()
    if float(asym) > symmetry_tol(dtype):
        raise asymmetry_error(float(asym))
    nodes, weights = np.asarray(nodes, np.float64), np.asarray(weights, np.float64)
    if sigma is None:
        spread = max(float(nodes.max() - nodes.min()), float(np.abs(nodes).max()))
        sigma = 0.01 * (spread if spread > 0 else 1.0)
    if grid is None:
        grid = np.linspace(nodes.min() - _PAD * sigma, nodes.max() + _PAD * sigma, num_grid)
        if grid[1] - grid[0] > sigma:
            raise ConfigError(f"num_grid: {num_grid} points leave a spacing {grid[1] - grid[0]:.3g} larger than "
                              f"sigma={sigma:.3g}; expected more points or a larger sigma")
    else:
        grid = _check_grid(grid, nodes, sigma)
    return SpectralDensity(grid, _broaden(grid, nodes, weights, sigma), nodes, weights, float(sigma), n)
