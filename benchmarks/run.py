"""Run dlnlab's side-by-side benchmarks, print a table of ratios and write benchmarks/results.json.

    python benchmarks/run.py                 # everything, default sizes (about 5-10 minutes on 2 cores)
    python benchmarks/run.py --quick         # reduced sizes, a smoke test (about 1-2 minutes)
    python benchmarks/run.py --only sweep curvature

Benchmarks (one module each, see their docstrings): sweep, hardware, flow, curvature, scaling, cold. PyTorch
(``pip install -e .[bench]``, torch==2.13.0 CPU) is the competitor of sweep and curvature; without it
those rows are skipped. Plots go to benchmarks/plots/ and are shown in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402

NAMES = ("sweep", "hardware", "flow", "curvature", "scaling", "cold")


def _module(name):
    return __import__(f"bench_{name}")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def table(results) -> str:
    lines = [f"{'benchmark':<58} {'dlnlab':>12} {'competitor':>12} {'ratio':>9} {'target':>8}  met",
             "-" * 108]
    for res in results:
        for c in res.get("comparisons", []):
            unit = c.get("unit", "")
            ours, theirs = _common.fmt(c["ours"]), _common.fmt(c["theirs"])
            star = "*" if c.get("estimated") else ""
            lines.append(f"{c['what'][:58]:<58} {ours:>12} {theirs + star:>12} {c['ratio']:>8.3g}x "
                         f"{('>=' + format(c['target'], 'g')):>8}  {'yes' if c['met'] else 'NO'}   [{unit}]")
    lines.append("* competitor time extrapolated from a timed subset (see the notes)")
    return "\n".join(lines)


def markdown(results) -> str:
    """The comparison table as Markdown (pasted into docs/performance.md)."""
    out = ["| benchmark | dlnlab | competitor | ratio | target | met |", "|---|---:|---:|---:|---:|:---:|"]
    for res in results:
        for c in res.get("comparisons", []):
            star = "*" if c.get("estimated") else ""
            out.append(f"| {c['what']} [{c.get('unit', '')}] | {_common.fmt(c['ours'])} | "
                       f"{_common.fmt(c['theirs'])}{star} | {c['ratio']:.3g}x | {c['target']:g} | "
                       f"{'yes' if c['met'] else '**no**'} |")
    return "\n".join(out)


def summary_plot(results, folder: Path) -> Path:
    """One bar per comparison: measured ratio over its target (>= 1 means the target is met)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = [c for r in results for c in r.get("comparisons", []) if c.get("target")]
    labels = [c["what"][:60] for c in comps]
    def score(c):
        if "slope" in c["what"]:  # met inside a band, not above a bound
            return 1.0 if c["met"] else 0.5
        if "<=" in c.get("target_note", ""):  # smaller is better
            return c["target"] / c["ratio"]
        return c["ratio"] / c["target"]

    vals = [score(c) for c in comps]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(comps) + 1.2))
    ax.barh(range(len(comps)), vals, color=["tab:green" if c["met"] else "tab:red" for c in comps])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(comps)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("measured / target (>= 1: met)")
    fig.tight_layout()
    path = folder / "summary.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (smoke test)")
    ap.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    ap.add_argument("--out", default=str(HERE / "results.json"), help="where to write the JSON results")
    ap.add_argument("--plots", default=str(HERE / "plots"), help="folder for the figures ('' to skip)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other benchmarks' results already in --out (rerun a few, keep the rest)")
    args = ap.parse_args(argv)

    env = _common.environment()
    mode = "quick" if args.quick else "full"
    print(f"dlnlab {env['dlnlab']}  jax {env['jax']} ({env['jax_backend']})  torch {env.get('torch')}  "
          f"{env['cpu_count']} cores  load {env['load_average_1min']:.1f}  {mode}")
    results = []
    t_start = time.perf_counter()
    for name in args.only:
        mod = _module(name)
        print(f"\n== {name} ==", flush=True)
        load0 = _common.load()
        t0 = time.perf_counter()
        res = mod.run(quick=args.quick)
        res["seconds"] = time.perf_counter() - t0
        res["load_average"] = [load0, _common.load()]
        results.append(res)
        for row in res.get("rows", []):
            print("  " + "  ".join(f"{k}={_common.fmt(v) if isinstance(v, float) else v}"
                                   for k, v in row.items()))
        for chk in res.get("checks", []):
            print("  check: " + "  ".join(f"{k}={_common.fmt(v) if isinstance(v, float) else v}"
                                          for k, v in chk.items()))
        for note in res.get("notes", []):
            print(f"  note: {note}")
        print(f"  ({res['seconds']:.1f} s, load {load0:.1f} -> {_common.load():.1f})", flush=True)
        if args.plots and hasattr(mod, "plot"):
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            for path in mod.plot(res, Path(args.plots)):
                print(f"  plot: {path}")
    if args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)
        print(f"plot: {summary_plot(results, Path(args.plots))}")
    print()
    print(table(results))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.merge and Path(args.out).exists():
        fresh = {r["name"] for r in results}
        old = json.loads(Path(args.out).read_text())["results"]
        results = [r for r in old if r["name"] not in fresh] + results
        results.sort(key=lambda r: NAMES.index(r["name"]))
        print("merged with the earlier results of " + ", ".join(r["name"] for r in old if r["name"] not in fresh))
    out = {"environment": env, "quick": args.quick, "results": results}
    Path(args.out).write_text(json.dumps(_jsonable(out), indent=1))
    Path(args.out).with_suffix(".md").write_text(markdown(results) + "\n")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
