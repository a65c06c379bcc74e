"""Small awkward objectives for the curvature tests (see conftest.py) and independent dense references."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import dlnlab as dl


def _mlp_loss(params, X, Y):
    h = jnp.tanh(X @ params["W1"].T + params["b1"])
    return jnp.mean(jnp.sum((h @ params["W2"].T - Y) ** 2, axis=1))


class DiagonalNet(eqx.Module):
    """``beta = u^2 - v^2`` (woodworth2020's depth-2 diagonal network) on least squares: an objective class with
    ``.value``, like the library's ``AbstractObjective`` subclasses."""

    X: jax.Array
    y: jax.Array

    def value(self, params):
        u, v = params
        return jnp.mean((self.X @ (u**2 - v**2) - self.y) ** 2)


def make_case(name: str, seed: int = 0):
    """``(f, params)`` of one awkward objective; a new seed gives new data and weights of the same shapes."""
    rng = np.random.default_rng(seed)
    if name == "dln":  # unequal widths, anisotropic inputs, weight decay per layer
        X = rng.normal(size=(80, 4)) * np.array([3.0, 1.0, 0.5, 0.1])
        Y = X @ rng.normal(size=(4, 2)) + 0.1 * rng.normal(size=(80, 2))
        obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=[0.01, 0.0, 0.03])
        return obj, dl.Net((4, 6, 3, 2)).init(jax.random.key(seed), scheme="gaussian", scale=0.6)
    if name == "residual":
        X = rng.normal(size=(60, 3)) * np.array([2.0, 1.0, 0.3])
        Y = X @ rng.normal(size=(3, 3))
        net = dl.Net((3, 3, 3, 3), residual=True)
        obj = dl.Objective(dl.Regression.from_data(X, Y), net=net, weight_decay=0.02)
        return obj, net.init(jax.random.key(seed), scheme="gaussian", scale=0.3)
    if name == "mlp":  # nonlinear, a dict pytree with biases, a pytree callable (arrays traced)
        X = rng.normal(size=(40, 3)) * np.array([2.0, 1.0, 0.5])
        Y = np.sin(X[:, :2])
        params = {"W1": rng.normal(size=(5, 3)) * 0.7, "b1": rng.normal(size=5) * 0.1,
                  "W2": rng.normal(size=(2, 5)) * 0.7}
        return jax.tree_util.Partial(_mlp_loss, X=jnp.asarray(X), Y=jnp.asarray(Y)), params
    if name == "diagonal":
        X = rng.normal(size=(12, 7)) * np.geomspace(2.0, 0.3, 7)
        y = X @ (rng.normal(size=7) * (rng.random(7) < 0.4))
        return DiagonalNet(jnp.asarray(X), jnp.asarray(y)), (jnp.asarray(rng.normal(size=7)),
                                                           jnp.asarray(rng.normal(size=7) * 0.5))
    raise KeyError(name)


CASES = ("dln", "residual", "mlp", "diagonal")


def dense_reference(f, params):
    """The Hessian by ``jax.hessian`` of the raveled function (``f.value`` or ``f``), symmetrised, and its
    eigenvalues: nothing from dl.curvature."""
    x, unravel = ravel_pytree(params)
    fn = f.value if hasattr(f, "value") else f
    H = np.asarray(jax.jit(jax.hessian(lambda y: fn(unravel(y))))(x))
    H = (H + H.T) / 2
    return H, np.linalg.eigvalsh(H)


def block_index(params, layers):
    """Flat indices of the leaves ``layers`` (``jax.tree.leaves`` order) in ``ravel_pytree(params)``."""
    sizes = [int(np.size(leaf)) for leaf in jax.tree.leaves(params)]
    off = np.cumsum([0, *sizes])
    return np.concatenate([np.arange(off[i], off[i + 1]) for i in layers])
