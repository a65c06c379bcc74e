"""The gradient-flow engine: compiled-runner reuse across traced options, event statuses, stiff solvers."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dlnlab as dl
from dlnlab.theory import modes
from dlnlab.train._rkc import RKC, CountingPID


@pytest.fixture
def saxe(rng):
    """A whitened depth-2 problem with the Saxe closed form: loss(t) = const + sum_i (s_i - u_i(t))^2."""
    Syx = rng.normal(size=(3, 4))
    prob = dl.Regression.from_moments(np.eye(4), Syx, float(np.sum(Syx**2)) + 1.0)
    net = dl.Net((4, 5, 3))
    u0 = 1e-3
    s = np.linalg.svd(Syx, compute_uv=False)

    def loss_at(t):
        u = np.stack([modes.mode_strength(si, u0, np.atleast_1d(t), depth=2) for si in s], axis=-1)
        return 1.0 + np.sum((s - u) ** 2, axis=-1)

    return prob, modes.aligned_init(net, prob, u0), u0, loss_at


def test_new_times_tolerances_and_thresholds_reuse_the_compiled_runner(saxe):
    prob, p0, u0, loss_at = saxe
    obj = dl.Objective(prob)
    traces = []

    def extra(params):  # runs only while JAX traces the runner
        traces.append(1)
        return {"w1_sq": (params[0] ** 2).sum()}

    runs = []
    for t1, t_stop, tol in ((4.0, 2.5, 1e-10), (6.0, 3.5, 1e-11)):
        ts = np.linspace(0.0, t1, 21)
        threshold = float(loss_at(t_stop)[0])
        runs.append((dl.train(obj, p0, dl.Flow(t1=t1, rtol=tol, atol=tol * 1e-2),
                              record=dl.Record(times=ts, summaries=("loss", "singular_values", extra)),
                              stop=dl.Stop(loss=threshold, divergence=1e6 * t1)), t_stop))
        if len(runs) == 1:
            n_traces = len(traces)
    assert n_traces > 0 and len(traces) == n_traces  # the second call traced nothing
    for run, t_stop in runs:
        assert run.status == "converged"
        # the event stops at the closed-form time at which the loss reaches the threshold
        assert run.times[-1] == pytest.approx(t_stop, rel=1e-6)
        theory = np.linalg.svd(modes.end_to_end_trajectory(prob, u0, run.times, depth=2), compute_uv=False)
        np.testing.assert_allclose(run.history["singular_values"], theory, atol=1e-6)
        assert theory[-1, 0] > 100 * theory[0, 0]  # a mode was learned before the stop


def test_a_run_stopped_by_the_loss_threshold_is_converged():
    """At the located crossing the loss equals the threshold up to rounding; the status must not depend on
    which side of the threshold rounding puts it (it used to come back as "solver_failed")."""
    rng = np.random.default_rng(0)
    Syx = rng.normal(size=(4, 4))
    prob = dl.Regression.from_moments(np.eye(4), Syx, float(np.sum(Syx**2)) + 1.0)  # minimum loss 1
    obj = dl.Objective(prob)
    p0 = dl.Net((4, 8, 8, 4)).init(jax.random.key(0), scheme="gaussian", scale=0.1)
    ends = []
    for threshold in (1.001, 1.01, 1.1, 1.5, 3.0):
        run = dl.train(obj, p0, dl.Flow(t1=50.0), record=dl.Record(spacing="log"), stop=dl.Stop(loss=threshold))
        assert run.status == "converged", (threshold, run.message)
        assert run.final_loss <= threshold * (1 + 1e-12)
        assert run.final_loss == pytest.approx(threshold, rel=1e-9)
        ends.append(run.times[-1])
    assert np.all(np.diff(ends) < 0)  # a higher threshold is met earlier


def _rkc_step(lam, h, s, solver):
    """One RKC step of y' = lam * y with ``s`` stages (the spectral radius in the state is set to get them)."""
    term = diffrax.ODETerm(lambda t, y, args: (lam * y[0], 0.0 * y[1]))
    rho = (((s - 0.5) ** 2) - 1) / 1.54 / (solver.safety * h)  # stages_for() then picks exactly s
    state = (jnp.asarray(lam), jnp.asarray(1.0), jnp.asarray(rho))
    (y1, n1), err, _, _, _ = solver.step(term, 0.0, h, (jnp.asarray(1.0), jnp.asarray(0.0)), None, state, False)
    return float(y1), float(n1)


@pytest.mark.parametrize("s", [2, 5, 17])
def test_rkc_stability_polynomial_is_the_damped_chebyshev_one(s):
    """R(z) = a_s + b_s T_s(w0 + w1 z), w0 = 1 + eps/s^2, w1 = T_s'(w0)/T_s''(w0), b_s = T_s''/T_s'^2, with T_s
    from numpy's Chebyshev series (not the solver's recurrences); second order at 0; |R| <= 1 on [-beta, 0]."""
    solver = RKC(power_iterations=0)
    w0 = 1.0 + (2.0 / 13.0) / s**2
    T = np.polynomial.Chebyshev.basis(s)
    w1 = T.deriv(1)(w0) / T.deriv(2)(w0)
    b = T.deriv(2)(w0) / T.deriv(1)(w0) ** 2
    beta = (1.0 + w0) / w1
    assert beta > 0.6 * (s**2 - 1)  # the interval grows like s^2
    for z in (-1e-3, -0.3, -0.5 * beta, -0.99 * beta):
        R, cost = _rkc_step(z, 1.0, s, solver)
        assert R == pytest.approx(1 - b * T(w0) + b * T(w0 + w1 * z), rel=1e-10, abs=1e-13)
        assert abs(R) <= 1.0
        assert cost == s  # s - 1 stages and F(y_1); no power iteration here
    R, _ = _rkc_step(-1e-3, 1.0, s, solver)
    assert abs(R - (1 - 1e-3 + 0.5e-6)) < 1e-9  # 1 + z + z^2/2 + O(z^3)


