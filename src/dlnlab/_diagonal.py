"""Diagonal linear networks (woodworth2020): ``beta = w_+^D - w_-^D`` elementwise.

A depth-``D`` diagonal network predicts ``f(x) = <beta, x>`` with ``beta = w_+^D - w_-^D`` (powers elementwise):
a DLN whose every layer is diagonal, with a positive and a negative branch so that ``beta`` can take either sign
from a positive initialisation. Its parameters are the pair ``(w_plus, w_minus)``, each of shape ``(d,)``; its
end-to-end matrix is ``beta`` as a ``(1, d)`` row, so it trains on any scalar-output problem through
:class:`dlnlab.Objective` (``net=dl.DiagonalNet(d, depth)``) with GD, SGD or gradient flow. Weight decay acts on
``||w_+||^2`` and ``||w_-||^2`` (two coefficients when given per array; no 1/2).

Reference: B. Woodworth, S. Gunasekar, J. D. Lee, E. Moroshko, P. Savarese, I. Golan, D. Soudry, N. Srebro,
"Kernel and Rich Regimes in Overparametrized Models", COLT 2020. With ``w_+ = w_- = alpha 1`` at ``t = 0``
(``beta = 0``) and depth 2, gradient flow on an underdetermined least-squares problem converges to the
interpolator minimising ``Q_alpha`` (minimum l1 as ``alpha -> 0``, minimum l2 as ``alpha -> inf``).

Example:
    >>> import numpy as np, dlnlab as dl
    >>> net = dl.DiagonalNet(4, depth=2)
    >>> w_plus, w_minus = net.init(scale=0.1)
    >>> [float(b) for b in net.beta((w_plus, w_minus))]
    [0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ._checks import as_dtype, as_float, as_int, check_params_tree, one_of
from ._model import AbstractModel
from .errors import ConfigError, DataError

__all__ = ["DiagonalNet"]

_SCHEMES = ("constant",)


@dataclass(frozen=True)
class DiagonalNet(AbstractModel):
    """A depth-``depth`` diagonal linear network on ``d`` inputs: ``beta = w_plus**depth - w_minus**depth``.

    Args:
        d: the input dimension (length of ``beta``), at least 1.
        depth: ``D >= 1``, the power in ``beta = w_+^D - w_-^D`` (woodworth2020's ``D``; ``D = 2`` is the
            canonical "kernel and rich regimes" model).
    """

    d: int
    depth: int = 2

    def __post_init__(self):
        object.__setattr__(self, "d", as_int("d", self.d, low=1))
        object.__setattr__(self, "depth", as_int("depth", self.depth, low=1))

    @property
    def d_in(self) -> int:
        return self.d

    @property
    def d_out(self) -> int:
        return 1

    def beta(self, params) -> jax.Array:
        """The linear predictor ``w_+^D - w_-^D``, shape ``(d,)`` (differentiable; any leading batch axes)."""
        w_plus, w_minus = params
        return w_plus**self.depth - w_minus**self.depth

    def end_to_end(self, params) -> jax.Array:
        """``beta`` as a ``(1, d)`` row."""
        return self.beta(params)[..., None, :]

    def check_params(self, params, name: str = "params") -> tuple[jax.Array, jax.Array]:
        """``(w_plus, w_minus)``, two real floating arrays of shape ``(d,)``, finite when concrete."""
        if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) or len(params) != 2:
            got = f"length {len(params)}" if isinstance(params, Sequence) else type(params).__name__
            raise DataError(f"{name}: expected the pair (w_plus, w_minus) of a dl.DiagonalNet, got {got}")
        for i, w in enumerate(params):
            if tuple(jnp.shape(w)) != (self.d,):
                raise DataError(f"{name}[{i}]: expected shape ({self.d},) (the net's d), got {tuple(jnp.shape(w))}")
        return tuple(check_params_tree(tuple(params), name=name))

    def decay_terms(self, params) -> tuple[jax.Array, ...]:
        """``||w_plus||^2`` and ``||w_minus||^2``."""
        return tuple(jnp.sum(w * w) for w in params)

    def n_decay_terms(self, params=None) -> int:
        return 2

    def apply(self, params, X) -> jax.Array:
        return X @ self.beta(params)[:, None]

    def init(self, key=None, *, scale, scheme: str = "constant", dtype=None) -> tuple[jax.Array, jax.Array]:
        """Initial ``(w_plus, w_minus)``.

        - ``"constant"``: ``w_plus = w_minus = scale * 1`` (woodworth2020's ``alpha``), so ``beta = 0``; ``scale``
          must be positive. ``key`` is not used by this deterministic scheme (accepted so that every model's
          ``init`` has the same call shape).
        """
        one_of("scheme", scheme, _SCHEMES)
        if scale is None:
            raise ConfigError("scale: required (woodworth2020's alpha, the initial value of w_plus and w_minus)")
        alpha = as_float("scale", scale, low=0.0, low_open=True)
        dtype = as_dtype("dtype", dtype)
        w = jnp.full((self.d,), alpha, dtype)
        if not bool(jnp.all(jnp.isfinite(w))):
            raise ConfigError(f"scale: {alpha} overflows {jnp.dtype(dtype).name}; expected a smaller value")
        return (w, w)
