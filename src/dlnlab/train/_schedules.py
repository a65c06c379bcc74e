"""Step-size rules for gradient descent on separable classification, as optax transformations.

Two full optimizers (they return ``-eta_t * grad`` like ``optax.sgd``), for use as
``dl.train(obj, p0, dl.GD(optimizer=..., steps=...))``:

- :func:`ball_sgd`: the step-size schedule of Ji and Telgarsky (ICLR 2019), Assumption 5. With
  ``B(R) = {W : max_k ||W_k||_F <= R}`` and the smoothness constant of Lemma 5 on ``B(R)``
  (``R >= 1``)

      beta(R) = 2 L^2 R^(2L-2) (beta + G)    (logistic: beta = 1/4, G = 1, so 2.5 L^2 R^(2L-2)),

  the step is ``eta_t = min(1 / beta(R_t), 1)``; ``R_t`` is kept when ``W(t+1)`` stays in ``B(R_t)``
  and otherwise enlarged by ``growth`` and the step retried (the line search the paper mentions).
  Under it the risk decreases monotonically by at least ``eta_t / 2 ||grad||^2`` per step (eq. (4));
  the steps are tiny for deep nets.
- :func:`loss_scaled_sgd`: ``eta_t = clip(learning_rate / R(W(t)), min_step_size, max_step_size)``
  with ``R(W(t))`` the current risk, passed by the trainer as ``update(..., value=loss)``. Not
  covered by the paper's theorems (it is the normalised / "aggressive" step of Nacson et al. 2019
  and the loss-based rate of Lyu and Li 2020); it reaches risks like 1e-30 in thousands of steps
  where a constant step needs astronomically many.

The current step size is kept in the optimizer state (``state.step_size``) so a caller can check the
exact per-step balancedness drift ``eta_t^2 (G_{k+1}^T G_{k+1} - G_k G_k^T)``.

Example:
    >>> import jax.numpy as jnp, optax
    >>> from dlnlab.train._schedules import loss_scaled_sgd
    >>> opt = loss_scaled_sgd(0.1)
    >>> params = (jnp.ones((2, 2)), jnp.ones((1, 2)))
    >>> grads = (jnp.ones((2, 2)), jnp.ones((1, 2)))
    >>> state = opt.init(params)
    >>> updates, state = opt.update(grads, state, params, value=jnp.asarray(0.01))
    >>> float(updates[1][0, 0]), float(state.step_size)
    (-10.0, 10.0)

Reference: Z. Ji, M. Telgarsky, "Gradient descent aligns the layers of deep linear networks",
ICLR 2019, Assumption 5, Lemma 5, Theorem 3; M. S. Nacson et al., AISTATS 2019; K. Lyu, J. Li,
ICLR 2020.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._checks import as_float, as_int
from ..errors import ConfigError

__all__ = ["ball_sgd", "loss_scaled_sgd", "BallState", "LossScaledState", "ball_smoothness"]


class LossScaledState(NamedTuple):
    """``count``: steps taken; ``step_size``: the last ``eta_t`` used (0 before the first step)."""

    count: jax.Array
    step_size: jax.Array


class BallState(NamedTuple):
    """``radius``: ``R_t``; ``step_size``: the last ``eta_t``; ``count``: steps; ``backtracks``:
    total number of times the radius had to be enlarged."""

    radius: jax.Array
    step_size: jax.Array
    count: jax.Array
    backtracks: jax.Array


def _neg_scale(tree, eta):
    return jax.tree_util.tree_map(lambda g: -eta * g, tree)


def loss_scaled_sgd(
    learning_rate: float, *, min_step_size: float = 0.0, max_step_size: float = 1e4
) -> optax.GradientTransformationExtraArgs:
    """Gradient descent with ``eta_t = clip(learning_rate / value, min_step_size, max_step_size)``.

    ``value`` (the current loss, a positive scalar) must be passed to ``update`` as a keyword, as
    dl.train does. The cap keeps the step finite when the loss underflows to 0; the floor lets a
    small-init net leave the saddle at the origin with ordinary steps while the risk is still of
    order ``l(0)``.

    Args:
        learning_rate: ``eta_0 > 0``. For a depth-L net the relative change of a layer per step is
            about ``eta_0 ||W||^(L-2)`` once the risk is small, so keep ``eta_0`` well below 1
            (0.005-0.05 at depth 4).
        min_step_size: the smallest step (e.g. 1.0 for data with ``||x_i|| <= 1``); 0 means no
            floor.
        max_step_size: the largest step ever taken.
    """
    lr = as_float("learning_rate", learning_rate, low=0.0, low_open=True)
    floor = as_float("min_step_size", min_step_size, low=0.0)
    cap = as_float("max_step_size", max_step_size, low=0.0, low_open=True)
    if floor > cap:
        raise ConfigError(f"min_step_size: expected at most max_step_size={cap}, got {floor}")

    def init(params):
        del params
        return LossScaledState(count=jnp.zeros((), jnp.int32), step_size=jnp.zeros(()))

    def update(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise ConfigError(
                "value: loss_scaled_sgd needs the current loss, "
                "update(grads, state, params, value=loss); dl.train passes it, optax.chain "
                "forwards it only when every member accepts extra args"
            )
        v = jnp.asarray(value)
        eta = jnp.clip(lr / jnp.maximum(v, jnp.finfo(v.dtype).tiny), floor, cap)
        # a NaN loss gives a NaN step on purpose: the trainer then reports divergence
        new_state = LossScaledState(state.count + 1, eta.astype(state.step_size.dtype))
        return _neg_scale(updates, eta), new_state

    return optax.GradientTransformationExtraArgs(init, update)


def ball_smoothness(radius, depth: int, *, smoothness: float = 0.25, lipschitz: float = 1.0):
    """Lemma 5: ``beta(R) = 2 L^2 R^(2L-2) (beta + G)``, the smoothness of the risk on ``B(R)``
    (``R >= 1``)."""
    return 2.0 * depth**2 * jnp.asarray(radius) ** (2 * depth - 2) * (smoothness + lipschitz)


def _max_fro(tree):
    return jnp.max(jnp.stack([jnp.linalg.norm(W) for W in jax.tree_util.tree_leaves(tree)]))


def ball_sgd(
    *,
    smoothness: float = 0.25,
    lipschitz: float = 1.0,
    growth: float = 1.1,
    max_step_size: float = 1.0,
    max_backtracks: int = 10_000,
) -> optax.GradientTransformationExtraArgs:
    """The paper's GD schedule (Assumption 5): ``eta_t = min(1 / beta(R_t), max_step_size)`` with
    ball backtracking. The depth ``L`` is the number of weight matrices in ``params``.

    Args:
        smoothness: ``beta``, the Lipschitz constant of ``l'`` (1/4 for the logistic loss).
        lipschitz: ``G``, a bound on ``|l'|`` (1 for the logistic loss). The exponential loss has
            no finite values (Assumption 4 fails): the paper's GD theorem is for the logistic loss.
        growth: factor by which ``R_t`` is enlarged when a step leaves ``B(R_t)``.
        max_step_size: the paper's cap 1.
        max_backtracks: safety bound on radius enlargements in one step.

    ``update`` needs ``params``. Initial radius ``R_0 = max(1, max_k ||W_k(0)||_F)``.
    """
    beta = as_float("smoothness", smoothness, low=0.0)
    G = as_float("lipschitz", lipschitz, low=0.0)
    if beta + G <= 0:
        raise ConfigError(
            "smoothness, lipschitz: expected a positive sum (the Lemma 5 constant), got 0"
        )
    growth = as_float("growth", growth, low=1.0, low_open=True)
    cap = as_float("max_step_size", max_step_size, low=0.0, low_open=True)
    max_bt = as_int("max_backtracks", max_backtracks, low=1)

    def init(params):
        R0 = jnp.maximum(1.0, _max_fro(params))
        return BallState(
            radius=R0,
            step_size=jnp.zeros_like(R0),
            count=jnp.zeros((), jnp.int32),
            backtracks=jnp.zeros((), jnp.int32),
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ConfigError(
                "params: ball_sgd needs the current parameters, update(grads, state, params)"
            )
        L = len(jax.tree_util.tree_leaves(params))
        R = jnp.maximum(state.radius, jnp.maximum(1.0, _max_fro(params)))

        def eta_of(R):
            return jnp.minimum(1.0 / ball_smoothness(R, L, smoothness=beta, lipschitz=G), cap)

        def outside(R):
            cand = jax.tree_util.tree_map(lambda W, g: W - eta_of(R) * g, params, updates)
            return _max_fro(cand) > R

        def cond(carry):
            R, k = carry
            return outside(R) & (k < max_bt)

        def body(carry):
            R, k = carry
            return R * growth, k + 1

        R, k = jax.lax.while_loop(cond, body, (R, jnp.zeros((), jnp.int32)))
        eta = eta_of(R)
        new = BallState(
            radius=R, step_size=eta, count=state.count + 1, backtracks=state.backtracks + k
        )
        return _neg_scale(updates, eta), new

    return optax.GradientTransformationExtraArgs(init, update)
