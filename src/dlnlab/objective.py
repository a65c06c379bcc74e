"""Training objectives: a problem, a loss, weight decay and stochastic neurons.

Normalisation (fixed across dlnlab):

- squared loss ``E_x ||f(x) - y||^2`` (mean over samples, no 1/2);
- logistic loss ``E log(1 + exp(-y f(x)))`` and exponential loss ``E exp(-y f(x))`` (labels +-1);
- weight decay adds ``sum_i gamma_i ||W_i||_F^2`` (no 1/2; on residual blocks of a net given as ``net=``,
  ``||W_i - I||_F^2``). optax/PyTorch ``weight_decay=wd`` on the gradient corresponds to ``gamma = wd / 2``;
- stochastic neurons multiply every *hidden* unit by independent noise of mean 1 and variance s^2. The exact
  expected squared loss follows the moment recursion (ziyin2022): ``M_0 = Sxx``, ``Q_i = W_i M_{i-1} W_i^T``,
  ``M_i = Q_i + s^2 diag(diag(Q_i))`` for the L-1 hidden layers, then
  ``E||f||^2 = tr(W_L M_{L-1} W_L^T)`` and ``E f^T y = tr(A Syx^T)`` (noise has mean 1).

Example:
    >>> import jax, numpy as np, dlnlab as dl
    >>> prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 2.0)
    >>> obj = dl.Objective(prob, weight_decay=1e-3, noise=dl.Dropout(0.1))
    >>> params = dl.Net((2, 4, 1)).init(jax.random.key(0), scheme="gaussian", scale=0.5)
    >>> bool(obj.value(params) > 0)
    True
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import as_float, as_int, one_of
from .errors import ConfigError, DataError
from .nets import Net, end_to_end
from .problems import Classification, Dropout, MatrixCompletion, MultiplicativeNoise, Regression

__all__ = ["AbstractObjective", "Objective", "as_objective", "LOSSES"]

LOSSES = ("squared", "logistic", "exponential")


def _check_finite(params, *, differentiate: bool = False) -> None:
    """Reject concrete weights that are not finite real numbers (an eager call would return NaN).

    Traced weights (inside jit, vmap or grad: the training loops) are not checked: the check needs the values,
    and compiled code pays nothing for it.
    """
    for i, W in enumerate(params):
        if isinstance(W, jax.core.Tracer):
            continue
        a = np.asarray(W)
        if a.dtype.kind not in ("f" if differentiate else "iuf"):  # jax.grad needs floating-point inputs
            raise DataError(f"params[{i}]: expected real floating-point weights, got dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            where = tuple(int(j) for j in np.argwhere(~np.isfinite(a))[0])
            raise DataError(f"params[{i}]: contains NaN or infinite values (first at index {where}); "
                            "expected finite weights")


def check_params_tree(params, *, name: str = "params"):
    """Eager validation of any pytree of parameters: at least one leaf, every leaf a real floating-point array,
    concrete leaves finite. Errors name the leaf (``params[1]``, ``params['w']``). Tracers pass through (their
    dtype is still checked: it is static). Returns ``params`` with array-likes converted to JAX arrays."""
    try:
        leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    except Exception as exc:  # noqa: BLE001 - an unflattenable object
        raise DataError(f"{name}: expected a pytree of arrays ({exc})") from None
    if not leaves_with_path:
        raise DataError(f"{name}: expected at least one parameter array, got an empty pytree")
    out = []
    for path, leaf in leaves_with_path:
        where = name + jax.tree_util.keystr(path)
        if isinstance(leaf, jax.core.Tracer):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise DataError(f"{where}: expected real floating-point weights, got dtype {leaf.dtype}")
            out.append(leaf)
            continue
        try:
            a = np.asarray(leaf)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{where}: expected a numeric array, got {type(leaf).__name__}") from exc
        if a.dtype.kind != "f":
            raise DataError(f"{where}: expected real floating-point weights, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            bad = tuple(int(j) for j in np.argwhere(~np.isfinite(a))[0]) if a.ndim else ()
            raise DataError(f"{where}: contains NaN or infinite values (first at index {bad}); "
                            "expected finite weights")
        out.append(leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf))
    return jax.tree_util.tree_unflatten(treedef, out)


class AbstractObjective(eqx.Module):
    """The interface the training engine, the summaries and the curvature tools work with.

    A subclass implements :meth:`value` (a pure, differentiable ``params -> scalar``); everything else has a
    default. Objectives are equinox modules: pass them to ``eqx.filter_jit``-compiled code as arguments (their
    arrays are traced, their structure is static), never close over them.

    - :meth:`value_and_grad`, :meth:`grad`: by ``jax`` autodiff of :meth:`value` (after :meth:`check_params`).
    - :meth:`sample_value`: an unbiased stochastic estimate of :meth:`value` (minibatches of the
      :attr:`n_samples` samples, sampled neuron noise); the default is exact and refuses ``batch_size``.
    - :meth:`check_params`: eager validation (structure, dtype, finiteness) naming the place; tracers pass.
    - :attr:`n_samples`: the number of samples a minibatch draws from (``None``: no minibatches);
      :attr:`stochastic`: :meth:`sample_value` is random even without minibatches (e.g. neuron noise);
      :attr:`is_dln`: params are a DLN weight tuple ``(W_1, ..., W_L)``, so end-to-end summaries apply.

    Example:
        >>> import jax.numpy as jnp, dlnlab as dl
        >>> class Quadratic(dl.AbstractObjective):
        ...     def value(self, params):
        ...         return jnp.sum(params["w"] ** 2)
        >>> float(Quadratic().grad({"w": jnp.array([1.0, 2.0])})["w"][1])
        4.0
    """

    @abc.abstractmethod
    def value(self, params) -> jax.Array:
        """The objective at ``params`` (a scalar)."""

    def value_and_grad(self, params):
        """``(value, grad)`` of :meth:`value`; the gradient has the structure of ``params``."""
        return jax.value_and_grad(self.value)(self.check_params(params))

    def grad(self, params):
        """Gradient of :meth:`value` with respect to every parameter array."""
        return jax.grad(self.value)(self.check_params(params))

    def sample_value(self, params, key, *, batch_size: int | None = None) -> jax.Array:
        """An unbiased stochastic estimate of :meth:`value`. The default has no randomness: it returns
        :meth:`value` and refuses a ``batch_size`` (there are no samples to draw a minibatch from)."""
        if batch_size is not None:
            raise ConfigError(f"batch_size: {type(self).__name__} has no samples to draw minibatches from; "
                              f"expected None, got {batch_size!r}")
        return self.value(params)

    def check_params(self, params):
        """Validate ``params`` eagerly (a pytree of finite real floating-point arrays); return them."""
        return check_params_tree(params)

    @property
    def n_samples(self) -> int | None:
        """How many samples a minibatch draws from (``None``: no minibatches)."""
        return None

    @property
    def stochastic(self) -> bool:
        """True when :meth:`sample_value` is random without minibatches (e.g. sampled neuron noise)."""
        return False

    @property
    def is_dln(self) -> bool:
        """True when params are a DLN weight tuple ``(W_1, ..., W_L)`` (end-to-end summaries apply)."""
        return False


class _FunctionObjective(AbstractObjective):
    """Any ``params -> scalar`` callable as an objective (see :func:`as_objective`)."""

    fn: Callable

    def value(self, params) -> jax.Array:
        return self.fn(params)


def as_objective(f) -> AbstractObjective:
    """An :class:`AbstractObjective` from ``f``: returned unchanged if it is one already, else a callable
    ``params -> scalar`` on any pytree of params is wrapped (``is_dln`` False, no minibatches, deterministic).

    Example:
        >>> import jax.numpy as jnp, dlnlab as dl
        >>> obj = dl.as_objective(lambda p: jnp.sum(p[0] ** 2) + jnp.sum(p[1]))
        >>> float(obj.value((jnp.ones(3), jnp.ones(2)))), obj.is_dln
        (5.0, False)
    """
    if isinstance(f, AbstractObjective):
        return f
    if not callable(f):
        raise ConfigError(f"objective: expected a dl.AbstractObjective or a callable params -> scalar, "
                          f"got {type(f).__name__}")
    return _FunctionObjective(f)


class Objective(AbstractObjective):
    """The loss of a DLN on a problem, with weight decay and optional stochastic neurons.

    Args:
        problem: a :class:`Regression`, :class:`Classification` or :class:`MatrixCompletion`.
        loss: ``"squared"`` (any problem), ``"logistic"`` or ``"exponential"`` (classification only).
        weight_decay: one ``gamma >= 0`` for every layer, or a sequence with one per layer.
        noise: ``None``, :class:`Dropout` or :class:`MultiplicativeNoise` (exact expectation for squared-loss
            regression; sampled masks in :meth:`sample_value`).
        net: optional :class:`Net`; validates parameter shapes and makes weight decay act on ``W - I`` for
            residual blocks.

    ``value``/``grad`` are pure functions of ``params`` and can be jitted, vmapped and differentiated. Called
    eagerly on concrete weights they first check them (NaN, inf or a non-numeric dtype in ``params[i]`` is a
    :class:`dlnlab.errors.DataError`); traced weights (inside jit/vmap/grad, as in the training loops) are not
    checked, so compiled code pays nothing.
    """

    problem: Regression | Classification | MatrixCompletion
    weight_decay: jax.Array
    loss: str = eqx.field(static=True)
    noise: Dropout | MultiplicativeNoise | None = eqx.field(static=True)
    net: Net | None = eqx.field(static=True)

    def __init__(self, problem, *, loss: str = "squared", weight_decay=0.0, noise=None, net=None):
        if not isinstance(problem, (Regression, Classification, MatrixCompletion)):
            raise ConfigError(
                "problem: expected dl.Regression, dl.Classification or dl.MatrixCompletion, "
                f"got {type(problem).__name__}"
            )
        one_of("loss", loss, LOSSES)
        if loss != "squared" and not isinstance(problem, Classification):
            raise ConfigError(f"loss: {loss!r} needs a dl.Classification problem; expected 'squared' here")
        if noise is not None and not isinstance(noise, (Dropout, MultiplicativeNoise)):
            raise ConfigError(f"noise: expected None, dl.Dropout or dl.MultiplicativeNoise, got {noise!r}")
        if noise is not None and not isinstance(problem, Regression):
            raise ConfigError(f"noise: expected None for a {type(problem).__name__} problem (stochastic "
                              f"neurons are supported for dl.Regression only), got {noise!r}")
        if net is not None:
            if not isinstance(net, Net):
                raise ConfigError(f"net: expected a dl.Net or None, got {type(net).__name__}")
            if (net.widths[0], net.widths[-1]) != (problem.d_in, problem.d_out):
                raise DataError(
                    f"net: widths {net.widths} do not match the problem: expected d_in={problem.d_in} "
                    f"first and d_out={problem.d_out} last"
                )
        if isinstance(weight_decay, jax.core.Tracer):
            wd = weight_decay  # inside jit/vmap (a batched sweep over decays): checked by the caller
        else:
            wd = np.asarray(weight_decay, dtype=object)
            if wd.ndim > 1:
                raise ConfigError(f"weight_decay: expected a number or one number per layer, got {weight_decay!r}")
            if wd.ndim == 1:
                if wd.shape[0] == 0:
                    raise ConfigError("weight_decay: expected a number or one number per layer, got []")
                wd = np.array([as_float(f"weight_decay[{i}]", g, low=0.0) for i, g in enumerate(wd)])
                if net is not None and wd.shape[0] != net.depth:
                    raise ConfigError(
                        f"weight_decay: expected {net.depth} values (one per layer), got {wd.shape[0]}"
                    )
            else:
                wd = np.asarray(as_float("weight_decay", wd.item(), low=0.0))
        self.problem = problem
        self.loss = loss
        self.weight_decay = jnp.asarray(wd)
        self.noise = noise
        self.net = net

    # -- pieces -------------------------------------------------------------------------------------------
    def check_params(self, params):
        """Validate a DLN weight tuple against the problem (and the net): shapes, a real floating dtype and
        finite values, naming ``params[i]``. Traced weights pass (values unknown). Returns a tuple."""
        params = self._check_shapes(params)
        _check_finite(params, differentiate=True)
        return params

    def _check(self, params, *, differentiate: bool = False):  # alias while callers migrate to check_params
        return self.check_params(params)

    @property
    def n_samples(self) -> int | None:
        return getattr(self.problem, "n_samples", None)

    @property
    def stochastic(self) -> bool:
        return self.noise is not None

    @property
    def is_dln(self) -> bool:
        return True

    def _check_shapes(self, params):
        if self.net is not None:
            return self.net.check_params(params)
        if not isinstance(params, Sequence) or len(params) == 0:
            raise DataError("params: expected a non-empty sequence of weight matrices")
        shapes = [tuple(np.shape(W)) for W in params]
        if any(len(s) != 2 for s in shapes):
            raise DataError(f"params: expected 2-D weight matrices, got shapes {shapes}")
        for i in range(1, len(shapes)):
            if shapes[i][1] != shapes[i - 1][0]:
                raise DataError(f"params[{i}]: expected {shapes[i - 1][0]} columns, got shape {shapes[i]}")
        if (shapes[0][1], shapes[-1][0]) != (self.problem.d_in, self.problem.d_out):
            raise DataError(
                f"params: expected an end-to-end shape ({self.problem.d_out}, {self.problem.d_in}) (the "
                f"problem's (d_out, d_in)), got ({shapes[-1][0]}, {shapes[0][1]})"
            )
        if self.weight_decay.ndim == 1 and self.weight_decay.shape[0] != len(params):
            raise ConfigError(
                f"weight_decay: expected {len(params)} values (one per layer), got {self.weight_decay.shape[0]}"
            )
        return tuple(params)

    def penalty(self, params) -> jax.Array:
        """``sum_i gamma_i ||W_i - [residual] I||_F^2``."""
        residual = self.net.residual_layers if self.net is not None else (False,) * len(params)
        gammas = jnp.broadcast_to(self.weight_decay, (len(params),))
        total = 0.0
        for i, (W, res) in enumerate(zip(params, residual)):
            R = W - jnp.eye(*W.shape, dtype=W.dtype) if res else W
            total = total + gammas[i].astype(W.dtype) * jnp.sum(R * R)  # float32 params keep a float32 loss
        return total

    def data_loss(self, params) -> jax.Array:
        """The loss without weight decay (exactly averaged over the neuron noise, if any)."""
        params = self._check(params)
        prob = self.problem
        if isinstance(prob, Classification):
            m = prob.margins(end_to_end(params))
            if self.loss == "logistic":
                return jnp.mean(jax.nn.softplus(-m))
            if self.loss == "exponential":
                return jnp.mean(jnp.exp(-m))
            return jnp.mean((m - 1.0) ** 2)  # (f - y)^2 = (y f - 1)^2 for y = +-1
        if self.noise is None or len(params) == 1:
            return prob.cost(end_to_end(params))
        s2 = self.noise.variance
        M = prob.Sxx
        for W in params[:-1]:
            Q = W @ M @ W.T
            M = Q + s2 * jnp.diag(jnp.diag(Q))
        W_L = params[-1]
        return jnp.sum((W_L @ M) * W_L) - 2.0 * jnp.sum(end_to_end(params) * prob.Syx) + prob.Syy

    def value(self, params) -> jax.Array:
        """The objective: expected data loss plus weight decay."""
        return self.data_loss(params) + self.penalty(params)

    # -- stochastic estimates (SGD) -------------------------------------------------------------------------
    def sample_value(self, params, key, *, batch_size: int | None = None) -> jax.Array:
        """An unbiased estimate of :meth:`value` from a minibatch and/or sampled noise masks.

        Minibatches (``batch_size``) are drawn without replacement from the stored samples; a regression built
        from moments alone has no samples, so it only samples noise masks (one per hidden unit; by linearity of
        expectation a mask shared across the data is unbiased).
        """
        params = self._check(params)
        prob = self.problem
        k_batch, k_noise = jax.random.split(key)
        X = getattr(prob, "X", None)
        if batch_size is not None:
            batch_size = as_int("batch_size", batch_size, low=1)
            if X is None:
                raise ConfigError("batch_size: this problem has no samples (built from moments); use None")
            if batch_size > X.shape[0]:
                raise ConfigError(f"batch_size: expected at most {X.shape[0]} (the sample count), got {batch_size}")
        if isinstance(prob, MatrixCompletion) or (X is None and self.noise is None):
            return self.value(params)
        if X is None:  # moments and sampled noise
            A = self._masked_product(params, k_noise, ())
            return prob.cost(A) + self.penalty(params)
        n = X.shape[0]
        idx = (jnp.arange(n) if batch_size is None
               else jax.random.choice(k_batch, n, (batch_size,), replace=False))
        Xb = X[idx]
        h = Xb
        keys = jax.random.split(k_noise, len(params))
        for i, W in enumerate(params):
            h = h @ W.T
            if self.noise is not None and i < len(params) - 1:
                h = h * self.noise.sample(keys[i], h.shape, h.dtype)
        if isinstance(prob, Classification):
            m = prob.y[idx] * h[:, 0]
            per = {"logistic": lambda: jax.nn.softplus(-m), "exponential": lambda: jnp.exp(-m),
                   "squared": lambda: (m - 1.0) ** 2}[self.loss]()
            return jnp.mean(per) + self.penalty(params)
        return jnp.mean(jnp.sum((h - prob.Y[idx]) ** 2, axis=1)) + self.penalty(params)

    def _masked_product(self, params, key, batch_shape):
        keys = jax.random.split(key, len(params))
        A = params[0]
        for i, W in enumerate(params[1:]):
            mask = self.noise.sample(keys[i], A.shape[:1], A.dtype)
            A = W @ (mask[:, None] * A)
        return A
