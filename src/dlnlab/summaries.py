"""What a training run records: named summaries, cheap by default, user callables welcome.

A summary maps the state of a run at a record time to an array. The training engine evaluates the loss and the
gradient once per record and hands them to every summary (:class:`Point`), so ``loss`` and ``grad_norm`` cost
nothing beyond that one gradient. Summaries are evaluated inside the compiled training loop; the default
``dl.Record()`` records ``("loss", "grad_norm")`` only, because an SVD or a Hessian eigenvalue per record can cost
more than the steps between records.

Named summaries (use the name in ``dl.Record(summaries=...)`` or the object itself):

- :data:`loss` -- the objective (with weight decay; the exact expectation over neuron noise);
- :data:`grad_norm` -- the Euclidean norm of the gradient over all parameters;
- :data:`singular_values` -- singular values of the end-to-end matrix ``A = W_L ... W_1``, descending (DLN);
- :data:`layer_norms` -- Frobenius norm of each layer (DLN);
- :data:`balancedness` -- the normalised scalar of :func:`dlnlab.diagnostics.balancedness` (DLN);
- :data:`alignment` -- ``|v_{i+1}^T u_i|`` of adjacent layers' top singular vectors (ji2019; DLN);
- :data:`sharpness` -- the top Hessian eigenvalue of the loss (any objective). Tracked by Rayleigh-Ritz on a
  Krylov space of :attr:`Sharpness.iterations` Hessian-vector products started from the sum of the last two
  records' top Ritz vectors (a warm-started Lanczos that also follows a period-two orbit of GD), so a few HVPs
  per record suffice while the spectrum moves slowly. The
  first record (and every record of a gradient flow, whose records are computed independently) uses
  :attr:`Sharpness.cold_iterations` from a fixed start vector.

DLN summaries need params that are a tuple of weight matrices (``objective.is_dln``); the engine refuses them for
other objectives with a :class:`~dlnlab.errors.ConfigError` before anything is compiled.

A user summary is any callable ``params -> array`` (recorded under its ``__name__``) or ``params -> dict`` of
arrays (recorded under the dict's keys), or a :class:`Function` with an explicit name.

Example:
    >>> import jax, numpy as np, dlnlab as dl
    >>> prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
    >>> p0 = dl.Net((2, 3, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.3)
    >>> rec = dl.Record(n=4, summaries=("loss", "sharpness", dl.summaries.Function("w1", lambda p: p[0][0, 0])))
    >>> run = dl.train(dl.Objective(prob), p0, dl.GD(lr=0.05, steps=200), record=rec)
    >>> sorted(run.history)
    ['loss', 'sharpness', 'w1']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._checks import as_int
from .diagnostics import alignment as _alignment
from .diagnostics import balancedness as _balancedness
from .diagnostics import end_to_end as _end_to_end
from .diagnostics import layer_norms as _layer_norms
from .diagnostics import singular_values as _singular_values
from .errors import ConfigError

__all__ = ["Point", "Summary", "Function", "Sharpness", "NAMED", "resolve", "loss", "grad_norm",
           "singular_values", "layer_norms", "balancedness", "alignment", "sharpness"]


class Point(NamedTuple):
    """The state of a run at a record time, as summaries see it (``loss`` and ``grad`` computed once)."""

    objective: Any
    params: Any
    loss: jax.Array
    grad: Any


class Summary:
    """Base class: ``name``, whether it needs DLN params, and ``__call__(point, state) -> (value, state)``.

    ``state`` is ``None`` at a cold evaluation; a summary that warm-starts (:class:`Sharpness`) returns the state
    to pass to its next evaluation. Subclasses are frozen dataclasses (compared and hashed by value: they are
    part of the key of the compiled runners).
    """

    name: ClassVar[str] = ""
    needs_dln: ClassVar[bool] = False

    def __call__(self, point: Point, state=None):
        raise NotImplementedError


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))


@dataclass(frozen=True)
class _Loss(Summary):
    name: ClassVar[str] = "loss"

    def __call__(self, point, state=None):
        return point.loss, state


@dataclass(frozen=True)
class _GradNorm(Summary):
    name: ClassVar[str] = "grad_norm"

    def __call__(self, point, state=None):
        return _tree_norm(point.grad), state


@dataclass(frozen=True)
class _SingularValues(Summary):
    name: ClassVar[str] = "singular_values"
    needs_dln: ClassVar[bool] = True

    def __call__(self, point, state=None):
        return _singular_values(_end_to_end(point.params)), state


@dataclass(frozen=True)
class _LayerNorms(Summary):
    name: ClassVar[str] = "layer_norms"
    needs_dln: ClassVar[bool] = True

    def __call__(self, point, state=None):
        return _layer_norms(point.params), state


@dataclass(frozen=True)
class _Balancedness(Summary):
    name: ClassVar[str] = "balancedness"
    needs_dln: ClassVar[bool] = True

    def __call__(self, point, state=None):
        return _balancedness(point.params).normalised, state


@dataclass(frozen=True)
class _Alignment(Summary):
    name: ClassVar[str] = "alignment"
    needs_dln: ClassVar[bool] = True

    def __call__(self, point, state=None):
        return _alignment(point.params), state


@dataclass(frozen=True)
class Sharpness(Summary):
    """The top Hessian eigenvalue of the loss, tracked by warm-started Lanczos (Rayleigh-Ritz, see the module
    docstring). ``iterations`` HVPs per warm record, ``cold_iterations`` at a cold one (both capped at the
    number of parameters, where the Krylov space is the whole space and the value is exact).

    The Krylov basis is fully reorthogonalised and the Ritz values come from the projected matrix
    ``V H V^T`` (not the three-term recurrence), so a basis that breaks down (an invariant subspace, e.g. a
    warm vector that is an exact eigenvector) is continued with a fixed pseudo-random direction and the
    result stays a Rayleigh-Ritz value of an orthonormal basis: never above the true top eigenvalue, and
    equal to it when the top eigenvector lies in the space.
    """

    iterations: int = 8
    cold_iterations: int = 40
    name: ClassVar[str] = "sharpness"

    def __post_init__(self):
        as_int("Sharpness.iterations", self.iterations, low=1)
        as_int("Sharpness.cold_iterations", self.cold_iterations, low=1)

    def __call__(self, point, state=None):
        x, unravel = ravel_pytree(point.params)
        value = point.objective.value

        def hvp(v):
            return jax.jvp(lambda y: ravel_pytree(jax.grad(lambda q: value(unravel(q)))(y))[0], (x,), (v,))[1]

        if state is None:
            block = jax.random.normal(jax.random.key(0, impl="rbg"), (1,) + x.shape, x.dtype)
            m = self.cold_iterations
        else:
            a, b = state[0], state[1]  # the last two records' Ritz vectors, see below; their sum starts Lanczos
            block, m = (a + jnp.where(jnp.vdot(a, b) < 0, -1.0, 1.0) * b)[None], self.iterations
        theta, v, second = _lanczos_top(hvp, block, min(m, x.size))
        # The state keeps the top Ritz vectors of the last two records: on a period-two orbit of GD (the edge of
        # stability) consecutive iterates have top eigenvectors in different invariant subspaces of the Hessian
        # (different modes of a DLN), and a Krylov space started from the previous record's vector alone never
        # leaves that subspace; the vector from two records back is the warm start that orbit needs. Starting from
        # their (sign-aligned) sum keeps the cost at ``iterations`` HVPs and equals the old start when they agree.
        # (A cold record has no previous one: its second Ritz vector stands in, the likely top of the next point.)
        previous = second if state is None else state[0]
        return theta, jnp.stack([v, previous])


def _lanczos_top(hvp, block, m: int):
    """Top Ritz pair of the Hessian on the ``m``-dimensional space spanned by the rows of ``block`` (``b`` start
    vectors) and the Krylov space of their best combination (full reorthogonalisation)."""
    b, n = block.shape
    dtype = block.dtype
    eps = jnp.finfo(dtype).eps
    V = jnp.zeros((m, n), dtype)
    W = jnp.zeros((m, n), dtype)
    key = jax.random.key(1, impl="rbg")  # RngBitGenerator: threefry in this loop doubled the compile time

    def orth(V, w):
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w = w - V.T @ (V @ w)
        return w

    def body(j, c):
        V, W = c
        # the j-th candidate: the start vectors, then H times the top Ritz vector of their span, then a Lanczos
        # chain from there (H times the previous basis vector), so the best start gets m - b + 1 Krylov steps
        Tb = V[:b] @ W[:b].T
        y = jnp.linalg.eigh(0.5 * (Tb + Tb.T))[1][:, -1]
        cand = jnp.where(j < b, block[jnp.minimum(j, b - 1)], jnp.where(j == b, W[:b].T @ y, W[jnp.maximum(j - 1, 0)]))
        r = orth(V, cand)
        # a start vector already in the span (the two warm vectors agree: no oscillation) continues the chain
        dup = (j < b) & (jnp.linalg.norm(r) <= 1e-6 * jnp.linalg.norm(cand))
        cand = jnp.where(dup, W[jnp.maximum(j - 1, 0)], cand)
        r = jnp.where(dup, orth(V, cand), r)
        scale = jnp.linalg.norm(cand)
        beta = jnp.linalg.norm(r)
        fresh = orth(V, jax.random.normal(jax.random.fold_in(key, j), (n,), dtype))
        broken = beta <= 1e3 * eps * jnp.where(scale > 0, scale, 1.0)
        v = jnp.where(broken, fresh / jnp.linalg.norm(fresh), r / jnp.where(broken, 1.0, beta))
        return V.at[j].set(v), W.at[j].set(hvp(v))

    V, W = jax.lax.fori_loop(0, m, body, (V, W))
    T = V @ W.T
    T = 0.5 * (T + T.T)
    vals, vecs = jnp.linalg.eigh(T)
    return vals[-1], V.T @ vecs[:, -1], V.T @ vecs[:, max(m - 2, 0)]


@dataclass(frozen=True)
class Function(Summary):
    """A user summary: ``fn(params)`` returns an array (recorded under ``name``) or a dict of arrays (recorded
    under its keys; ``name`` is then only a label). Equal when the name and the function object are equal."""

    name: str = ""
    fn: Callable | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"summaries: expected a non-empty name, got {self.name!r}")
        if not callable(self.fn):
            raise ConfigError(f"summaries[{self.name!r}]: expected a callable params -> array, got "
                              f"{type(self.fn).__name__}")

    def __call__(self, point, state=None):
        out = self.fn(point.params)
        if isinstance(out, dict):
            return {k: jnp.asarray(v) for k, v in out.items()}, state
        return jnp.asarray(out), state


loss = _Loss()
grad_norm = _GradNorm()
singular_values = _SingularValues()
layer_norms = _LayerNorms()
balancedness = _Balancedness()
alignment = _Alignment()
sharpness = Sharpness()

NAMED = {s.name: s for s in (loss, grad_norm, singular_values, layer_norms, balancedness, alignment, sharpness)}


def resolve(item, where: str = "summaries") -> Summary:
    """A :class:`Summary` from a name, a summary object or a callable (see the module docstring)."""
    if isinstance(item, Summary):
        return item
    if isinstance(item, str):
        if item not in NAMED:
            raise ConfigError(f"{where}: unknown summary {item!r}; expected one of {', '.join(map(repr, NAMED))} "
                              "or a callable params -> array")
        return NAMED[item]
    if callable(item):
        return Function(getattr(item, "__name__", None) or type(item).__name__, item)
    raise ConfigError(f"{where}: expected a summary name, a dl.summaries object or a callable, got {item!r}")


def evaluate(summaries, point: Point, states):
    """Every summary at ``point``: ``(dict name -> value, new states)``; ``states`` is a tuple (``None`` entries
    for a cold evaluation). Names must be unique."""
    values, new = {}, []
    for s, st in zip(summaries, states):
        out, st = s(point, st)
        items = out.items() if isinstance(out, dict) else ((s.name, out),)
        for k, v in items:
            if k in values:
                raise ConfigError(f"summaries: the name {k!r} is recorded twice; expected unique names")
            values[k] = v
        new.append(st)
    return values, tuple(new)