def test_rkc_is_second_order_on_a_nonlinear_problem():
    def f(t, y, args):
        x = y[0]
        return (-jnp.array([x[0] * x[1] ** 2 + x[0], x[1] - x[0] ** 2 + 0.3 * jnp.sin(x[1])]), 0.0 * y[1])

    ref = solve_ivp(lambda t, x: np.asarray(f(t, (jnp.asarray(x), 0.0), None)[0]), (0.0, 2.0), [1.0, 0.5],
                    rtol=1e-13, atol=1e-14, method="DOP853").y[:, -1]
    errors = []
    for n in (10, 20, 40):
        h = 2.0 / n
        solver = RKC(power_iterations=0, init_iterations=0, safety=1.0)
        y = (jnp.array([1.0, 0.5]), jnp.asarray(0.0))
        f0, v, _ = solver.init(diffrax.ODETerm(f), 0.0, h, y, None)
        state = (f0, v, jnp.asarray(((7.5**2) - 1) / 1.54 / h))  # 8 stages
        for k in range(n):
            y, _, _, state, _ = solver.step(diffrax.ODETerm(f), k * h, (k + 1) * h, y, None, state, False)
        errors.append(np.abs(np.asarray(y[0]) - ref).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.1)


def test_rkc_counts_every_evaluation_including_rejected_steps():
    calls = []

    def f(t, y, args):
        jax.debug.callback(lambda: calls.append(1), ordered=True)
        x = y[0]
        return (-jnp.array([400.0 * (x[0] - jnp.cos(x[1])), x[1] ** 3 - x[0]]), 0.0 * y[1])

    solver = RKC()
    sol = diffrax.diffeqsolve(diffrax.ODETerm(f), solver, 0.0, 20.0, None, (jnp.array([2.0, 1.0]), jnp.asarray(0.0)),
                              stepsize_controller=CountingPID(rtol=1e-6, atol=1e-8),
                              saveat=diffrax.SaveAt(t1=True, controller_state=True), max_steps=10_000)
    assert int(sol.stats["num_rejected_steps"]) > 0  # the count below must include them
    counted = float(sol.controller_state[1]) + solver.init_cost() + 2
    # each Jacobian-vector product runs the field once but is charged as 2 evaluations; the 2 evaluations of
    # diffrax's initial step-size selection are charged too, but run where this callback does not fire
    jvps = solver.init_iterations + solver.power_iterations * int(sol.stats["num_steps"])
    assert counted == len(calls) + jvps + 2


@pytest.fixture
def stiff_problem():
    """Input variances 400, 1 and 0.05: the top Hessian eigenvalue is ~1e3 times the slowest rate."""
    Sxx = np.diag([400.0, 1.0, 0.05])
    Syx = np.array([[1.0, 0.5, 0.2], [-0.3, 1.0, 0.1]]) @ Sxx
    return dl.Regression.from_moments(Sxx, Syx, float(np.trace(Syx @ np.linalg.solve(Sxx, Syx.T))) + 0.5)


def test_rkc_flow_matches_radau_on_a_stiff_flow_and_the_saxe_closed_form(stiff_problem, rng):
    net = dl.Net((3, 4, 2))
    obj = dl.Objective(stiff_problem)
    p0 = net.init(jax.random.key(1), scheme="gaussian", scale=0.3)
    t1 = 100.0
    run = dl.train(obj, p0, dl.Flow(t1=t1, solver="rkc", rtol=1e-9, atol=1e-11))
    sizes = [W.size for W in p0]
    cuts = np.cumsum([0] + sizes)

    def unflatten(x):
        return tuple(x[a:b].reshape(W.shape) for W, a, b in zip(p0, cuts[:-1], cuts[1:]))

    flat = lambda p: jnp.concatenate([jnp.ravel(W) for W in p])  # noqa: E731
    grad = jax.jit(lambda x: -flat(obj.grad(unflatten(x))))
    jac = jax.jit(jax.jacfwd(grad))
    ref = solve_ivp(lambda t, x: np.asarray(grad(x)), (0.0, t1), np.asarray(flat(p0)), method="Radau",
                    jac=lambda t, x: np.asarray(jac(x)), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(flat(run.params)), ref.y[:, -1], atol=2e-6)
    lam = dl.curvature.sharpness(obj, run.params)
    assert lam > 500  # stiff: GD is stable only for steps below 2 / lam, Tsit5 below ~3.5 / lam
    assert run.n_grad_evals < 0.5 * t1 * lam / 2  # fewer than half of GD's at its largest stable step

    # same compiled runner (same shapes), whitened problem: the Saxe closed form
    Syx = rng.normal(size=(2, 3))
    prob = dl.Regression.from_moments(np.eye(3), Syx, float(np.sum(Syx**2)) + 1.0)
    ts = np.linspace(0.0, 4.0, 101)
    run = dl.train(dl.Objective(prob), modes.aligned_init(net, prob, 1e-3),
                   dl.Flow(t1=4.0, solver="rkc", rtol=1e-9, atol=1e-11),
                   record=dl.Record(times=ts, summaries=("loss", "singular_values")))
    theory = np.linalg.svd(modes.end_to_end_trajectory(prob, 1e-3, ts, depth=2), compute_uv=False)
    np.testing.assert_allclose(run.history["singular_values"], theory, atol=1e-5)
    assert theory[-1, 0] > 100 * theory[0, 0]
