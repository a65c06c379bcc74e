"""Shared pieces of the reliability suite: the bad-input counter, the clear-error check, a cheap
sweepable function and an in-process executor.

Every property-based test feeds generated inputs to a public entry point through :func:`outcome`:
an input either gets a :class:`dlnlab.errors.DlnlabError` whose message is one line that starts with
the offending field and says what was expected (counted as a *rejected bad input*), or a valid
result that the test then checks (counted as *accepted*). Anything else (another exception, a NaN)
fails the test. The conftest prints the totals and refuses a full run with fewer than 1,000 rejected
bad inputs.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, settings

from dlnlab.errors import DlnlabError

REJECTED: Counter = Counter()  # category -> generated bad inputs rejected with a clear error
ACCEPTED: Counter = Counter()  # category -> generated inputs that were valid and gave a checked result
OUTCOMES: Counter = Counter()  # how the valid training runs ended (not inputs: not added to the totals)
MIN_BAD_INPUTS = 1000

_FIELD = re.compile(r"^[A-Za-z_][^\s:]*(, [A-Za-z_][^\s:]*)*:( |$)")  # "field:", "a.b[0]:", "X, Y:"


def property_settings(n: int, **kw):
    """Hypothesis settings of this suite: an explicit example count, no deadline (shared machine),
    derandomized so the counts in docs/reliability.md are reproducible."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
        **kw,
    )


def check_message(exc: BaseException, field: str | None = None) -> str:
    """The error is dlnlab's, one line, starts with ``field:`` (or ``field[i]:``) and says what was
    expected."""
    assert isinstance(exc, DlnlabError), f"{type(exc).__name__} is not a DlnlabError: {exc}"
    msg = str(exc)
    assert msg and "\n" not in msg, f"message is not one line: {msg!r}"
    assert _FIELD.match(msg), f"message does not start with a field name: {msg!r}"
    if field is not None:
        fields = [f.strip() for f in msg.split(":", 1)[0].split(",")]
        bases = {re.sub(r"\[\d+\]", "", f).split(".")[-1] for f in fields} | set(fields)
        assert field in bases, f"message names {fields}, expected {field!r}: {msg!r}"
    low = msg.lower()
    assert any(w in low for w in ("expected", "required", "need", "supported", "use ", "give ")), (
        f"message does not say what was expected: {msg!r}"
    )
    return msg


def outcome(category: str, fn, *, field=None, must_fail: bool = False):
    """Run ``fn()``: a clear DlnlabError (returns None, counted) or a result (returned, counted)."""
    try:
        result = fn()
    except DlnlabError as exc:
        check_message(exc, field)
        REJECTED[category] += 1
        return None
    assert not must_fail, f"{category}: a bad input ({field}) was accepted"
    ACCEPTED[category] += 1
    return result


def all_finite(tree) -> bool:
    import jax

    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(tree))


# -- shared training problem (tests reuse one compiled program per option set) ------------------
STEPS, EVERY = 40, 4
FLOW = {"t1": 5.0, "max_steps": 400, "save_at": "linear"}


def training_problem():
    import dlnlab as dl

    rng = np.random.default_rng(7)
    X = rng.normal(size=(24, 3)) * np.array([3.0, 1.0, 0.2])
    Y = X @ rng.normal(size=(3, 2)) + 0.1 * rng.normal(size=(24, 2))
    prob = dl.Regression.from_data(X, Y)
    net = dl.Net((3, 5, 4, 2))
    return (net, dl.Objective(prob, net=net),
            dl.Objective(prob, net=net, noise=dl.Dropout(0.25), weight_decay=1e-3))


# -- a cheap sweepable function (NumPy only), for store and CLI tests --------------------------------
CHEAP = "reliability_cheap"


def _cheap_batch(configs):
    out = []
    for cfg in configs:
        rng = np.random.default_rng([cfg["seed"], cfg["n"]])
        traj = rng.normal(size=(cfg["n"], 64)) * cfg["x"]
        loss = np.cumsum(traj[:, 0] ** 2)
        status = "diverged" if cfg["x"] > 1e3 else "max_steps"
        out.append({"status": status, "message": f"x={cfg['x']}",
                    "metrics": {"final_loss": float(loss[-1]), "mean": float(traj.mean())},
                    "trajectory": {"loss": loss, "traj": traj, "times": np.arange(cfg["n"], dtype=float)}})
    return out


def register_cheap():
    from dlnlab.sweep import Field, Sweepable, get_sweepable, register_sweepable, sweepable_names

    if CHEAP in sweepable_names():
        return get_sweepable(CHEAP)
    return register_sweepable(Sweepable(
        name=CHEAP,
        fields={"x": Field("float", 1.0, "scale", low=0.0), "n": Field("int", 20, "length", low=1, high=400),
                "label": Field("str", "run", "free text")},
        run_batch=_cheap_batch, static=("n",), metrics=("final_loss", "mean"), batch_size=4,
        doc="A NumPy-only function for the reliability tests.",
    ))


class SerialExecutor:
    """Runs every batch in this process, in order (the store logic is what is under test)."""

    name = "serial"

    def run(self, batches):
        from dlnlab.sweep._executors import run_batch

        for i, b in enumerate(batches):
            yield i, run_batch(*b)


def serial_executor(executor="local", *, workers=None, scheduler=None):
    return SerialExecutor()
