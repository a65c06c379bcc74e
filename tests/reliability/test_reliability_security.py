"""Security: configs are data, arrays are never unpickled, the report escapes every string, Dask
connects only where it is told.
"""

from __future__ import annotations

import ast
import html.parser
import os
from pathlib import Path

import pytest
import reliability_helpers as rh

import dlnlab
from dlnlab.errors import ConfigError
from dlnlab.report import write_report
from dlnlab.sweep import _api as sweep_api
from dlnlab.sweep import _executors

os.environ.setdefault("DLNLAB_STORE_KEY", "dlnlab-tests")  # sign test stores with a test key, not ~/.config

SRC = Path(dlnlab.__file__).parent
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else (
                (ast.unparse(f.value) + "." + f.attr) if isinstance(f, ast.Attribute) else "")
            yield name, node


# The only modules allowed to import a computed name: experiment discovery imports the targets of dlnlab's fixed
# table of built-in experiments and of the "dlnlab.experiments" entry points of installed packages (code the user
# installed, as the experiment contract requires); never a name read from a config, a store or the command line.
_LOADERS = {"experiments/_registry.py"}


def test_no_eval_exec_pickle_or_dynamic_import_in_the_package():
    """A static scan of every module: no code path can evaluate or unpickle data from a file."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(SRC)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for m in mods:
                    if m.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"):
                        problems.append(f"{rel}:{node.lineno} imports {m}")
        for name, node in _calls(tree):
            short = name.split(".")[-1]
            if name in ("eval", "exec", "compile"):
                problems.append(f"{rel}:{node.lineno} calls {name}")
            literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
            if name in ("__import__", "importlib.import_module") and not literal and str(rel) not in _LOADERS:
                problems.append(f"{rel}:{node.lineno} imports a computed name with {name}")
            if name in ("os.system", "os.popen") or (
                short in ("run", "Popen", "call", "check_output")
                and any(k.arg == "shell" for k in node.keywords)
            ):
                problems.append(f"{rel}:{node.lineno} runs a shell: {name}")
            if short in ("read_pickle", "load") and name.split(".")[0] in ("pd", "pandas", "yaml"):
                problems.append(f"{rel}:{node.lineno} calls {name}")
            if short == "load" and name.split(".")[0] in ("np", "numpy", "jnp"):
                ok = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                         and k.value.value is False for k in node.keywords)
                if not ok:
                    problems.append(f"{rel}:{node.lineno} calls {name} without allow_pickle=False")
    assert not problems, "\n".join(problems)


def test_the_scan_would_catch_what_it_forbids(tmp_path):
    bad = "import numpy as np\nx = np.load('a.npy')\neval('1')\n__import__(name)\n"
    names = [n for n, _ in _calls(ast.parse(bad))]
    assert names == ["np.load", "eval", "__import__"]


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.text, self.links = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [k for k, _ in attrs if k.lower().startswith("on")]
        self.links += [v for k, v in attrs if k.lower() in ("src", "href") and v and "://" in v]

    def handle_data(self, data):
        self.text.append(data)


def _parse(text):
    p = _Tags()
    p.feed(text)
    return p


def test_report_escapes_every_string_from_configs_and_claims(tmp_path):
    claims = [{"paper": EVIL, "claim": EVIL, "statement": EVIL, "expected": EVIL, "measured": [EVIL],
               "tolerance": {EVIL: EVIL}, "passed": False}]

    class Exp:
        name, title, reference, bibtex = "x" + EVIL, EVIL, EVIL, "@misc{" + EVIL + "}"

    path = write_report(tmp_path, claims=claims, experiments=[Exp()], config={EVIL: EVIL}, title=EVIL)
    text = path.read_text()
    p = _parse(text)
    assert "script" not in p.tags and "img" not in p.tags and not p.handlers
    assert "".join(p.text).count('<script>alert("x")</script>') >= 8  # shown as text, verbatim


def test_sweep_report_escapes_names_and_config_strings(tmp_path):
    rh.register_cheap()
    cfg = {"name": EVIL, "function": rh.CHEAP, "seeds": 1,
           "grid": {"label": [EVIL, "plain"]}, "fixed": {"n": 3}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_api, "make_executor", rh.serial_executor)
        df = sweep_api.sweep(cfg, out=tmp_path, plot=False, quiet=True)
    assert len(df) == 2 and set(df["status"]) == {"max_steps"}
    p = _parse((tmp_path / "report.html").read_text())
    assert "script" not in p.tags and "img" not in p.tags and not p.handlers
    assert not p.links  # nothing is loaded from the network
    text = "".join(p.text)
    assert EVIL in text  # the sweep name and the run table show the string as text


class _FakeClient:
    seen: list = []

    def __init__(self, address=None, *a, **k):
        _FakeClient.seen.append(address)
        raise OSError("refused (test)")


class _FakeCluster:
    kwargs: dict = {}

    def __init__(self, **kw):
        _FakeCluster.kwargs = kw
        raise OSError("no cluster in this test")


def test_dask_connects_only_to_the_given_address(monkeypatch):
    import dask
    import distributed

    monkeypatch.setattr(distributed, "Client", _FakeClient)
    monkeypatch.setattr(distributed, "LocalCluster", _FakeCluster)
    batches = [(rh.CHEAP, [{"x": 1.0, "n": 2, "label": "a", "seed": 0}], 4)]
    with dask.config.set({"scheduler-address": "tcp://203.0.113.7:8786"}):
        _FakeClient.seen = []
        ex = _executors.make_executor("dask", scheduler="tcp://127.0.0.1:1")
        with pytest.raises(ConfigError, match=r"scheduler: .*tcp://127\.0\.0\.1:1"):
            list(ex.run(batches))
        assert _FakeClient.seen == ["tcp://127.0.0.1:1"]  # that address, and no other
        _FakeClient.seen = []
        with pytest.raises(OSError, match="no cluster"):
            list(_executors.make_executor("dask").run(batches))
        assert _FakeClient.seen == []  # no connection attempt before the local cluster exists
    kw = _FakeCluster.kwargs
    assert kw.get("host") in ("127.0.0.1", "localhost")  # the local cluster listens on loopback only
    dash = kw.get("dashboard_address")
    assert dash is None or str(dash).startswith(("127.0.0.1", "localhost"))


@pytest.mark.parametrize("bad", ["8786", "localhost:8786", "", "tcp//x", 8786, ["tcp://a:1"]])
def test_scheduler_addresses_are_validated(bad):
    with pytest.raises(ConfigError, match="scheduler"):
        _executors.make_executor("dask", scheduler=bad)
    with pytest.raises(ConfigError, match="scheduler"):
        _executors.make_executor("local", scheduler="tcp://127.0.0.1:8786")


@pytest.mark.parametrize("bad", ["\x00", "\u202e", "\u2066", "\x1b[31m", "\x7f", "\u200f"])
def test_control_and_bidi_characters_never_reach_the_report(tmp_path, bad):
    """A NUL makes the HTML invalid; U+202E (right-to-left override) and friends make text display reversed (a
    name can pose as another). They are shown as visible escapes instead, in the <title> and everywhere else."""
    rh.register_cheap()
    name = f"run{bad}gnp.exe"
    cfg = {"name": name, "function": rh.CHEAP, "seeds": 1, "grid": {"label": [name, "plain"]}, "fixed": {"n": 3}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_api, "make_executor", rh.serial_executor)
        sweep_api.sweep(cfg, out=tmp_path, plot=False, quiet=True)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert bad not in text
    title = text.split("<title>", 1)[1].split("</title>", 1)[0]
    shown = bad.encode("unicode_escape").decode("ascii")
    assert title == f"dlnlab sweep: run{shown}gnp.exe", title
    (tmp_path / "r").mkdir()
    path = write_report(tmp_path / "r", claims=[], config={name: name}, title=name)
    assert bad not in path.read_text(encoding="utf-8")
