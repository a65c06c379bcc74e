"""Deep linear network specifications and initialisation schemes.

Conventions (fixed across dlnlab): ``params = (W_1, ..., W_L)`` with ``W_i.shape == (widths[i], widths[i-1])``,
``widths = (d_in, h_1, ..., d_out)``, end-to-end matrix ``A = W_L @ ... @ W_1`` and depth ``L = len(widths) - 1``
(the number of weight matrices).

Linear ResNets (``residual=True``): every *square* layer is a residual block ``W_i = I + R_i``; non-square layers
(an input projection ``h_1 != d_in`` or an output projection ``d_out != h_{L-1}``) are plain linear maps.
``params`` always hold the full matrices ``W_i``, never the residual branches ``R_i``: because ``W = I + R`` is an
affine reparametrisation, the gradient with respect to ``R_i`` equals the gradient with respect to ``W_i`` and
gradient descent, SGD and gradient flow follow identical trajectories in either parametrisation. What changes is
(i) the initialisation, whose random schemes draw ``R_i`` and add the identity (so ``scheme="zero"`` gives the
identity map, the usual ResNet start), and (ii) weight decay, which :class:`dlnlab.Objective` applies to
``W_i - I`` on residual blocks when it is given the net.

Example:
    >>> import jax, dlnlab as dl
    >>> net = dl.Net(widths=(3, 8, 8, 2))
    >>> params = net.init(jax.random.key(0), scheme="gaussian", scale=0.1)
    >>> [w.shape for w in params]
    [(8, 3), (8, 8), (2, 8)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import as_array, as_dtype, as_float, as_int, as_key, check_matrix_chain, one_of
from ._model import AbstractModel
from .errors import ConfigError, DataError

__all__ = ["Net", "INIT_SCHEMES", "end_to_end"]

# The keyword options of Net.init, and for each scheme the ones that apply (required ones first checked there).
_INIT_OPTIONS = ("scale", "gamma", "target")
_APPLIES = {
    "gaussian": ("scale",), "width_power": ("gamma",), "fan_in": ("scale",), "xavier": ("scale",), "zero": (),
    "identity": ("scale",), "orthogonal": ("scale",), "balanced": ("target",),
}

INIT_SCHEMES = (
    "gaussian", "width_power", "fan_in", "xavier", "zero", "identity", "orthogonal", "balanced",
)

Params = tuple[jax.Array, ...]


def end_to_end(params: Sequence[jax.Array]) -> jax.Array:
    """The end-to-end matrix ``A = W_L @ ... @ W_1`` (differentiable; no SVD)."""
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) or len(params) == 0:
        raise DataError(f"params: expected a non-empty sequence of weight matrices, got {type(params).__name__}")
    shapes = [tuple(np.shape(W)) for W in params]  # shapes only: safe under jit and vmap
    for i, sh in enumerate(shapes):  # (leading batch axes are allowed: ``@`` broadcasts them)
        if len(sh) < 2 or (i and sh[-1] != shapes[i - 1][-2]):
            want = "a matrix" if len(sh) < 2 else f"{shapes[i - 1][-2]} columns"
            raise DataError(f"params[{i}]: expected {want}, got shape {sh}")
    A = params[0]
    for W in params[1:]:
        A = W @ A
    return A


@dataclass(frozen=True)
class Net(AbstractModel):
    """A deep linear network ``x -> W_L ... W_1 x`` (or a linear ResNet when ``residual=True``).

    Args:
        widths: ``(d_in, h_1, ..., h_{L-1}, d_out)``, at least two positive integers.
        residual: square layers become residual blocks ``I + R_i`` (see the module docstring); needs at least
            one square layer.
    """

    widths: tuple[int, ...]
    residual: bool = False
    is_dln = True  # (a class attribute, not a field)

    def __post_init__(self):
        if isinstance(self.widths, (str, bytes)) or not isinstance(self.widths, Sequence):
            raise ConfigError(f"widths: expected a sequence of positive integers, got {self.widths!r}")
        widths = tuple(as_int(f"widths[{i}]", w, low=1) for i, w in enumerate(self.widths))
        if len(widths) < 2:
            raise ConfigError(f"widths: expected at least (d_in, d_out), got {widths}")
        if not isinstance(self.residual, bool):
            raise ConfigError(f"residual: expected True or False, got {self.residual!r}")
        if self.residual and all(a != b for a, b in zip(widths, widths[1:])):
            raise ConfigError(f"residual: True needs at least one square layer (two equal consecutive widths), "
                              f"got widths {widths}; expected residual=False or a square block")
        object.__setattr__(self, "widths", widths)

    @property
    def d_in(self) -> int:
        return self.widths[0]

    @property
    def d_out(self) -> int:
        return self.widths[-1]

    @property
    def depth(self) -> int:
        """Number of weight matrices L."""
        return len(self.widths) - 1

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.widths[i + 1], self.widths[i]) for i in range(self.depth))

    @property
    def n_params(self) -> int:
        return sum(a * b for a, b in self.shapes)

    @property
    def residual_layers(self) -> tuple[bool, ...]:
        """Which layers are residual blocks (square layers of a residual net)."""
        return tuple(self.residual and a == b for a, b in self.shapes)

    def check_params(self, params, name: str = "params") -> Params:
        """Validate that ``params`` is a sequence of L matrices of this net's shapes, real floating-point and
        (when concrete) finite; errors name ``params[i]``. Returns a tuple of arrays."""
        return check_matrix_chain(params, name=name, shapes=self.shapes)

    def decay_terms(self, params) -> tuple[jax.Array, ...]:
        """``||W_i||_F^2``, or ``||W_i - I||_F^2`` on residual blocks (one per layer)."""
        return _decay_terms(params, self.residual_layers)

    def n_decay_terms(self, params=None) -> int:
        return self.depth

    @staticmethod
    def _apply(params, X) -> jax.Array:
        """Outputs for a batch of inputs ``X`` of shape ``(n, d_in)``: returns ``(n, d_out)``."""
        h = X
        for W in params:
            h = h @ W.T
        return h

    def end_to_end(self, params) -> jax.Array:
        return end_to_end(params)

    def apply(self, params, X) -> jax.Array:
        """Outputs ``(n, d_out)`` for inputs ``X`` of shape ``(n, d_in)``, layer by layer."""
        return Net._apply(params, X)

    def init(self, key, scheme: str = "gaussian", *, scale: float | None = None,
             gamma: float | None = None, target=None, dtype=None) -> Params:
        """Initial weights.

        Schemes (``R_i`` below is the residual branch on residual blocks and the whole matrix otherwise):

        - ``"gaussian"``: iid ``N(0, scale**2)`` entries; ``scale`` is required.
        - ``"width_power"``: iid ``N(0, w**-gamma)`` with ``w`` the largest hidden width (jacot2021, standard
          parametrisation on every layer); ``gamma`` is required.
        - ``"fan_in"``: iid ``N(0, scale**2 / fan_in)`` (LeCun for ``scale=1``, Kaiming for ``sqrt(2)``).
        - ``"xavier"``: iid ``N(0, scale**2 * 2 / (fan_in + fan_out))``.
        - ``"zero"``: all zeros (the identity map for a residual net).
        - ``"identity"``: ``scale`` times the rectangular identity (``scale`` defaults to 1).
        - ``"orthogonal"``: ``scale`` times a Haar-random (semi-)orthogonal matrix (``scale`` defaults to 1).
        - ``"balanced"``: an exactly balanced factorisation of ``target`` (shape ``(d_out, d_in)``):
          with ``target = U S V^T`` of rank r, ``W_1 = Q_1 S^{1/L} V^T``, ``W_i = Q_i S^{1/L} Q_{i-1}^T``,
          ``W_L = U S^{1/L} Q_{L-1}^T`` with random orthonormal ``Q_i`` (h_i x r), so that
          ``W_{i+1}^T W_{i+1} = W_i W_i^T`` and ``W_L ... W_1 = target`` exactly. Needs every hidden width >= r.
          No identity is added on residual nets.

        An option that does not apply to the scheme (``scale`` for ``"zero"``, ``gamma`` outside
        ``"width_power"``, ...) is a :class:`~dlnlab.errors.ConfigError`, never silently ignored.
        """
        one_of("scheme", scheme, INIT_SCHEMES)
        given = {"scale": scale, "gamma": gamma, "target": target}
        for option in _INIT_OPTIONS:
            if given[option] is not None and option not in _APPLIES[scheme]:
                uses = ", ".join(_APPLIES[scheme]) or "no option"
                got = given[option]
                got = f"an array of shape {np.shape(got)}" if np.ndim(got) else repr(got)
                raise ConfigError(f"{option}: does not apply to scheme {scheme!r} (which takes {uses}); "
                                  f"expected None, got {got}")
        dtype = as_dtype("dtype", dtype)
        key = as_key("key", key)
        if scheme == "balanced":
            return _finite(self._balanced(key, target, dtype), "target", "(given)")
        keys = jax.random.split(key, self.depth)
        hidden = self.widths[1:-1] or self.widths
        params = []
        for i, ((m, n), k) in enumerate(zip(self.shapes, keys)):
            if scheme == "gaussian":
                if scale is None:
                    raise ConfigError("scale: required for scheme 'gaussian' (the entry standard deviation)")
                std = as_float("scale", scale, low=0.0)
                W = std * jax.random.normal(k, (m, n), dtype)
            elif scheme == "width_power":
                if gamma is None:
                    raise ConfigError("gamma: required for scheme 'width_power' (variance w**-gamma)")
                g = as_float("gamma", gamma)
                try:
                    std = float(max(hidden)) ** (-g / 2)
                except OverflowError:
                    std = math.inf
                if not math.isfinite(std):
                    raise ConfigError(f"gamma: width**(-gamma/2) overflows for width {max(hidden)}, "
                                      f"got gamma={g}; expected a larger gamma")
                W = std * jax.random.normal(k, (m, n), dtype)
            elif scheme in ("fan_in", "xavier"):
                gain = 1.0 if scale is None else as_float("scale", scale, low=0.0)
                var = 1.0 / n if scheme == "fan_in" else 2.0 / (n + m)
                W = gain * np.sqrt(var) * jax.random.normal(k, (m, n), dtype)
            elif scheme == "zero":
                W = jnp.zeros((m, n), dtype)
            elif scheme == "identity":
                W = (1.0 if scale is None else as_float("scale", scale)) * jnp.eye(m, n, dtype=dtype)
            else:  # orthogonal
                W = (1.0 if scale is None else as_float("scale", scale)) * _haar(k, m, n, dtype)
            if self.residual_layers[i] and scheme != "identity":
                W = W + jnp.eye(m, dtype=dtype)
            params.append(W)
        if scheme == "width_power":
            return _finite(tuple(params), "gamma", gamma)
        return _finite(tuple(params), "scale", scale)

    def _balanced(self, key, target, dtype) -> Params:
        if target is None:
            raise ConfigError("target: required for scheme 'balanced' (the end-to-end matrix to factorise)")
        T = as_array("target", target, ndim=2)
        if T.shape != (self.widths[-1], self.widths[0]):
            raise DataError(f"target: expected shape {(self.widths[-1], self.widths[0])}, got {T.shape}")
        U, s, Vt = np.linalg.svd(T, full_matrices=False)
        r = int(np.sum(s > s.max(initial=0.0) * 1e-12 * max(T.shape))) if s.size else 0
        narrow = [h for h in self.widths[1:-1] if h < r]
        if narrow:
            raise DataError(f"target: has rank {r} but the net has a hidden width {min(narrow)} < {r}; expected every "
                            f"hidden width >= {r}")
        L = self.depth
        root = np.diag(s[:r] ** (1.0 / L))
        bases = [Vt[:r].T]  # d_in x r
        for h, k in zip(self.widths[1:-1], jax.random.split(key, max(L - 1, 1))):
            bases.append(np.asarray(_haar(k, h, r, jnp.zeros(()).dtype), dtype=np.float64))
        bases.append(U[:, :r])
        return tuple(jnp.asarray(bases[i + 1] @ root @ bases[i].T, dtype) for i in range(L))


def _decay_terms(params, residual_layers) -> tuple[jax.Array, ...]:
    out = []
    for W, res in zip(params, residual_layers):
        R = W - jnp.eye(*W.shape, dtype=W.dtype) if res else W
        out.append(jnp.sum(R * R))
    return tuple(out)


@dataclass(frozen=True)
class AnyDLN(AbstractModel):
    """A DLN of any depth and hidden widths with a fixed end-to-end shape ``(d_out, d_in)``: the model of a
    :class:`dlnlab.Objective` built without ``net=`` (the params alone fix the widths)."""

    n_in: int
    n_out: int
    is_dln = True

    @property
    def d_in(self) -> int:
        return self.n_in

    @property
    def d_out(self) -> int:
        return self.n_out

    def end_to_end(self, params) -> jax.Array:
        return end_to_end(params)

    def apply(self, params, X) -> jax.Array:
        return Net._apply(params, X)

    def check_params(self, params, name: str = "params") -> Params:
        return check_matrix_chain(params, name=name, d_in=self.n_in, d_out=self.n_out)

    def decay_terms(self, params) -> tuple[jax.Array, ...]:
        return _decay_terms(params, (False,) * len(params))


def _finite(params: Params, field: str, value=None) -> Params:
    """Initial weights are finite or the option that made them overflow is named."""
    for i, W in enumerate(params):
        if isinstance(W, jax.core.Tracer):  # under jit/vmap: values are unknown here
            return params
        if not bool(jnp.all(jnp.isfinite(W))):
            raise ConfigError(f"{field}: the initial weights overflow with {field}={value!r} (W_{i + 1} has "
                              f"NaN or inf entries in {W.dtype}); expected a smaller value")
    return params


def _haar(key, m: int, n: int, dtype) -> jax.Array:
    """A Haar-distributed matrix with orthonormal rows (m <= n) or columns (m >= n)."""
    big, small = max(m, n), min(m, n)
    G = jax.random.normal(key, (big, small))  # JAX's default float (64-bit only when the user enabled it)
    Q, R = jnp.linalg.qr(G)
    Q = Q * jnp.sign(jnp.diagonal(R))  # sign fix makes the distribution Haar
    return (Q if m >= n else Q.T).astype(dtype)
