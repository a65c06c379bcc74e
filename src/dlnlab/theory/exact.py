"""Exact global minima of deep linear networks with weight decay and stochastic neurons (ziyin2022).

Reference: L. Ziyin, B. Li, X. Meng, "Exact Solutions of a Deep Linear Network", NeurIPS 2022 (arXiv
2202.04777).

**Depth convention.** dlnlab's depth ``L`` counts weight matrices: ``widths = (d_in, h_1, ..., h_D,
d_out)`` with ``L = len(widths) - 1``. The paper counts *hidden layers* ``D = L - 1`` (``D = 0`` is
ridge regression, ``D = 1`` one hidden layer). Every function here takes library ``widths`` and
reports ``hidden_layers = D``.

**Normalisation** (the paper's and the library's, so no conversion is needed): the loss is ``E_x
E_eps (f(x) - y)^2`` (mean over samples, no 1/2) plus ``sum_l gamma_l ||W_l||_F^2`` (no 1/2); noise
multiplies every hidden unit by independent ``eps`` with mean 1 and variance ``s2`` (inverted
dropout: ``s2 = p / (1 - p)``). With ``k = prod_l (1 + s2 / h_l)`` and ``gamma_eff = (prod_l
gamma_l)^(1/L)`` the global minimum is that of the function-space loss

    L_eff(v) = k v^T Sxx v - 2 v^T E[x y] + E[y^2] + L gamma_eff ||v||^(2/L),

realised by rank-one, aligned, balanced layers with equal-magnitude hidden units ("hypercube"
weights).

**Beyond the paper:** vector outputs with isotropic inputs (``Sxx = a I``) and no noise. The problem
then separates over the singular values of ``Syx`` (each one a scalar problem with ``Sxx = a``), and
the weights are a balanced factorisation of ``sum_i v_i u_i w_i^T`` (at most ``min_l h_l`` modes:
the strongest ones).

Example:
    >>> import numpy as np, dlnlab as dl
    >>> prob = dl.Regression.from_moments(np.eye(1), np.ones((1, 1)), 1.0)
    >>> sol = dl.theory.exact.solve(prob, (1, 4, 4, 1), 0.1)      # two hidden layers, gamma = 0.1
    >>> round(sol.loss, 6), sol.stationary_points[0].kind  # zero: a bad local minimum
    (0.289638, 'minimum')
    >>> obj = dl.Objective(prob, weight_decay=0.1)
    >>> bool(abs(obj.value(sol.params()) - sol.loss) < 1e-12)
    True
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .._checks import one_of
from ..errors import ConfigError, DataError
from ._exact_check import check_inputs
from ._exact_reduced import critical_gamma, kind_at, spinodal_gamma, stationary_ts, zero_kind

__all__ = [
    "Solution",
    "StationaryPoint",
    "CriticalDecay",
    "ZeroHessian",
    "solve",
    "critical_weight_decay",
    "hessian_at_zero",
    "prediction_variance",
]

_MAX_COMBOS = 4096


@dataclass(frozen=True)
class StationaryPoint:
    """A stationary point of the reduced (function-space) problem.

    ``t``: balanced layer scale (``gamma_l ||W_l||_F^2 = gamma_eff t`` on every layer; with zero
    weight decay the balanced choice ``||W_l||_F^2 = t``); ``end_to_end``: the mean end-to-end
    matrix ``(d_out, d_in)``; ``loss``: the exact expected objective there; ``kind``: ``"minimum"``,
    ``"saddle"`` or ``"degenerate"`` (the same in parameter space, where the point is realised by
    :meth:`Solution.params`); ``mode_t``: the scale of every mode (a single one for scalar output).
    """

    t: float
    end_to_end: np.ndarray
    loss: float
    kind: str
    mode_t: tuple[float, ...]


@dataclass(frozen=True)
class Solution:
    """The exact global minimum of a DLN objective and the stationary points of its reduced problem.

    Attributes: ``loss`` (global minimum of ``dl.Objective(prob, weight_decay=...,
    noise=...).value``), ``end_to_end`` (mean end-to-end matrix, shape ``(d_out, d_in)``;
    ``end_to_end[0]`` is the paper's ``v`` for scalar output), ``t`` (balanced scale),
    ``order_parameter`` (``sum_l ||W_l||_F^2`` at the minimum, 0 at the trivial solution; equals
    ``dL*/dgamma`` for equal decay), ``layer_norms_sq`` (``||W_l||_F^2`` per layer), ``minimum``
    (the selected :class:`StationaryPoint`), ``stationary_points`` (zero and every nonzero point,
    sorted by ``t``), ``mode_points`` (per singular mode, vector outputs), ``k`` (noise factor),
    ``gamma_eff`` and ``hidden_layers`` (the paper's ``D = L - 1``)."""

    widths: tuple[int, ...]
    weight_decay: tuple[float, ...]
    noise_variance: float
    k: float
    gamma_eff: float
    minimum: StationaryPoint
    mode_points: tuple[tuple[StationaryPoint, ...], ...]
    _moments: tuple = field(repr=False)
    _lefts: tuple = field(repr=False)

    @property
    def loss(self) -> float:
        return self.minimum.loss

    @property
    def t(self) -> float:
        return self.minimum.t

    @property
    def end_to_end(self) -> np.ndarray:
        return self.minimum.end_to_end

    @property
    def layer_norms_sq(self) -> np.ndarray:
        g = np.asarray(self.weight_decay)
        return self.t * (self.gamma_eff / g if self.gamma_eff > 0 else np.ones_like(g))

    @property
    def order_parameter(self) -> float:
        return float(self.layer_norms_sq.sum())

    @property
    def depth(self) -> int:
        """Number of weight matrices L (library convention)."""
        return len(self.widths) - 1

    @property
    def hidden_layers(self) -> int:
        """The paper's depth D = L - 1."""
        return self.depth - 1

    @property
    def trivial(self) -> bool:
        """Whether the global minimum is the zero network."""
        return self.t == 0.0

    @property
    def stationary_points(self) -> tuple[StationaryPoint, ...]:
        """Every stationary point of the reduced problem (for vector outputs: every combination of
        the modes' points with at most ``min_l h_l`` nonzero modes; kinds then ignore that rank
        cap), by ``t``."""
        if len(self.mode_points) == 1:
            return self.mode_points[0]
        n = math.prod(len(p) for p in self.mode_points)
        if n > _MAX_COMBOS:
            raise ConfigError(
                f"stationary_points: {n} combinations (> {_MAX_COMBOS}); use mode_points"
            )
        cap = _rank_cap(self.widths)
        pts = [
            _combine(c, self._moments[2])
            for c in itertools.product(*self.mode_points)
            if sum(p.t > 0 for p in c) <= cap
        ]
        return tuple(sorted(pts, key=lambda p: (p.t, p.loss)))

    def effective_loss(self, A) -> float:
        """``L_eff(A) = k tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy + L gamma_eff sum_i
        sigma_i(A)^(2/L)``: the lowest objective over all weights with mean end-to-end matrix ``A``
        (shape ``(d_out, d_in)``)."""
        Sxx, Syx, Syy = self._moments
        A = np.asarray(A, dtype=float).reshape(Syx.shape)
        s = np.linalg.svd(A, compute_uv=False)
        reg = self.depth * self.gamma_eff * float(np.sum(s ** (2.0 / self.depth)))
        return float(self.k * np.sum((A @ Sxx) * A) - 2.0 * np.sum(A * Syx) + Syy + reg)

    def params(self, point: StationaryPoint | None = None, *, signs=None, key=None):
        """Weights ``(W_1, ..., W_L)`` (``W_l`` of shape ``(widths[l], widths[l-1])``) realising
        ``point`` (default: the global minimum); their ``dl.Objective`` value equals ``point.loss``.

        Scalar output: the rank-one hypercube chain ``W_1 = c_1 r_1 w^T``, ``W_l = c_l r_l
        r_{l-1}^T``, ``W_L = c_L r_D^T`` with sign vectors ``r_l`` (default all +1; ``signs``: one
        +-1 vector per hidden layer; ``key``: random signs; every choice is equally good). Vector
        output: a balanced factorisation through orthonormal columns (the first coordinates, or
        Haar-random with ``key``)."""
        import jax
        import jax.numpy as jnp

        point = self.minimum if point is None else point
        hidden = self.widths[1:-1]
        if signs is not None and (len(self.mode_points) > 1 or len(signs) != len(hidden)):
            raise ConfigError(f"signs: expected {len(hidden)} sign vectors (scalar output only)")
        # rank-one components of the end-to-end matrix: mode i is left_i (x) right_i
        if len(self.mode_points) == 1:
            lefts = [self._lefts[0]] if point.t > 0 else []
            rights = [point.end_to_end[0]] if point.t > 0 else []
        else:
            lefts = [self._lefts[i] for i, t in enumerate(point.mode_t) if t > 0]
            rights = [
                self._lefts[i] @ point.end_to_end for i, t in enumerate(point.mode_t) if t > 0
            ]
        ts = np.array([t for t in point.mode_t if t > 0] or [0.0])
        r = ts.size
        rights = [x / np.linalg.norm(x) for x in rights] or [np.eye(self.widths[0])[0]]
        lefts = lefts or [np.eye(self.widths[-1])[0]]
        keys = None if key is None else jax.random.split(key, max(len(hidden), 1))
        bases = []
        for lvl, h in enumerate(hidden):
            if len(self.mode_points) == 1:
                if signs is not None:
                    col = np.asarray(signs[lvl], dtype=float).ravel()
                    if col.shape != (h,) or not np.all(np.abs(col) == 1.0):
                        raise ConfigError(f"signs[{lvl}]: expected {h} entries equal to +1 or -1")
                elif key is not None:
                    col = np.where(
                        np.asarray(jax.random.bernoulli(keys[lvl], 0.5, (h,))), 1.0, -1.0
                    )
                else:
                    col = np.ones(h)
                bases.append((col / math.sqrt(h))[:, None])
            elif key is not None:
                bases.append(np.linalg.qr(np.asarray(jax.random.normal(keys[lvl], (h, r))))[0])
            else:
                bases.append(np.eye(h, r))
        # per-layer, per-mode singular values (L, r): gamma_l alpha_l^2 = gamma_eff t
        g = np.asarray(self.weight_decay)[:, None]
        ratio = self.gamma_eff / g if self.gamma_eff > 0 else np.ones_like(g)
        alpha = np.sqrt(ratio * ts[None, :])
        chain = [np.stack(rights, axis=1), *bases, np.stack(lefts, axis=1)]
        return tuple(
            jnp.asarray(chain[i + 1] @ np.diag(alpha[i]) @ chain[i].T) for i in range(self.depth)
        )

    def prediction_variance(self, x=None):
        """See :func:`prediction_variance`."""
        return prediction_variance(self, x)


def _rank_cap(widths) -> int:
    return min(widths[1:-1], default=min(widths))


def _combine(pts, syy) -> StationaryPoint:
    kinds = {p.kind for p in pts}
    kind = "saddle" if "saddle" in kinds else ("degenerate" if "degenerate" in kinds else "minimum")
    return StationaryPoint(
        t=float(sum(p.t for p in pts)),
        end_to_end=_frozen(sum(p.end_to_end for p in pts)),
        loss=float(syy + sum(p.loss - syy for p in pts)),
        kind=kind,
        mode_t=tuple(p.t for p in pts),
    )


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _mode_points(mode, proj, left, gamma, syy) -> tuple[StationaryPoint, ...]:
    """Zero (when stationary) and every nonzero stationary point of one mode, by t."""
    D = mode.D
    m = proj.sum(axis=0)
    pts = []
    if D >= 1 or mode.m2 == 0.0:
        pts.append(
            StationaryPoint(
                0.0,
                _frozen(np.zeros((left.size, m.size))),
                float(syy),
                zero_kind(mode, gamma),
                (0.0,),
            )
        )
    if mode.m2 > 0.0:
        if D == 0 or gamma == 0.0:  # convex quadratic (ridge / no decay): one point, t from ||v||
            ts = [mode.norm_v(1.0, gamma) ** (2.0 / (D + 1))]
        else:
            ts = stationary_ts(mode, gamma)
        for t in ts:
            v = mode.v_coef(t, gamma) @ proj
            loss = syy - float(v @ m) + D * gamma * t
            pts.append(
                StationaryPoint(
                    float(t),
                    _frozen(np.outer(left, v)),
                    float(loss),
                    kind_at(mode, t, gamma),
                    (float(t),),
                )
            )
    return tuple(pts)


def solve(prob, widths, weight_decay, noise=None) -> Solution:
    """The exact global minimum of ``dl.Objective(prob, weight_decay=weight_decay, noise=noise)``
    over the weights of a DLN with library ``widths = (d_in, h_1, ..., h_D, d_out)`` (``D =
    len(widths) - 2`` hidden layers in the paper's count; ``(d_in, d_out)`` is ridge regression).

    Args:
        prob: a ``dl.Regression``. Scalar output: any ``Sxx``. Vector output: ``Sxx = a I`` and no
            noise.
        widths: library widths (or a ``dl.Net``); unequal hidden widths are fine.
        weight_decay: one ``gamma >= 0`` or one per weight matrix, input layer first (the output
            layer's may differ); all positive, or all zero.
        noise: ``None``, ``dl.Dropout(p)`` or ``dl.MultiplicativeNoise(var)`` on every hidden unit.

    Every root of ``g(t) = 1`` is found and compared with zero (the largest root is not always the
    global minimum when Sxx is anisotropic)."""
    c = check_inputs(prob, widths, weight_decay, noise)
    mode_pts = tuple(
        _mode_points(mode, proj, left, c.gamma_eff, c.Syy) for mode, proj, left in c.modes
    )
    best = [min(p, key=lambda s: s.loss) for p in mode_pts]
    if len(mode_pts) == 1:
        minimum = best[0]
    else:  # separable: each mode's best point; keep the strongest modes that fit the widths
        order = sorted(range(len(best)), key=lambda i: best[i].loss)
        keep = set(order[: _rank_cap(c.widths)])
        minimum = _combine(
            [best[i] if i in keep else mode_pts[i][0] for i in range(len(best))], c.Syy
        )
    return Solution(
        widths=c.widths,
        weight_decay=c.gammas,
        noise_variance=c.s2,
        k=c.k,
        gamma_eff=c.gamma_eff,
        minimum=minimum,
        mode_points=mode_pts,
        _moments=(c.Sxx, c.Syx, c.Syy),
        _lefts=tuple(left for _, _, left in c.modes),
    )


@dataclass(frozen=True)
class CriticalDecay:
    """Critical weight decays, as the common factor ``gamma`` of ``weight_decay = gamma * profile``.

    ``critical``: zero becomes a global minimum (for ``gamma >= critical``); ``spinodal``: the
    largest ``gamma`` with a nonzero local minimum (equal to ``critical`` for one hidden layer,
    larger for more; ``inf`` for ridge regression, which never collapses). ``method``:
    ``"closed_form"`` or ``"numerical"``."""

    critical: float
    spinodal: float
    method: str
    hidden_layers: int


def critical_weight_decay(
    prob, widths, noise=None, *, profile=None, method: str = "auto"
) -> CriticalDecay:
    """Critical weight decay and spinodal of a DLN (ziyin2022, Sections 2.5-2.6).

    Weight decay is ``gamma * profile`` (``profile``: one positive number per weight matrix, default
    all ones), and only ``gamma_eff = gamma * prod(profile)^(1/L)`` matters. Closed forms: one
    hidden layer, ``gamma_eff = ||E[x y]||`` (independent of noise, width and Sxx); two or more
    hidden layers with ``E[x y]`` in one eigenspace of Sxx (e.g. isotropic data), ``gamma_eff* =
    [e^(2D) (D-1)^(D-1) / (D^(2D) (k a)^(D-1))]^(1/(D+1))`` and the spinodal of ``ziyin2022.md``
    Section 2.6. Otherwise an exact bisection (monotone in gamma); ``method="numerical"`` forces it
    (a cross-check of the closed forms). Vector outputs: the strongest mode decides.

    Example:
        >>> import numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(1), np.ones((1, 1)), 1.0)
        >>> round(dl.theory.exact.critical_weight_decay(prob, (1, 8, 8, 1)).critical, 6)
        0.39685
    """
    one_of("method", method, ("auto", "numerical"))
    c = check_inputs(prob, widths, 1.0 if profile is None else profile, noise, positive=True)
    L = len(c.widths) - 1
    rho = c.gamma_eff
    crit, spin, methods = [], [], set()
    numerical = method == "numerical"
    for mode, *_ in c.modes:
        g1, m1 = critical_gamma(mode, numerical=numerical)
        g2, m2 = spinodal_gamma(mode, numerical=numerical)
        crit.append(g1)
        spin.append(g2)
        methods |= {m1, m2}
    method = "numerical" if "numerical" in methods else "closed_form"
    return CriticalDecay(max(crit) / rho, max(spin) / rho, method, L - 1)


@dataclass(frozen=True)
class ZeroHessian:
    """Hessian of the objective at the zero network: ``eigenvalues`` (ascending), ``gradient_norm``
    and ``kind``: ``"strict_minimum"``, ``"strict_saddle"``, ``"degenerate"`` or
    ``"not_stationary"``."""

    eigenvalues: np.ndarray
    gradient_norm: float
    kind: str


def hessian_at_zero(prob, widths, weight_decay, noise=None, *, tol: float = 1e-10) -> ZeroHessian:
    """The full-parameter Hessian of ``dl.Objective`` at ``W_l = 0`` (by automatic differentiation).

    ziyin2022: for two or more hidden layers it is ``diag(2 gamma_l)`` (a strict local minimum for
    every positive weight decay); for one hidden layer its eigenvalues are ``gamma_u + gamma_w +-
    sqrt((gamma_u - gamma_w)^2 + 4 ||E[x y]||^2)`` and ``2 gamma_w``: a strict saddle exactly when
    ``gamma_u gamma_w < ||E[x y]||^2``, i.e. when a nonzero minimum exists."""
    import jax.numpy as jnp

    from ..objective import Objective

    c = check_inputs(prob, widths, weight_decay, noise)
    obj = Objective(prob, weight_decay=np.asarray(c.gammas), noise=noise)
    zero = tuple(jnp.zeros((c.widths[i + 1], c.widths[i])) for i in range(len(c.widths) - 1))
    H = _dense_hessian(obj.value, zero)
    grad = np.concatenate([np.ravel(g) for g in obj.grad(zero)])
    ev = np.linalg.eigvalsh((H + H.T) / 2)
    scale = max(1.0, float(np.abs(ev).max()))
    gnorm = float(np.linalg.norm(grad))
    if gnorm > tol * scale:
        kind = "not_stationary"
    elif ev[0] > tol * scale:
        kind = "strict_minimum"
    elif ev[0] < -tol * scale:
        kind = "strict_saddle"
    else:
        kind = "degenerate"
    return ZeroHessian(ev, gnorm, kind)


def _dense_hessian(f, params) -> np.ndarray:
    from ..curvature import hessian

    return np.asarray(hessian(f, params))


def prediction_variance(solution: Solution, x=None):
    """Variance over the neuron noise of the prediction of the stochastic net at the global minimum.

    ``Var_eps f(x) = (k - 1) (v^T x)^2`` (ziyin2022, Section 2.7) for an input ``x`` of shape
    ``(d_in,)`` (a float) or ``(n, d_in)`` (an array); with ``x=None`` the data average ``E_x Var =
    (k - 1) v^T Sxx v``. It vanishes as width grows (``k - 1 ~ D s2 / h``). Zero without noise (and
    for vector outputs)."""
    Sxx = solution._moments[0]
    A = solution.end_to_end
    if x is None:
        return float((solution.k - 1.0) * np.sum((A @ Sxx) * A))
    X = np.asarray(x, dtype=float)
    if X.shape[-1] != Sxx.shape[0] or X.ndim not in (1, 2):
        raise DataError(
            f"x: expected shape ({Sxx.shape[0]},) or (n, {Sxx.shape[0]}), got {X.shape}"
        )
    out = (solution.k - 1.0) * np.sum((X @ A.T) ** 2, axis=-1)
    return float(out) if X.ndim == 1 else out
