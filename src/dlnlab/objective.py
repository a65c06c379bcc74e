"""Training objectives: the interface the engine trains, and a problem + a model + a loss + decay + noise.

:class:`AbstractObjective` is what :func:`dlnlab.train`, the summaries and the curvature tools need: ``value``
(and by default ``grad``/``value_and_grad`` by autodiff), an unbiased ``sample_value`` for SGD, eager
``check_params``. :class:`Objective` is the library's one: ``problem.cost(model.end_to_end(params), loss)`` plus
weight decay, or the exact expectation over neuron noise. It dispatches through three small interfaces, never on
concrete types: problems (:class:`dlnlab.AbstractProblem`), losses (:class:`dlnlab.AbstractLoss`) and models
(:class:`dlnlab.AbstractModel`: a DLN, a diagonal net, ...), so a new problem, loss or model is one subclass.

Normalisation (fixed across dlnlab):

- squared loss ``E_x ||f(x) - y||^2`` (mean over samples, no 1/2);
- logistic loss ``E log(1 + exp(-y f(x)))`` and exponential loss ``E exp(-y f(x))`` (labels +-1);
- weight decay adds ``sum_i gamma_i ||W_i||_F^2`` (no 1/2; on residual blocks of a net given as ``net=``,
  ``||W_i - I||_F^2``; for a diagonal net, ``||w_+||^2`` and ``||w_-||^2``). optax/PyTorch ``weight_decay=wd`` on
  the gradient corresponds to ``gamma = wd / 2``;
- stochastic neurons multiply every *hidden* unit by independent noise of mean 1 and variance s^2; the exact
  expected squared loss follows ziyin2022's moment recursion (:meth:`dlnlab.Regression.noisy_cost`);
- overflow: every loss here is non-negative, so a value that overflows the dtype (huge finite weights) is
  ``+inf``, never NaN (an intermediate ``inf - inf`` would otherwise give NaN).

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
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import as_float, as_int, check_params_tree
from ._losses import LOSSES as _LOSS_OBJECTS
from ._losses import AbstractLoss, as_loss
from ._model import AbstractModel
from .errors import ConfigError, DataError
from .nets import AnyDLN
from .problems import AbstractNoise, AbstractProblem

__all__ = ["AbstractObjective", "Objective", "as_objective", "LOSSES"]

LOSSES = tuple(_LOSS_OBJECTS)  # the loss names Objective accepts


def _no_nan(v: jax.Array) -> jax.Array:
    """A non-negative loss that overflowed (``inf``, or NaN from ``inf - inf``) is ``+inf``."""
    return jnp.where(jnp.isfinite(v), v, jnp.inf)


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
    """The loss of a model on a problem, with weight decay and optional stochastic neurons.

    Args:
        problem: any :class:`dlnlab.AbstractProblem`: :class:`dlnlab.Regression`, :class:`dlnlab.Classification`,
            :class:`dlnlab.MatrixCompletion`, :class:`dlnlab.MatrixSensing`, or your own.
        loss: ``"squared"`` (every problem), ``"logistic"`` or ``"exponential"`` (labels +-1:
            :class:`dlnlab.Classification`), or an :class:`dlnlab.AbstractLoss`; the problem says which apply.
        weight_decay: one ``gamma >= 0`` for every parameter array, or one per array (per layer of a DLN).
        noise: ``None``, :class:`dlnlab.Dropout` or :class:`dlnlab.MultiplicativeNoise` (DLNs on a problem with an
            exact expectation, i.e. :class:`dlnlab.Regression`; sampled masks in :meth:`sample_value`).
        net: the model, an :class:`dlnlab.AbstractModel`: a :class:`dlnlab.Net` (validates shapes; weight decay
            acts on ``W - I`` for residual blocks), a :class:`dlnlab.DiagonalNet`, ... ``None``: a DLN of any
            depth and widths whose end-to-end shape is the problem's.

    ``value``/``grad`` are pure functions of ``params`` and can be jitted, vmapped and differentiated. Called
    eagerly on concrete weights they first check them (a wrong shape, a non-floating dtype, NaN or inf in
    ``params[i]`` is a :class:`dlnlab.errors.DataError` naming it); traced weights (inside jit/vmap/grad, as in
    the training loops) are not checked, so compiled code pays nothing. A value that overflows is ``+inf``.
    """

    problem: AbstractProblem
    weight_decay: jax.Array
    loss_fn: AbstractLoss = eqx.field(static=True)
    noise: AbstractNoise | None = eqx.field(static=True)
    net: AbstractModel | None = eqx.field(static=True)
    model: AbstractModel = eqx.field(static=True)

    def __init__(self, problem, *, loss="squared", weight_decay=0.0, noise=None, net=None):
        if not isinstance(problem, AbstractProblem):
            raise ConfigError(
                "problem: expected a dl.AbstractProblem (dl.Regression, dl.Classification, dl.MatrixCompletion, "
                f"dl.MatrixSensing, ...), got {type(problem).__name__}"
            )
        loss_fn = problem.check_loss(as_loss(loss))
        if net is not None and not isinstance(net, AbstractModel):
            raise ConfigError(f"net: expected a dl.Net, dl.DiagonalNet (a dl.AbstractModel) or None, "
                              f"got {type(net).__name__}")
        model = AnyDLN(problem.d_in, problem.d_out) if net is None else net
        if (model.d_in, model.d_out) != (problem.d_in, problem.d_out):
            shown = getattr(model, "widths", None) or f"d_in={model.d_in}, d_out={model.d_out}"
            raise DataError(f"net: {shown} does not match the problem: expected d_in={problem.d_in} and "
                            f"d_out={problem.d_out}")
        if noise is not None:
            if not isinstance(noise, AbstractNoise):
                raise ConfigError(f"noise: expected None, dl.Dropout or dl.MultiplicativeNoise, got {noise!r}")
            if not model.is_dln:
                raise ConfigError(f"noise: stochastic neurons act on the hidden units of a DLN; expected None for a "
                                  f"{type(model).__name__}, got {noise!r}")
            if not problem.supports_noise:
                raise ConfigError(f"noise: expected None for a {type(problem).__name__} problem (stochastic neurons "
                                  f"need an exact expectation, e.g. dl.Regression), got {noise!r}")
        self.problem = problem
        self.loss_fn = loss_fn
        self.weight_decay = _as_decay(weight_decay, model)
        self.noise = noise
        self.net = net
        self.model = model

    @property
    def loss(self) -> str:
        """The loss's name (``"squared"``, ``"logistic"``, ``"exponential"``, ...)."""
        return self.loss_fn.name

    @property
    def n_samples(self) -> int | None:
        return self.problem.n_samples

    @property
    def stochastic(self) -> bool:
        return self.noise is not None

    @property
    def is_dln(self) -> bool:
        return self.model.is_dln

    # -- pieces -------------------------------------------------------------------------------------------
    def check_params(self, params):
        """Validate params against the model and the problem: structure, shapes, a real floating dtype and
        finite values, naming ``params[i]``. Traced weights pass (values unknown). Returns canonical params
        (a tuple of arrays for a DLN)."""
        params = self.model.check_params(params)
        if self.weight_decay.ndim == 1:
            n = self.model.n_decay_terms(params)
            if self.weight_decay.shape[0] != n:
                raise ConfigError(f"weight_decay: expected {n} values (one per parameter array), "
                                  f"got {self.weight_decay.shape[0]}")
        return params

    def _check(self, params, *, differentiate: bool = False):  # alias while callers migrate to check_params
        return self.check_params(params)

    def penalty(self, params) -> jax.Array:
        """``sum_i gamma_i * term_i`` over the model's decay terms (``||W_i - [residual] I||_F^2`` for a DLN)."""
        terms = self.model.decay_terms(params)
        gammas = jnp.broadcast_to(self.weight_decay, (len(terms),))
        total = 0.0
        for g, t in zip(gammas, terms):
            total = total + g.astype(t.dtype) * t  # float32 params keep a float32 loss
        return total

    def _data(self, params) -> jax.Array:
        if self.noise is None or len(params) == 1:
            return self.problem.cost(self.model.end_to_end(params), self.loss_fn)
        return self.problem.noisy_cost(params, self.noise, self.loss_fn)

    def data_loss(self, params) -> jax.Array:
        """The loss without weight decay (exactly averaged over the neuron noise, if any); overflow gives inf."""
        return _no_nan(self._data(self.check_params(params)))

    def value(self, params) -> jax.Array:
        """The objective: expected data loss plus weight decay (``+inf`` when it overflows, never NaN)."""
        params = self.check_params(params)
        return _no_nan(self._data(params) + self.penalty(params))

    # -- stochastic estimates (SGD) -------------------------------------------------------------------------
    def sample_value(self, params, key, *, batch_size: int | None = None) -> jax.Array:
        """An unbiased estimate of :meth:`value` from a minibatch and/or sampled noise masks.

        Minibatches (``batch_size``) draw ``batch_size`` distinct terms of the problem (samples, observed
        entries, measurements) uniformly at random; a problem without samples (a regression built from moments)
        refuses ``batch_size``. With neuron noise, problems with input samples draw one mask per sample and
        hidden unit; without samples, one mask per hidden unit shared by the data (unbiased by linearity).
        """
        params = self.check_params(params)
        idx = None
        k_batch, k_noise = jax.random.split(key)
        if batch_size is not None:
            batch_size = as_int("batch_size", batch_size, low=1)
            n = self.n_samples
            if n is None:
                raise ConfigError(f"batch_size: this {type(self.problem).__name__} has no samples to draw "
                                  "minibatches from (e.g. built from moments); expected None")
            if batch_size > n:
                raise ConfigError(f"batch_size: expected at most {n} (the sample count), got {batch_size}")
            idx = self.problem.batch_indices(k_batch, batch_size)
        prob = self.problem
        if self.noise is None or len(params) == 1:
            A = self.model.end_to_end(params)
            data = prob.cost(A, self.loss_fn) if idx is None else prob.batch_cost(A, idx, self.loss_fn)
        elif prob.has_inputs:
            h, Y = prob.batch(idx)
            keys = jax.random.split(k_noise, len(params))
            for i, W in enumerate(params):
                h = h @ W.T
                if i < len(params) - 1:
                    h = h * self.noise.sample(keys[i], h.shape, h.dtype)
            data = jnp.mean(self.loss_fn(h, Y))
        else:  # moments only: a masked product
            data = prob.cost(self._masked_product(params, k_noise), self.loss_fn)
        return _no_nan(data + self.penalty(params))

    def _masked_product(self, params, key):
        keys = jax.random.split(key, len(params))
        A = params[0]
        for i, W in enumerate(params[1:]):
            mask = self.noise.sample(keys[i], A.shape[:1], A.dtype)
            A = W @ (mask[:, None] * A)
        return A


def _as_decay(weight_decay, model: AbstractModel) -> jax.Array:
    """One ``gamma >= 0`` or one per parameter array (checked against the model where it knows the count)."""
    if isinstance(weight_decay, jax.core.Tracer):
        return weight_decay  # inside jit/vmap (a batched sweep over decays): checked by the caller
    wd = np.asarray(weight_decay, dtype=object)
    if wd.ndim > 1:
        raise ConfigError(f"weight_decay: expected a number or one number per layer, got {weight_decay!r}")
    if wd.ndim == 0:
        return jnp.asarray(as_float("weight_decay", wd.item(), low=0.0))
    if wd.shape[0] == 0:
        raise ConfigError("weight_decay: expected a number or one number per layer, got []")
    wd = np.array([as_float(f"weight_decay[{i}]", g, low=0.0) for i, g in enumerate(wd)])
    expected = model.n_decay_terms(None)  # None: the count depends on the params (checked in check_params)
    if expected is not None and wd.shape[0] != expected:
        raise ConfigError(f"weight_decay: expected {expected} values (one per parameter array), got {wd.shape[0]}")
    return jnp.asarray(wd)
