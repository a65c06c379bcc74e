"""Input validation and spectral set-up for :mod:`dlnlab.theory.exact` (one clear error per bad
field)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._checks import as_float, as_int
from ..errors import ConfigError, DataError
from ..problems import Dropout, MultiplicativeNoise, Regression
from ._exact_reduced import Mode

__all__ = ["Checked", "check_inputs"]

_GROUP_RTOL = 1e-10  # eigenvalues of Sxx closer than this (relative) form one eigenspace
_NULL_RTOL = 1e-12  # eigenvalues below this times the largest count as zero


@dataclass(frozen=True)
class Checked:
    """Validated inputs. ``modes``: one ``(Mode, proj, left)`` per independent reduced problem,
    where the mean end-to-end matrix of a point with group coefficients ``c`` is ``outer(left, c @
    proj)`` and ``proj.sum(0)`` is the mode's ``E[x y]``."""

    widths: tuple[int, ...]
    gammas: tuple[float, ...]
    gamma_eff: float
    s2: float
    k: float
    Sxx: np.ndarray
    Syx: np.ndarray
    Syy: float
    modes: tuple


def _widths(prob, widths) -> tuple[int, ...]:
    w = getattr(widths, "widths", widths)
    if isinstance(w, (str, bytes)) or not isinstance(w, Sequence):
        raise ConfigError(
            f"widths: expected a sequence (d_in, h_1, ..., d_out) of positive integers, got {w!r}"
        )
    w = tuple(as_int(f"widths[{i}]", x, low=1) for i, x in enumerate(w))
    if len(w) < 2:
        raise ConfigError(f"widths: expected at least (d_in, d_out), got {w}")
    if (w[0], w[-1]) != (prob.d_in, prob.d_out):
        raise DataError(
            f"widths: {w} do not match the problem (d_in={prob.d_in}, d_out={prob.d_out}); expected "
            "d_in first and d_out last"
        )
    return w


def _gammas(weight_decay, L: int, positive: bool) -> tuple[float, ...]:
    if isinstance(weight_decay, (str, bytes)):
        raise ConfigError(f"weight_decay: expected a number or {L} numbers, got {weight_decay!r}")
    arr = np.asarray(weight_decay, dtype=object)
    if arr.ndim == 0:
        g = (as_float("weight_decay", arr.item(), low=0.0),) * L
    elif arr.ndim == 1 and arr.shape[0] == L:
        g = tuple(as_float(f"weight_decay[{i}]", x, low=0.0) for i, x in enumerate(arr))
    else:
        raise ConfigError(
            f"weight_decay: expected a number or {L} numbers (one per weight matrix), "
            f"got {weight_decay!r}"
        )
    if positive and min(g) <= 0.0:
        raise ConfigError(f"profile: expected positive numbers, got {g}")
    if 0.0 in g and max(g) > 0.0 and L > 1:
        raise ConfigError(
            f"weight_decay: expected all layers positive or all zero, got {g} (with some "
            "layers free the "
            "infimum shrinks the others to zero and is not attained)"
        )
    return g


def check_inputs(prob, widths, weight_decay, noise, *, positive: bool = False) -> Checked:
    if not isinstance(prob, Regression):
        raise ConfigError(f"prob: expected a dl.Regression, got {type(prob).__name__}")
    w = _widths(prob, widths)
    L = len(w) - 1
    gam = _gammas(weight_decay, L, positive)
    geff = 0.0 if min(gam) == 0.0 else math.exp(sum(math.log(x) for x in gam) / L)
    if noise is not None and not isinstance(noise, (Dropout, MultiplicativeNoise)):
        raise ConfigError(
            f"noise: expected None, dl.Dropout or dl.MultiplicativeNoise, got {noise!r}"
        )
    s2 = 0.0 if noise is None else float(noise.variance)
    k = math.prod(1.0 + s2 / h for h in w[1:-1])
    Sxx = np.asarray(prob.Sxx, dtype=float)
    Syx = np.asarray(prob.Syx, dtype=float)
    Syy = float(prob.Syy)
    D = L - 1
    if Syx.shape[0] == 1:
        modes = (_scalar_mode(Sxx, Syx[0], k, D, geff),)
    else:
        modes = _vector_modes(Sxx, Syx, D, s2)
    return Checked(w, gam, geff, s2, k, Sxx, Syx, Syy, modes)


def _scalar_mode(Sxx, m, k, D, geff):
    a, Q = np.linalg.eigh(Sxx)
    e = Q.T @ m
    amax = max(float(a.max()), 0.0)
    null = a <= _NULL_RTOL * max(amax, 1e-300) * len(a)
    m2 = float(m @ m)
    if (D >= 1 or geff == 0.0) and null.any() and float(e[null] @ e[null]) > 1e-12 * m2:
        raise DataError(
            "prob: E[x y] has a component outside the range of Sxx (not the moments of any "
            "data set); the "
            "loss is then unbounded below"
        )
    if not (D == 0 and geff > 0.0):
        a, Q, e = a[~null], Q[:, ~null], e[~null]
    groups: list[list[int]] = []
    for j in np.argsort(a):
        if groups and abs(a[j] - a[groups[-1][0]]) <= _GROUP_RTOL * max(abs(a[j]), 1e-300):
            groups[-1].append(j)
        else:
            groups.append([j])
    ga, ge2, proj = [], [], []
    for grp in groups:
        e2 = float(np.sum(e[grp] ** 2))
        if e2 > 1e-30 * m2:
            ga.append(float(np.mean(a[grp])))
            ge2.append(e2)
            proj.append(Q[:, grp] @ e[grp])
    if not ga:
        ga, ge2, proj = [1.0], [0.0], [np.zeros_like(m)]
    mode = Mode(np.array(ga), np.array(ge2), k, D)
    return mode, np.array(proj), np.ones(1)


def _vector_modes(Sxx, Syx, D, s2):
    d = Sxx.shape[0]
    a = float(np.trace(Sxx)) / d
    if np.abs(Sxx - a * np.eye(d)).max() > 1e-10 * max(abs(a), 1e-300):
        raise DataError(
            f"prob: vector outputs (d_out={Syx.shape[0]}) need isotropic inputs Sxx = a I "
            "(whitened data); "
            f"got Sxx with eigenvalues in [{np.linalg.eigvalsh(Sxx).min():.3g}, "
            f"{np.linalg.eigvalsh(Sxx).max():.3g}]"
        )
    if s2 != 0.0:
        raise ConfigError("noise: vector outputs are solved without noise only; use noise=None")
    if a <= 0.0:
        raise DataError("prob: Sxx = 0 (no input variance)")
    U, s, Vt = np.linalg.svd(Syx, full_matrices=False)
    modes = []
    for i in range(len(s)):
        if s[i] > 1e-14 * max(s[0], 1e-300):
            modes.append(
                (Mode(np.array([a]), np.array([s[i] ** 2]), 1.0, D), s[i] * Vt[i][None, :], U[:, i])
            )
    if not modes:
        modes.append((Mode(np.array([a]), np.array([0.0]), 1.0, D), np.zeros((1, d)), U[:, 0]))
    return tuple(modes)
