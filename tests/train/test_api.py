"""The 0.2 training API: method objects by value, one compile per structure, re-runs from the record, Run as a
pytree, any callable objective, and no JAX configuration change on import."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


@pytest.fixture
def obj(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=60)
    return dl.Objective(dl.Regression.from_data(X, Y))


def counter():
    """A user summary that counts how often JAX traces the runner (it runs only while tracing)."""
    traces = []

    def traced(params):
        traces.append(1)
        return jnp.sum(params[0])

    return traced, traces


def test_methods_compare_and_hash_by_value():
    assert dl.GD(lr=0.1, steps=10) == dl.GD(lr=0.1, steps=10)
    assert hash(dl.GD(lr=0.1, steps=10)) == hash(dl.GD(lr=0.1, steps=10))
    assert dl.GD(lr=0.1, steps=10) != dl.GD(lr=0.2, steps=10)
    assert dl.GD(lr=0.1, steps=10) != dl.SGD(lr=0.1, steps=10, batch_size=None)
    assert dl.GD(optimizer=optax.adam(1e-3)) == dl.GD(optimizer=optax.adam(1e-3))
    assert dl.GD(optimizer=optax.adam(1e-3)) != dl.GD(optimizer=optax.adam(2e-3))
    assert dl.Flow(t1=1.0) == dl.Flow(t1=1) and dl.Flow(t1=1.0) != dl.Flow(t1=1.0, solver="rkc")
    assert dl.Record(n=5) == dl.Record(n=5) and dl.Record() == dl.Record(n=100, spacing="linear")
    assert dl.Stop(loss=1e-3) == dl.Stop(loss=1e-3) and dl.Stop() != dl.Stop(grad_norm=0.1)
    assert len({dl.GD(lr=0.1, steps=3), dl.GD(lr=0.1, steps=3), dl.Flow(t1=2.0)}) == 2
    with pytest.raises(AttributeError):
        dl.GD(lr=0.1).lr = 0.2  # frozen


@pytest.mark.parametrize("build, field", [
    (lambda: dl.GD(lr=0.1, t1=5.0), "t1.*dl.Flow"),
    (lambda: dl.Flow(t1=5.0, lr=0.1), "lr.*dl.GD"),
    (lambda: dl.GD(lr=0.1, batch_size=3), "batch_size.*dl.SGD"),
    (lambda: dl.Flow(t1=1.0, steps=7), "steps"),
    (lambda: dl.GD(lr=-1.0), "GD.lr"),
    (lambda: dl.GD(), "GD.lr"),
    (lambda: dl.GD(lr=0.1, optimizer=optax.sgd(0.1)), "GD.lr"),
    (lambda: dl.GD(optimizer="adam"), "GD.optimizer"),
    (lambda: dl.GD(lr=0.1, steps=2.5), "GD.steps"),
    (lambda: dl.SGD(lr=0.1, batch_size=0), "SGD.batch_size"),
    (lambda: dl.Flow(), "Flow.t1"),
    (lambda: dl.Flow(t1=1.0, solver="euler"), "Flow.solver"),
    (lambda: dl.Flow(t1=1.0, rtol=0.0), "Flow.rtol"),
    (lambda: dl.Flow(t1=1.0, max_steps=0), "Flow.max_steps"),
    (lambda: dl.Record(n=0), "Record.n"),
    (lambda: dl.Record(spacing="cubic"), "Record.spacing"),
    (lambda: dl.Record(times=[0, 2, 1]), "Record.times"),
    (lambda: dl.Record(times=[1, 2], n=3), "Record.n"),
    (lambda: dl.Record(summaries=("loss", "hessian_trace")), "Record.summaries"),
    (lambda: dl.Record(summaries=()), "Record.summaries"),
    (lambda: dl.Stop(grad_norm=-1.0), "Stop.grad_norm"),
    (lambda: dl.Stop(divergence=1.0), "Stop.divergence"),
    (lambda: dl.Stop(loss=float("nan")), "Stop.loss"),
    (lambda: dl.GD(0.1), "keyword"),
])
def test_every_bad_field_is_one_clear_error_at_construction(build, field):
    with pytest.raises(ConfigError, match=field):
        build()


def test_old_string_api_is_refused_with_a_pointer(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(0), scale=0.3)
    with pytest.raises(ConfigError, match="dl.GD"):
        dl.train(obj, p0, "gd")
    with pytest.raises(TypeError):
        dl.train(obj, p0, method=dl.GD(lr=0.1), lr=0.1)


def test_a_loop_over_values_compiles_once(make_data):
    """Learning rates, steps, weight decays, init scales, data and thresholds are traced: one trace for all."""
    X, Y = make_data(d_in=3, d_out=2, n=40)
    net = dl.Net((3, 7, 2))  # a shape used by no other test: the first call must trace
    traced, traces = counter()
    record = dl.Record(n=4, summaries=("loss", traced))
    for i, (lr, steps, wd, scale) in enumerate([(0.01, 40, 0.0, 0.1), (0.05, 60, 0.01, 0.5), (0.2, 30, 0.1, 1.0)]):
        obj = dl.Objective(dl.Regression.from_data(X * (1 + i), Y), weight_decay=wd)
        p0 = net.init(jax.random.key(i), scheme="gaussian", scale=scale)
        dl.train(obj, p0, dl.GD(lr=lr, steps=steps), record=record, stop=dl.Stop(loss=1e-3 * (i + 1)))
        if i == 0:
            first = len(traces)
    assert first > 0 and len(traces) == first  # only the first call traced
    flow_traced, flow_traces = counter()
    rec = dl.Record(n=4, summaries=("loss", flow_traced))
    for i, (t1, rtol, thr) in enumerate([(1.0, 1e-6, 1e-3), (2.0, 1e-8, 1e-4), (3.5, 1e-7, 1e-5)]):
        dl.train(obj, p0, dl.Flow(t1=t1, rtol=rtol, atol=rtol * 1e-2), record=rec, stop=dl.Stop(grad_norm=thr))
        if i == 0:
            first = len(flow_traces)
    assert first > 0 and len(flow_traces) == first


def test_optimizers_are_cached_by_value_and_injected_hyperparameters_are_traced(obj):
    p0 = dl.Net((3, 6, 2)).init(jax.random.key(1), scale=0.3)
    traced, traces = counter()
    record = dl.Record(n=2, summaries=("loss", traced))
    dl.train(obj, p0, dl.GD(optimizer=optax.adam(1e-2), steps=20), record=record)
    first = len(traces)
    dl.train(obj, p0, dl.GD(optimizer=optax.adam(1e-2), steps=20), record=record)  # new, equal object
    assert first > 0 and len(traces) == first
    runs = []
    for lr in (1e-3, 1e-2, 3e-2):  # inject_hyperparams: the learning rate lives in the state
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
        runs.append(dl.train(obj, p0, dl.GD(optimizer=opt, steps=20), record=record))
    assert len(traces) == 2 * first  # one new trace (a new optimizer structure), then none
    plain = dl.train(obj, p0, dl.GD(optimizer=optax.adam(3e-2), steps=20))
    np.testing.assert_allclose(runs[2].params[0], plain.params[0], rtol=1e-12)
    assert not np.allclose(runs[0].params[0], runs[2].params[0])


def test_train_batched_with_per_run_optimizers_equals_single_runs(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(2), scale=0.3)
    methods = [dl.GD(optimizer=optax.inject_hyperparams(optax.adam)(learning_rate=lr), steps=30)
               for lr in (1e-3, 1e-2)]
    batched = dl.train_batched(obj, [p0, p0], methods)
    for run, m in zip(batched, methods):
        alone = dl.train(obj, p0, m)
        np.testing.assert_allclose(run.history["loss"], alone.history["loss"], rtol=1e-13)


def test_a_run_repeats_from_its_own_record(obj, make_data):
    p0 = dl.Net((3, 4, 4, 2)).init(jax.random.key(3), scale=0.5)
    X, Y = make_data(d_in=3, d_out=2, n=60)
    for method, objective, key in [
        (dl.GD(lr=0.03, steps=200), obj, None),
        (dl.SGD(lr=0.03, steps=100, batch_size=10), obj, 4),
        (dl.GD(optimizer=optax.sgd(0.01, momentum=0.9), steps=100), obj, None),
        (dl.Flow(t1=3.0, rtol=1e-9, atol=1e-11), dl.Objective(dl.Regression.from_data(X, Y)), None),
    ]:
        run = dl.train(objective, p0, method, record=dl.Record(n=7, spacing="log",
                                                             summaries=("loss", "layer_norms")),
                       stop=dl.Stop(loss=1e-8, divergence=1e6), key=key)
        again = dl.train(objective, p0, run.method, record=run.record, stop=run.stop, key=key)
        np.testing.assert_array_equal(again.times, run.times)
        for k in run.history:
            np.testing.assert_array_equal(again.history[k], run.history[k])
        assert (again.status, again.n_steps) == (run.status, run.n_steps)


def test_run_is_a_pytree(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(4), scale=0.3)
    run = dl.train(obj, p0, dl.GD(lr=0.01, steps=10), record=dl.Record(n=2))
    leaves = jax.tree_util.tree_leaves(run)
    assert len(leaves) == 1 + 2 + 2  # times, two summaries, two weight matrices
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, run)
    np.testing.assert_array_equal(doubled.params[0], 2 * np.asarray(run.params[0]))
    assert doubled.method == run.method and doubled.status is dl.Status.completed
    assert run.status == "completed" and dl.Status.completed.message.startswith("the run reached")
    assert {s.value for s in dl.Status} == {"converged", "completed", "diverged", "failed"}


def test_flow_that_reaches_t1_is_completed_and_max_steps_is_failed(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(5), scale=0.3)
    assert dl.train(obj, p0, dl.Flow(t1=0.5)).status == "completed"
    run = dl.train(obj, p0, dl.Flow(t1=50.0, max_steps=3, rtol=1e-12, atol=1e-14))
    assert run.status == "failed" and "max_steps" in run.message


def test_any_callable_objective_trains_a_nonlinear_model(rng):
    """A one-hidden-layer tanh net (a dict of params) against a hand-written GD loop."""
    X = rng.normal(size=(30, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]

    def loss(p):
        h = jnp.tanh(X @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] - y) ** 2)

    p0 = {"w1": 0.5 * rng.normal(size=(2, 8)), "b1": np.zeros(8), "w2": 0.5 * rng.normal(size=(8,))}
    run = dl.train(loss, p0, dl.GD(lr=0.1, steps=150), record=dl.Record(n=3, summaries=("loss", "sharpness")))
    p = {k: jnp.asarray(v) for k, v in p0.items()}
    g = jax.jit(jax.grad(loss))
    for _ in range(150):
        p = jax.tree.map(lambda w, d: w - 0.1 * d, p, g(p))
    for k in p:
        np.testing.assert_allclose(run.params[k], p[k], rtol=1e-10, atol=1e-12)
    assert run.final_loss < 0.5 * run.loss[0]
    x, unravel = jax.flatten_util.ravel_pytree(p)
    top = np.linalg.eigvalsh(jax.hessian(lambda v: loss(unravel(v)))(x))[-1]
    assert run.history["sharpness"][-1] == pytest.approx(top, rel=1e-8)
    with pytest.raises(ConfigError, match="singular_values.*deep-linear"):
        dl.train(loss, p0, dl.GD(lr=0.1, steps=2), record=dl.Record(summaries=("loss", "singular_values")))
    with pytest.raises(DataError, match=r"params\['b1'\].*NaN"):
        dl.train(loss, {**p0, "b1": np.full(8, np.nan)}, dl.GD(lr=0.1, steps=2))


def test_key_rules(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(6), scale=0.3)
    with pytest.raises(ConfigError, match="key.*deterministic"):
        dl.train(obj, p0, dl.GD(lr=0.1, steps=2), key=0)
    with pytest.raises(ConfigError, match="key"):
        dl.train(obj, p0, dl.SGD(lr=0.1, steps=2, batch_size=4))
    with pytest.raises(ConfigError, match="SGD.batch_size.*deterministic"):
        dl.train(obj, p0, dl.SGD(lr=0.1, steps=2), key=0)
    with pytest.raises(ConfigError, match="SGD.batch_size.*at most 60"):
        dl.train(obj, p0, dl.SGD(lr=0.1, steps=2, batch_size=61), key=0)


def test_record_times_and_spacing(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(7), scale=0.3)
    assert dl.train(obj, p0, dl.GD(lr=0.01, steps=50), record=dl.Record(n=5)).times.tolist() == [0, 10, 20, 30, 40, 50]
    log = dl.train(obj, p0, dl.GD(lr=0.01, steps=1000), record=dl.Record(n=3, spacing="log")).times
    assert log.tolist() == [0, 1, 32, 1000]
    explicit = dl.train(obj, p0, dl.GD(lr=0.01, steps=30), record=dl.Record(times=(5, 7))).times
    assert explicit.tolist() == [5, 7, 30]  # the final state is always recorded
    with pytest.raises(ConfigError, match="Record.times.*at most"):
        dl.train(obj, p0, dl.GD(lr=0.01, steps=30), record=dl.Record(times=(5, 70)))
    with pytest.raises(ConfigError, match="Record.times.*whole step"):
        dl.train(obj, p0, dl.GD(lr=0.01, steps=30), record=dl.Record(times=(0.5, 7)))
    flow = dl.train(obj, p0, dl.Flow(t1=2.0), record=dl.Record(n=4, spacing="log"))
    np.testing.assert_allclose(flow.times, np.concatenate([[0], np.geomspace(2e-6, 2.0, 4)]))


def test_batched_structure_must_match(obj):
    p0 = dl.Net((3, 4, 2)).init(jax.random.key(8), scale=0.3)
    with pytest.raises(ConfigError, match="methods.*one method type"):
        dl.train_batched(obj, [p0, p0], [dl.GD(lr=0.1, steps=3), dl.Flow(t1=1.0)])
    with pytest.raises(ConfigError, match="record.*record times"):
        dl.train_batched(obj, [p0, p0], [dl.GD(lr=0.1, steps=3), dl.GD(lr=0.1, steps=4)])
    with pytest.raises(ConfigError, match="methods: expected one"):
        dl.train_batched(obj, [p0, p0], [dl.GD(lr=0.1, steps=3)] * 3)
    runs = dl.train_batched(obj, [p0, p0], [dl.Flow(t1=1.0), dl.Flow(t1=2.0)],
                            stop=[dl.Stop(loss=0.0), dl.Stop(loss=1e9)])
    assert [r.times[-1] for r in runs][0] == pytest.approx(1.0) and runs[1].status == "converged"


def test_float32_params_stay_float32_through_every_method(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=50)
    obj = dl.Objective(dl.Regression.from_data(X, Y, dtype=jnp.float32))
    p0 = tuple(W.astype(jnp.float32) for W in dl.Net((3, 4, 2)).init(jax.random.key(9), scale=0.3))
    for method, key in [(dl.GD(lr=0.05, steps=20), None), (dl.SGD(lr=0.05, steps=20, batch_size=8), 0),
                        (dl.GD(optimizer=optax.adam(1e-2), steps=20), None), (dl.Flow(t1=1.0), None)]:
        run = dl.train(obj, p0, method, record=dl.Record(n=2), key=key)
        assert all(W.dtype == np.float32 for W in run.params), method
        assert all(v.dtype == np.float32 for v in run.history.values()), method


def test_import_changes_no_jax_setting():
    code = textwrap.dedent("""
        import jax
        before = jax.config.jax_enable_x64
        import dlnlab
        assert jax.config.jax_enable_x64 == before, "import dlnlab changed jax_enable_x64"
        import jax.numpy as jnp
        assert jnp.asarray(1.0).dtype == jnp.float32
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
