"""The Hessian as an operator: which function, which parameters (all, or a block of layers), flattened vectors.

Every curvature tool works on ``v -> H v`` for the Hessian ``H`` of a scalar function of a flat vector: the
objective's value at the params (or at the params with only the selected leaves free: a Hessian block). The
compiled kernels take the objective and the params as arguments (equinox splits them into traced arrays and a
hashed static structure), so a call with new weights or new data of the same shapes reuses the compiled code.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import ConfigError, DataError, DlnlabError, NumericalError


def value_of(f, params):
    """The objective's value: ``f.value(params)`` for objectives (``dl.Objective`` and every
    ``dl.AbstractObjective``), ``f(params)`` for a plain callable; checked to be a real scalar.

    The check runs while JAX traces the function (shapes are known then), so compiled calls pay nothing for it,
    and a callable that returns a vector, or fails, gets one clear error instead of a raw one from deep inside
    autodiff."""
    value = getattr(f, "value", None)
    try:
        out = value(params) if callable(value) else f(params)
    except DlnlabError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's function failed: say so, with its message
        msg = " ".join(str(exc).split())[:300]
        raise DataError(f"f: evaluating f(params) failed ({type(exc).__name__}: {msg}); expected a function "
                        "params -> scalar that accepts these params") from exc
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        got = f"shape {shape}, dtype {dtype}" if shape is not None else type(out).__name__
        raise DataError(f"f: expected a function params -> real scalar (shape ()), got an output of {got}")
    return out


class Block(eqx.Module):
    """``f`` as a function of the selected leaves of ``params`` only (the others held at their values): its
    Hessian is the block of ``f``'s Hessian on those leaves. A pytree (``f`` and the held leaves are traced),
    so a block of new params reuses the compiled kernels."""

    f: object
    full: object
    layers: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, sub):
        leaves, treedef = jax.tree.flatten(self.full)
        for i, leaf in zip(self.layers, sub, strict=True):
            leaves[i] = leaf
        return value_of(self.f, jax.tree.unflatten(treedef, leaves))


def _check_layers(layers, n_leaves: int) -> tuple[int, ...]:
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = (layers,)
    try:
        out = tuple(layers)
    except TypeError:
        raise ConfigError(f"layers: expected None, a layer index or a sequence of layer indices, got {layers!r}"
                          ) from None
    if not out:
        raise ConfigError("layers: expected at least one layer index, got an empty selection")
    for i in out:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n_leaves <= i < n_leaves:
            raise ConfigError(f"layers: expected indices in [0, {n_leaves}) (one per parameter array, in "
                              f"jax.tree.leaves order), got {layers!r}")
    out = tuple(sorted({int(i) % n_leaves for i in out}))
    return out


def prepare(f, params, layers=None):
    """Validate ``f``, ``params`` and ``layers``; return ``(g, x)``: the function whose Hessian is wanted (``f``,
    or its block on ``layers``) and its parameters (a pytree of arrays, Python scalars converted so that they are
    traced), plus the parameter count and dtype of the flattened vector. Checks run in NumPy (eager JAX ops would
    each compile once per shape)."""
    if not (callable(getattr(f, "value", None)) or callable(f)):
        raise ConfigError(f"f: expected a dl.Objective, a dl.AbstractObjective or a callable params -> scalar, "
                          f"got {type(f).__name__}")
    params = tuple(params) if isinstance(params, list) else params
    check = getattr(f, "check_params", None) or getattr(f, "_check", None)
    if callable(check):
        params = check(params)  # shapes against the problem (and the net, if any), finiteness, dtype
    try:
        params = jax.tree.map(jnp.asarray, params)
        leaves = jax.tree.leaves(params)
        dtype = jnp.result_type(*leaves) if leaves else None
    except (TypeError, ValueError) as exc:
        raise DataError(f"params: expected a pytree of numeric arrays ({exc})") from None
    if sum(int(np.size(leaf)) for leaf in leaves) == 0:
        raise DataError("params: expected at least one parameter, got none")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise DataError(f"params: expected floating-point weights, got dtype {dtype}")
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves) and not all(
            np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves):
        raise DataError("params: contains NaN or infinite values; expected finite weights")
    g, x = f, params
    if layers is not None:
        sel = _check_layers(layers, len(leaves))
        g, x = Block(f, params, sel), tuple(leaves[i] for i in sel)
    n = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(x))
    return g, x, n, dtype


def hvp_flat(f, params, v):
    """``H v`` for the Hessian of ``f`` at ``params``, ``v`` flattened like ``ravel_pytree(params)``. Pure and
    traceable (usable inside a caller's jit or loop)."""
    x, unravel = ravel_pytree(params)
    return jax.jvp(jax.grad(lambda y: value_of(f, unravel(y))), (x,), (v.astype(x.dtype),))[1]


hvp_jit = eqx.filter_jit(hvp_flat)


@eqx.filter_jit
def dense_hessian(f, params):
    x, unravel = ravel_pytree(params)
    return jax.hessian(lambda y: value_of(f, unravel(y)))(x)


def symmetric_dense(f, params) -> np.ndarray:
    """The dense Hessian, checked finite and symmetric to rounding (a user's callable with a wrong custom
    derivative rule can give an asymmetric second derivative: refused rather than silently averaged)."""
    H = np.asarray(dense_hessian(f, params))
    if not np.all(np.isfinite(H)):
        raise nonfinite_error()
    scale = max(float(np.abs(H).max()), np.finfo(H.dtype).tiny)
    asym = float(np.abs(H - H.T).max()) / scale
    if asym > symmetry_tol(H.dtype):
        raise asymmetry_error(asym)
    return (H + H.T) / 2


def asymmetry_error(asym: float) -> DataError:
    return DataError(f"f: its Hessian-vector product is not symmetric (relative asymmetry {asym:.3g}); expected a "
                     "twice differentiable function (a wrong custom derivative rule breaks symmetry)")


def nonfinite_error() -> NumericalError:
    return NumericalError("f: the Hessian-vector product is NaN or infinite at these params; expected weights and "
                          "data of moderate size, at a point where f is twice differentiable")


def symmetry_tol(dtype) -> float:
    """Relative asymmetry above which a Hessian(-vector product) is refused: far above rounding (a few hundred
    ulps of the products), far below what a wrong derivative rule gives (order one)."""
    return float(100 * np.sqrt(np.finfo(dtype).eps))


def random_key_data(key) -> jax.Array:
    """Two uint32 words from the bits of a PRNG key (typed or legacy): a traced argument of the kernels, so a new
    key does not recompile."""
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return jnp.ravel(jnp.asarray(data, jnp.uint32))[:2]


def stream_key(seed, stream, index):
    """A key for random vectors number ``index`` of ``stream``, from ``seed`` (:func:`random_key_data`).

    XLA's own generator (``impl="rbg"``, counter-based: distinct key words give independent streams) instead of
    threefry: it compiles several times faster, and compilation is most of a first call's cost on a CPU."""
    words = jnp.stack([jnp.asarray(stream, jnp.uint32), jnp.asarray(index, jnp.uint32)])
    return jax.random.wrap_key_data(jnp.concatenate([seed, words]), impl="rbg")
