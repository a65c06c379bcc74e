"""Sweep configs (dicts, TOML text and files) from hypothesis: a clear ConfigError or a valid spec.

A valid spec must expand to normalised run configs: every field present, JSON without NaN, one
distinct run id each, and no more runs than the grid x zip x seeds product. Configs are data only:
the function name is looked up in the registry, so a name such as ``os.system`` is an error and
nothing is imported.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

from dlnlab.errors import ConfigError
from dlnlab.sweep import get_sweepable, load_spec, run_id

rh.register_cheap()
FUNCTIONS = ("teacher_regression", rh.CHEAP)
EVIL_NAMES = ["os.system", "__import__", "dlnlab.sweep._api.sweep", "eval", "subprocess:run",
              "teacher_regression ", "TEACHER_REGRESSION", "../teacher_regression", "", "<script>"]

SCALAR = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=8), st.sampled_from(["gaussian", "flow", "<script>alert(1)</script>"]),
)
VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=3))


def _field_values(fn, name):
    f = fn.all_fields[name]
    if f.choices:
        good = st.sampled_from(list(f.choices))
    elif f.kind == "int":
        lo = int(f.low if f.low is not None else 0)
        good = st.integers(lo, lo + 5)
    elif f.kind == "float":
        lo = float(f.low if f.low is not None else -1.0)
        good = st.floats(lo + 0.01, lo + 3.0)
    elif f.kind in ("floats", "ints"):
        good = st.lists(st.floats(0.1, 3.0) if f.kind == "floats" else st.integers(1, 3),
                        min_size=1, max_size=2)
    elif f.kind == "bool":
        good = st.booleans()
    else:
        good = st.text(max_size=6)
    return good


@st.composite
def sweep_dicts(draw):
    """A valid sweep dict of a registered function, then zero to two corruptions."""
    fn = get_sweepable(draw(st.sampled_from(FUNCTIONS)))
    fields = sorted(k for k in fn.fields if k not in ("teacher_sv", "d_in", "d_out"))
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=3))
    cfg = {"function": fn.name, "seeds": draw(st.one_of(st.integers(1, 3),
                                                         st.lists(st.integers(0, 9), min_size=1,
                                                                  max_size=3, unique=True)))}
    fixed, grid = {}, {}
    for i, k in enumerate(chosen):
        if i % 2:
            grid[k] = draw(st.lists(_field_values(fn, k), min_size=1, max_size=2))
        else:
            fixed[k] = draw(_field_values(fn, k))
    cfg.update(fixed=fixed, grid=grid)
    if draw(st.booleans()) and fn.name == rh.CHEAP and not {"x", "label"} & set(chosen):
        cfg["zip"] = [{"x": [0.5, 1.5], "label": ["a", "b"]}]
    for _ in range(draw(st.integers(0, 2))):
        what = draw(st.sampled_from(["top", "function", "seeds", "fixed", "grid", "zip", "name",
                                     "dup", "seedfield"]))
        if what == "top":
            cfg[draw(st.sampled_from(["fn", "import", "exec", "Grid", "fixed "]))] = draw(VALUE)
        elif what == "function":
            cfg["function"] = draw(st.one_of(st.sampled_from(EVIL_NAMES), SCALAR))
        elif what == "seeds":
            cfg["seeds"] = draw(st.one_of(st.integers(-3, 0), st.integers(10**7, 10**15), VALUE,
                                          st.just([1, 1]), st.just([]), st.just([-1, 2])))
        elif what in ("fixed", "grid"):
            key = draw(st.one_of(st.sampled_from(sorted(fn.all_fields)), st.text(max_size=5)))
            val = draw(VALUE)
            base = cfg[what] if isinstance(cfg[what], dict) else {}
            cfg[what] = {**base, key: val} if draw(st.booleans()) else draw(VALUE)
        elif what == "zip":
            cfg["zip"] = draw(st.one_of(VALUE, st.just([{"x": [1.0], "n": [2, 3]}]),
                                        st.just([{}]), st.just({"lr": [0.1]})))
        elif what == "name":
            cfg["name"] = draw(st.one_of(SCALAR, st.lists(SCALAR, max_size=2)))
        elif what == "dup" and fields:
            k = fields[0]
            cfg["fixed"], cfg["grid"] = {k: draw(_field_values(fn, k))}, {k: [draw(_field_values(fn, k))]}
        elif what == "seedfield":
            base = cfg["grid"] if isinstance(cfg["grid"], dict) else {}
            cfg["grid"] = {**base, "seed": [0, 1]}
    return cfg


def _check_spec(spec, cfg):
    fn = spec.sweepable
    configs = spec.expand()
    bound = len(spec.seeds) * math.prod(len(v) for v in spec.grid.values())
    bound *= math.prod(len(next(iter(z.values()))) for z in spec.zips)
    assert 1 <= len(configs) <= bound
    ids = [run_id(fn.name, c) for c in configs]
    assert len(set(ids)) == len(ids)
    for c in configs:
        assert set(c) == set(fn.all_fields)
        json.dumps(c, allow_nan=False)  # canonical, hashable, no NaN
        assert fn.normalise(c) == c  # normalisation is idempotent


@rh.property_settings(250)
@given(cfg=sweep_dicts())
def test_sweep_dicts(cfg):
    spec = rh.outcome("sweep config (dict)", lambda: load_spec(cfg))
    if spec is not None:
        _check_spec(spec, cfg)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(cfg) -> str:
    """Our own TOML writer for the generated dicts (tables last, as TOML requires)."""
    lines, tables = [], []
    for k, v in cfg.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif k == "zip" and isinstance(v, list) and v and all(isinstance(z, dict) for z in v):
            tables += [("[zip]", z) for z in v]
        else:
            lines.append(f"{json.dumps(k)} = {_toml_value(v)}")
    for k, t in tables:
        lines.append(f"[{k}]" if not k.startswith("[") else "[[zip]]")
        lines += [f"{json.dumps(a)} = {_toml_value(b)}" for a, b in t.items()]
    return "\n".join(lines) + "\n"


def _mangle(text: str, how: str, pos: int) -> bytes:
    raw = text.encode("utf-8")
    pos = pos % (len(raw) + 1)
    return {
        "keep": raw, "truncate": raw[:pos], "garbage": raw[:pos] + b"\xff\xfe[[=\x00" + raw[pos:],
        "quote": raw[:pos] + b'"' + raw[pos:], "bracket": raw[:pos] + b"[" + raw[pos:],
        "eval": raw + b'\nimport = "os"\n', "dup": raw + raw,
    }[how]


@rh.property_settings(200)
@given(cfg=sweep_dicts(), how=st.sampled_from(["keep", "truncate", "garbage", "quote", "bracket",
                                                "eval", "dup"]),
       pos=st.integers(0, 10**6), as_file=st.booleans())
def test_sweep_toml_text_and_files(cfg, how, pos, as_file):
    try:
        text = to_toml(cfg)
    except TypeError:
        return
    raw = _mangle(text, how, pos)
    if as_file:
        fd, path = tempfile.mkstemp(suffix=".toml")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        try:
            spec = rh.outcome("sweep config (TOML file)", lambda: load_spec(path))
        finally:
            os.unlink(path)
    else:
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            return
        s = s if "\n" in s else s + "\n"  # a one-line string would be read as a path
        spec = rh.outcome("sweep config (TOML text)", lambda: load_spec(s))
    if spec is not None:
        _check_spec(spec, cfg)


def test_config_names_are_looked_up_never_imported(monkeypatch):
    """A config cannot make dlnlab import a module or evaluate text: names are dictionary keys."""
    import builtins
    import importlib

    calls, seen = [], []
    real_import = builtins.__import__
    monkeypatch.setattr(importlib, "import_module", lambda *a, **k: calls.append(("import", a)))
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: calls.append(("eval", a)))
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: calls.append(("exec", a)))

    def spy(name, *a, **k):
        seen.append(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", spy)
    names = ["os.system", "subprocess", "pickle", "dlnlab.cli:main", "__import__('shutil')",
             "shutil.rmtree", "dlnlab.sweep._api.sweep"]
    for name in names:
        for text in (f"function = {json.dumps(name)}\nseeds = 1\n",
                     f'function = "teacher_regression"\n[fixed]\ninit = {json.dumps(name)}\n'):
            try:
                load_spec(text)
            except ConfigError as exc:
                assert str(exc).split(":")[0] in ("function", "init")
            else:
                raise AssertionError(f"{name!r} was accepted")
    monkeypatch.undo()
    assert not calls
    assert not {"subprocess", "pickle", "shutil", "dlnlab.cli"} & set(seen)


# -- every numeric field at the edges (issue 13, item 5): a clear error naming it, or a value in its range --------

EDGES = [math.inf, -math.inf, math.nan, 0, 0.0, -0.0, -1, -1.0, -1e300, 1e308, 1.7976931348623157e308, 2**63 - 1,
         2**63, 2**70, 10**30, 1e-320]


def _builtin_functions() -> list[str]:
    """Every sweepable function dlnlab itself registers (not the ones tests register)."""
    from dlnlab.sweep import sweepable_names

    return [n for n in sweepable_names() if get_sweepable(n).run_batch.__module__.startswith("dlnlab.")]


def _numeric_fields():
    for name in sorted(set(_builtin_functions()) | {rh.CHEAP}):
        fn = get_sweepable(name)
        for field, f in sorted(fn.all_fields.items()):
            if f.kind in ("int", "float", "ints", "floats"):
                yield fn, field, f


def test_every_numeric_field_at_inf_nan_zero_negative_and_huge():
    """Each edge value in ``fixed``, in ``grid`` and as TOML text: either one clear error naming the field, or a
    config whose value lies in the field's documented range. A value outside the range that is accepted would be
    a silent acceptance (the goal, asserted here: 0)."""
    silent = []
    for fn, field, f in _numeric_fields():
        if fn.name != rh.CHEAP:  # a built-in function documents a finite range for every number
            assert f.low is not None and f.high is not None and math.isfinite(f.high), field
        wrap = (lambda v: [v]) if f.kind in ("ints", "floats") else (lambda v: v)
        for value in EDGES + ([f.low - 1, f.high * 10 + 1] if f.high is not None else []):
            if field == "seed":
                cfgs = [{"function": fn.name, "seeds": [value]}, {"function": fn.name, "seeds": value}]
            else:
                cfgs = [{"function": fn.name, "fixed": {field: wrap(value)}},
                        {"function": fn.name, "grid": {field: [wrap(value)]}}]
            for cfg in cfgs:
                spec = rh.outcome("sweep config: numeric fields at the edges",
                                  lambda cfg=cfg: load_spec(cfg), field="seeds" if field == "seed" else field)
                texts = []
                if not isinstance(value, float) or math.isfinite(value) or field != "seed":
                    try:
                        texts.append(to_toml(cfg))
                    except TypeError:
                        pass
                for text in texts:
                    rh.outcome("sweep config: numeric fields at the edges (TOML)",
                               lambda text=text: load_spec(text), field="seeds" if field == "seed" else field)
                if spec is None:
                    continue
                for run in spec.expand():
                    v = run[field]
                    for x in (v if isinstance(v, tuple) else (v,)):
                        inside = (math.isfinite(x) and (f.low is None or x >= f.low)
                                  and (f.high is None or x <= f.high))
                        if not inside:
                            silent.append((fn.name, field, value, x))
    assert not silent, f"values outside the documented range accepted: {silent[:5]}"
    rh.OUTCOMES["sweep config: edge values accepted outside their range (goal 0)"] += len(silent)
