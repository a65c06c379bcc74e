"""Store and CLI hardening (issue 13): nothing read from a store or a config chooses a path outside ``--out``, a plot
never mixes two sweeps, a broken store gives one clear line (exit 2), never a traceback.

Sweeps run a NumPy-only sweepable function in this process (the store logic is what is under test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlnlab.cli import main
from dlnlab.sweep import Field, Sweepable, get_sweepable, register_sweepable, sweepable_names
from dlnlab.sweep import _api as sweep_api

CHEAP = "hardening_cheap"


def _batch(configs):
    out = []
    for cfg in configs:
        rng = np.random.default_rng([cfg["seed"], cfg["n"]])
        loss = np.cumsum(rng.normal(size=cfg["n"]) ** 2) * cfg["x"]
        out.append({"status": "max_steps", "message": "", "metrics": {"final_loss": float(loss[-1]),
                                                                      "first": float(loss[0])},
                    "trajectory": {"loss": loss}})
    return out


def _register():
    if CHEAP in sweepable_names():
        return get_sweepable(CHEAP)
    return register_sweepable(Sweepable(
        name=CHEAP, fields={"x": Field("float", 1.0, "scale", low=0.0, high=1e6),
                            "n": Field("int", 5, "length", low=1, high=100)},
        run_batch=_batch, static=("n",), metrics=("final_loss", "first"), batch_size=2))


_register()
CFG = {"function": CHEAP, "seeds": 2, "grid": {"x": [0.5, 1.0, 2.0]}}


class _Serial:
    name = "serial"

    def run(self, batches):
        from dlnlab.sweep._executors import run_batch

        for i, b in enumerate(batches):
            yield i, run_batch(*b)


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _Serial())


def _sweep(out, cfg=CFG, **kw):
    return sweep_api.sweep(cfg, out=out, plot=False, report=False, quiet=True, **kw)


def _cli(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return code, cap.out, cap.err


def _one_clear_line(code, err, field="out"):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dlnlab: error: {field}: "), err
    assert "expected" in lines[0] and "got" in lines[0], err
    return lines[0]


# -- 1. path traversal ---------------------------------------------------------------------------


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_metric_names_from_a_store_never_choose_a_path_outside_out(tmp_path, capsys):
    store = tmp_path / "a" / "b" / "c" / "store"
    _sweep(store)
    evil = "/../../../ESCAPED2"
    meta = json.loads((store / "sweep.json").read_text())
    meta["metrics"] = [evil]
    (store / "sweep.json").write_text(json.dumps(meta))
    df = pd.read_parquet(store / "results.parquet")
    df[evil] = np.arange(len(df), dtype=float)
    df.to_parquet(store / "results.parquet", index=False)
    before = _files_under(tmp_path)
    code, _, err = _cli(capsys, ["plot", store])
    assert code == 2, err
    assert "ESCAPED2" not in " ".join(_files_under(tmp_path) - before)
    assert not list(tmp_path.rglob("*ESCAPED2*"))


@pytest.mark.parametrize("metric", ["../../up", "/abs/path", "a/b", "..", ".hidden", "x\x00y", "sweep\\..\\w", ""])
def test_metric_names_given_on_the_command_line_must_be_slugs(tmp_path, capsys, metric):
    store = tmp_path / "store"
    _sweep(store)
    before = _files_under(tmp_path)
    code, _, err = _cli(capsys, ["plot", store, "--metric", metric])
    line = _one_clear_line(code, err, "--metric")
    assert "letters, digits" in line
    assert _files_under(tmp_path) == before
    assert not (store / "figures").exists()


def test_plot_writes_only_under_out_figures(tmp_path, capsys):
    store = tmp_path / "store"
    _sweep(store)
    before = _files_under(tmp_path)
    code, out, err = _cli(capsys, ["plot", store, "--metric", "final_loss"])
    assert code == 0, err
    new = _files_under(tmp_path) - before
    assert new == {"store/figures/sweep_final_loss.png", "store/figures/sweep_final_loss.svg"}
    assert out.strip().endswith("sweep_final_loss.png")
