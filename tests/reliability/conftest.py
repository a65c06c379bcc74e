"""Reliability suite: counts the generated bad inputs and shows the total.

At the end of a session the terminal summary prints how many generated inputs were rejected with a
clear error (and how many were valid), per category; the numbers are also stored in pytest's cache
under ``dlnlab/reliability``. When every property-based test of this folder ran and passed, fewer
than ``MIN_BAD_INPUTS`` rejected inputs fails the session. Under pytest-xdist (``-n 2``) every worker
hands its counts to the controller, which prints and checks the totals.
"""

from __future__ import annotations

import pytest
import reliability_helpers as rh

_PROPERTY_TESTS: set[str] = set()
_PASSED: set[str] = set()


def _is_property_test(item) -> bool:
    return "reliability" in item.nodeid and item.get_closest_marker("hypothesis") is not None


def pytest_itemcollected(item):
    if _is_property_test(item):
        _PROPERTY_TESTS.add(item.nodeid)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and report.nodeid in _PROPERTY_TESTS:
        _PASSED.add(report.nodeid)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: harmless without the plugin
def pytest_testnodedown(node, error):
    """pytest-xdist controller: add a finished worker's counts to this process's totals."""
    data = getattr(node, "workeroutput", {}).get("dlnlab_reliability")
    if data:
        rh.REJECTED.update(data["rejected"])
        rh.ACCEPTED.update(data["accepted"])
        rh.OUTCOMES.update(data["outcomes"])
        _PROPERTY_TESTS.update(data["property_tests"])
        _PASSED.update(data["passed"])


def _complete() -> bool:
    return bool(_PROPERTY_TESTS) and _PROPERTY_TESTS <= _PASSED


def pytest_sessionfinish(session, exitstatus):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the counts to the controller
        workeroutput["dlnlab_reliability"] = {
            "rejected": dict(rh.REJECTED), "accepted": dict(rh.ACCEPTED), "outcomes": dict(rh.OUTCOMES),
            "property_tests": sorted(_PROPERTY_TESTS), "passed": sorted(_PASSED),
        }
        return
    total = sum(rh.REJECTED.values())
    cache = getattr(session.config, "cache", None)
    if cache is None:  # -p no:cacheprovider
        return _finish(session, total)
    cache.set("dlnlab/reliability", {
        "rejected": dict(rh.REJECTED), "accepted": dict(rh.ACCEPTED), "rejected_total": total,
        "run_outcomes": dict(rh.OUTCOMES),
        "accepted_total": sum(rh.ACCEPTED.values()), "complete": _complete(),
    })
    _finish(session, total)


def _finish(session, total):
    if _complete() and total < rh.MIN_BAD_INPUTS and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if not rh.REJECTED and not rh.ACCEPTED:
        return
    total, ok = sum(rh.REJECTED.values()), sum(rh.ACCEPTED.values())
    tr = terminalreporter
    tr.section("dlnlab reliability: generated inputs")
    for cat in sorted(set(rh.REJECTED) | set(rh.ACCEPTED)):
        tr.write_line(f"  {cat:32s} rejected with a clear error {rh.REJECTED[cat]:5d}   "
                      f"valid {rh.ACCEPTED[cat]:5d}")
    for what, n in sorted(rh.OUTCOMES.items()):
        tr.write_line(f"  {what:55s} {n:5d}")
    tr.write_line(f"  total: {total} bad inputs rejected with a clear error, {ok} valid inputs "
                  "checked (any other exception or a NaN fails its test)")
    if _complete() and total < rh.MIN_BAD_INPUTS:
        tr.write_line(f"  FAIL: fewer than {rh.MIN_BAD_INPUTS} generated bad inputs", red=True)
