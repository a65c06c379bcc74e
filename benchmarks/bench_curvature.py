"""Benchmark 4: Hessian trace, spectral density and top eigenvalue of a net with 1e5-1e6 parameters.

A depth-3 linear net (widths 64-384-384-64, 196,608 parameters; quick: 32-256-256-32, 81,920) at a global
minimum of a regression on 2,000 anisotropic samples (the exactly balanced factorisation of the least-squares
matrix, so the Hessian is positive semi-definite). Everything in float64, on both sides.

- dlnlab: ``dl.curvature.trace`` (Hutchinson and Hutch++, 100 Hessian-vector products each),
  ``dl.curvature.spectral_density`` (SLQ with PyHessian's defaults: one Rademacher probe, 100 Lanczos steps,
  full reorthogonalisation) and ``dl.curvature.top_eigenvalues(method="lanczos")`` on the moment loss. Each is
  timed twice: its first call in this process (tracing and compilation included) and a repeated call at new
  weights (best of three, weights scaled by 1 + 1e-3 k: curvature tracked along a run, the kernels cached).
- matfree (the JAX library; the same Hessian-vector product): its ``decomp.tridiag_sym`` (full
  reorthogonalisation) for the same SLQ and its ``stochtrace`` Monte Carlo estimator for Hutchinson, first and
  repeated calls, to decide whether dlnlab should delegate to it (docs/architecture.md, "Curvature").
- PyTorch, PyHessian's recipe written out here (PyHessian itself is unmaintained): ``nn.Sequential`` of bias-free
  ``nn.Linear`` on the raw samples, the gradient built once with ``create_graph=True``, each Hessian-vector
  product a second ``torch.autograd.grad``; ``trace()`` as Hutchinson with Rademacher vectors (here a fixed 100
  products, PyHessian's ``maxIter``, rather than its early stop at a relative change of 1e-3), ``density()``
  with ``iter=100, n_v=1`` (Lanczos with full reorthogonalisation against every earlier vector, eigenvalues of
  the tridiagonal matrix and squared first components as weights), and ``eigenvalues()`` (power iteration,
  here to a relative change of 1e-10). PyTorch runs in its own subprocess, before JAX starts there (it has
  nothing to compile, so its one run is both its first and its repeated call; quick mode keeps the faster of two).
- Sharpness tracked every 100 steps of a 10,000-step GD run (the engine's summary, warm-started Lanczos) against
  the run recording the loss only, both compiled; every recorded value against ``dl.curvature.sharpness``.
- Accuracy: the exact trace in closed form (the loss is linear in each weight entry, so only the Gauss-Newton
  part reaches the diagonal: ``tr H = sum_i 2 ||P_i||_F^2 tr(Q_i Sxx Q_i^T)`` with ``P_i = W_L..W_{i+1}``,
  ``Q_i = W_{i-1}..W_1``) against every trace estimate; the SLQ top node and first moment against the Lanczos
  top eigenvalue and ``tr H / n``; the top eigenvalues of both sides to 1e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS, SAMPLES, PROBES = 100, 100, 1  # PyHessian's defaults: density(iter=100, n_v=1), trace(maxIter=100)


def config(quick: bool) -> dict:
    return dict(widths=(32, 256, 256, 32) if quick else (64, 384, 384, 64), n_samples=2000, steps=STEPS,
                samples=SAMPLES, tol=1e-10, max_iter=2000, torch_repeats=2 if quick else 1)


# -- PyTorch side (runs in a subprocess that never imports JAX) -----------------------------------------------
def _torch_main(spec_path: str) -> None:
    import torch

    spec = json.loads(Path(spec_path).read_text())
    data = np.load(spec["data"])
    X, Y = data["X"], data["Y"]
    params = [data[f"W{i}"] for i in range(spec["depth"])]
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    dt = torch.float64
    out = {"threads": threads}

    def build():
        layers = [torch.nn.Linear(W.shape[1], W.shape[0], bias=False).to(dt) for W in params]
        model = torch.nn.Sequential(*layers)
        with torch.no_grad():
            for layer, W in zip(layers, params):
                layer.weight.copy_(torch.tensor(W, dtype=dt))
        ps = list(model.parameters())
        Xt, Yt = torch.tensor(X, dtype=dt), torch.tensor(Y, dtype=dt)
        loss = ((model(Xt) - Yt) ** 2).sum(dim=1).mean()  # the library's squared loss (no 1/2)
        grads = torch.autograd.grad(loss, ps, create_graph=True)
        return ps, grads

    def hvp(ps, grads, v):
        return torch.autograd.grad(grads, ps, grad_outputs=v, only_inputs=True, retain_graph=True)

    def dot(a, b):
        return sum(torch.sum(x * y) for x, y in zip(a, b))

    def rademacher(ps):
        v = [torch.randint_like(p, high=2) for p in ps]
        for x in v:
            x[x == 0] = -1
        return v

    def trace():  # PyHessian trace(): Hutchinson with Rademacher vectors
        ps, grads = build()
        vals = []
        for _ in range(spec["samples"]):
            v = rademacher(ps)
            vals.append(float(dot(hvp(ps, grads, v), v)))
        return float(np.mean(vals))

    def density():  # PyHessian density(iter, n_v): Lanczos with full reorthogonalisation
        ps, grads = build()
        m = spec["steps"]
        v = rademacher(ps)
        norm = torch.sqrt(dot(v, v))
        v = [x / norm for x in v]
        vs, alphas, betas = [v], [], []
        for i in range(m):
            if i == 0:
                w = hvp(ps, grads, v)
                alpha = dot(w, v)
                w = [a - alpha * b for a, b in zip(w, v)]
            else:
                beta = torch.sqrt(dot(w, w))
                betas.append(beta)
                for u in vs:  # orthonormalise against every earlier vector
                    c = dot(w, u)
                    w = [a - c * b for a, b in zip(w, u)]
                norm = torch.sqrt(dot(w, w))
                v = [x / norm for x in w]
                vs.append(v)
                w = hvp(ps, grads, v)
                alpha = dot(w, v)
                w = [a - alpha * b - beta * c for a, b, c in zip(w, v, vs[-2])]
            alphas.append(alpha)
        T = torch.diag(torch.stack(alphas)) + torch.diag(torch.stack(betas), 1) + torch.diag(torch.stack(betas), -1)
        evals, evecs = torch.linalg.eigh(T)
        return evals.numpy().tolist(), (evecs[0] ** 2).numpy().tolist()

    def power():  # PyHessian eigenvalues(top_n=1)
        ps, grads = build()
        v = [torch.randn_like(p) for p in ps]
        norm = torch.sqrt(dot(v, v))
        v = [x / norm for x in v]
        eig = None
        for it in range(1, spec["max_iter"] + 1):
            Hv = hvp(ps, grads, v)
            new = float(dot(Hv, v))
            norm = torch.sqrt(dot(Hv, Hv))
            v = [h / norm for h in Hv]
            if eig is not None and abs(new - eig) / (abs(eig) + 1e-6) < spec["tol"]:
                return new, it
            eig = new
        return eig, spec["max_iter"]

    for name, fn in (("trace", trace), ("density", density), ("power", power)):
        best, result = float("inf"), None
        for _ in range(spec["torch_repeats"]):
            t0 = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = {"seconds": best, "result": result}
    Path(spec["out"]).write_text(json.dumps(out))


def run_torch(c, X, Y, params) -> dict | None:
    """PyHessian's recipe in a fresh Python process (no JAX there); None without PyTorch."""
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return None
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, X=X, Y=Y, **{f"W{i}": np.asarray(W) for i, W in enumerate(params)})
        spec = dict(data=str(data), depth=len(params), out=str(Path(tmp) / "out.json"), samples=c["samples"],
                    steps=c["steps"], tol=c["tol"], max_iter=c["max_iter"], torch_repeats=c["torch_repeats"])
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        subprocess.run([sys.executable, __file__, "--torch", str(spec_path)], check=True, env=env)
        return json.loads(Path(spec["out"]).read_text())


# -- dlnlab side ------------------------------------------------------------------------------------------------
def problem(c):
    import jax
    from _common import regression_data

    import dlnlab as dl

    d_in, d_out = c["widths"][0], c["widths"][-1]
    X, Y = regression_data(c["n_samples"], d_in, d_out, seed=2)
    X[:, 0] *= 2.0  # a clearly dominant input direction: a spectral gap that power iteration can resolve
    prob = dl.Regression.from_data(X, Y)
    A_ls = np.linalg.solve(np.asarray(prob.Sxx), np.asarray(prob.Syx).T).T
    params = dl.Net(c["widths"]).init(jax.random.key(0), scheme="balanced", target=A_ls)
    return X, Y, prob, params


def exact_trace(prob, params) -> float:
    """``tr H = sum_i 2 ||P_i||_F^2 tr(Q_i Sxx Q_i^T)`` for ``E||W_L..W_1 x - y||^2`` (see the module docstring)."""
    Ws = [np.asarray(W) for W in params]
    Sxx = np.asarray(prob.Sxx)
    total = 0.0
    for i in range(len(Ws)):
        P = np.eye(Ws[i].shape[0])
        for W in Ws[i + 1:]:
            P = W @ P
        Q = np.eye(Ws[0].shape[1])
        for W in Ws[:i]:
            Q = W @ Q
        total += 2 * np.sum(P**2) * np.trace(Q @ Sxx @ Q.T)
    return float(total)


def _timed(fn):
    from _common import Timer

    with Timer() as t:
        out = fn()
    return out, t.s


def _first_and_repeated(fn, params):
    """(result, first-call seconds, best repeated-call seconds at weights moved by 1e-3 k)."""
    out, first = _timed(lambda: fn(params))
    again = min(_timed(lambda k=k: fn(tuple(W * (1 + 1e-3 * k) for W in params)))[1] for k in range(1, 4))
    return out, first, again


def _matfree_rows(obj, params, c):
    """matfree's Lanczos (SLQ) and Monte Carlo trace on dlnlab's Hessian-vector product."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from matfree import decomp, stochtrace

    from dlnlab.curvature._operator import hvp_flat

    steps, samples = c["steps"], c["samples"]
    tridiag = decomp.tridiag_sym(steps, materialize=True, reortho="full", custom_vjp=False)

    @eqx.filter_jit
    def slq(obj, params, key):
        x, _ = ravel_pytree(params)
        v = jax.random.rademacher(key, x.shape, x.dtype)
        _, T, *_ = tridiag(lambda w: hvp_flat(obj, params, w), v)
        theta, Y = jnp.linalg.eigh(T)
        return theta, Y[0] ** 2

    @eqx.filter_jit
    def hutchinson(obj, params, key):
        x, _ = ravel_pytree(params)
        sampler = stochtrace.sampler_signs(x, num=samples)
        est = stochtrace.estimator_monte_carlo(stochtrace.monte_carlo_trace(), sampler)
        return est(lambda w: hvp_flat(obj, params, w), key)

    key = jax.random.key(0)
    (theta, _), t_slq, t_slq2 = _first_and_repeated(lambda p: jax.block_until_ready(slq(obj, p, key)), params)
    tr, t_tr, t_tr2 = _first_and_repeated(lambda p: jax.block_until_ready(hutchinson(obj, p, key)), params)
    return dict(slq_top=float(theta[-1]), slq=(t_slq, t_slq2), trace=float(tr), hutchinson=(t_tr, t_tr2))


def tracked_sharpness(quick: bool) -> tuple[list, list, list, list]:
    """Sharpness recorded every 100 steps of a 10,000-step GD run (``dl.Record(n=100, summaries=("loss",
    "sharpness"))``, the engine's warm-started Lanczos) against the same run recording the loss only; each timed
    on its second call (compiled), and every recorded value checked against ``dl.curvature.sharpness`` recomputed
    from the params recorded at that step."""
    import jax
    import jax.numpy as jnp
    from _common import Timer, regression_data
    from jax.flatten_util import ravel_pytree

    import dlnlab as dl

    d_in, d_out, width = (16, 8, 64) if quick else (32, 16, 128)
    X, Y = regression_data(1000, d_in, d_out, seed=4)
    obj = dl.Objective(dl.Regression.from_data(X, Y))
    p0 = dl.Net((d_in, width, width, d_out)).init(jax.random.key(0), scheme="gaussian", scale=0.1)
    gd = dl.GD(lr=0.02, steps=10_000)
    flat = dl.summaries.Function("flat", lambda p: ravel_pytree(p)[0])
    times = {}
    for label, summ in (("loss only", ("loss",)), ("loss + sharpness", ("loss", "sharpness"))):
        rec = dl.Record(n=100, summaries=summ)
        jax.block_until_ready(dl.train(obj, p0, gd, record=rec).params)  # compile
        best = float("inf")
        for _ in range(2):
            with Timer() as t:
                jax.block_until_ready(dl.train(obj, p0, gd, record=rec).params)
            best = min(best, t.s)
        times[label] = best
    run = dl.train(obj, p0, gd, record=dl.Record(n=100, summaries=("loss", "sharpness", flat)))
    _, unravel = ravel_pytree(p0)
    tracked = np.asarray(run.history["sharpness"])
    full = np.array([dl.curvature.sharpness(obj, unravel(jnp.asarray(x))) for x in np.asarray(run.history["flat"])])
    err = np.abs(tracked - full) / np.abs(full)
    ratio = times["loss + sharpness"] / times["loss only"]
    n = sum(int(np.size(W)) for W in p0)
    rows = [dict(method=f"GD 10,000 steps, {n} params, {label}, repeated call", seconds=t)
            for label, t in times.items()]
    comps = [dict(what="sharpness every 100 of 10,000 GD steps: run time with / without", ours=ratio, theirs=1.0,
                  unit="ratio (<= 1.5 is met)", ratio=ratio, target=1.5, met=ratio <= 1.5, estimated=False,
                  target_note="met when <= target")]
    checks = [dict(what="tracked sharpness vs dl.curvature.sharpness at all 101 records (max rel. diff)",
                   rel_diff=float(err.max()))]
    notes = [f"tracked sharpness: max relative difference {err.max():.1e} from a full recomputation at every "
             f"record (median {np.median(err):.1e}; the tracked value is a Rayleigh-Ritz lower bound)"]
    return rows, comps, checks, notes


def run(quick: bool = False) -> dict:
    import jax

    import dlnlab as dl

    c = config(quick)
    X, Y, prob, params = problem(c)
    n = sum(int(np.size(W)) for W in params)
    torch_res = run_torch(c, X, Y, params)  # before any dlnlab kernel compiles: the subprocess has the cores
    obj = dl.Objective(prob)
    exact = exact_trace(prob, params)
    rows, comparisons, checks, notes = [], [], [], []
    # One-time costs of the process (first dispatches, first compilation) are paid on a tiny net of other shapes,
    # so first-call times are what one more kind of call costs in a session.
    tiny = dl.Objective(dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 1.0))
    tiny_params = dl.Net((2, 3, 1)).init(jax.random.key(0), scheme="gaussian", scale=0.5)
    dl.curvature.trace(tiny, tiny_params, method="hutchinson", num_samples=2)

    C = dl.curvature
    hutch, t_h, t_h2 = _first_and_repeated(
        lambda p: C.trace(obj, p, method="hutchinson", num_samples=c["samples"]), params)
    hpp, t_pp, t_pp2 = _first_and_repeated(lambda p: C.trace(obj, p, method="hutch++", num_samples=c["samples"]),
                                           params)
    dens, t_d, t_d2 = _first_and_repeated(
        lambda p: C.spectral_density(obj, p, num_probes=PROBES, num_steps=c["steps"]), params)
    lz, t_lz, t_lz2 = _first_and_repeated(lambda p: C.top_eigenvalues(obj, p, k=1, tol=c["tol"]), params)
    top = float(lz.values[0])
    rel = lambda a, b: abs(a - b) / abs(b)
    rows += [
        dict(method="exact trace (closed form)", seconds=None, value=exact),
        dict(method=f"dlnlab trace hutchinson ({c['samples']} HVPs), first / repeated call", seconds=t_h,
             repeated=t_h2, value=hutch.value, rel_err=rel(hutch.value, exact), std_error=hutch.std_error),
        dict(method=f"dlnlab trace hutch++ ({c['samples']} HVPs), first / repeated call", seconds=t_pp,
             repeated=t_pp2, value=hpp.value, rel_err=rel(hpp.value, exact), std_error=hpp.std_error),
        dict(method=f"dlnlab spectral_density (SLQ {PROBES} probe x {c['steps']} steps), first / repeated call",
             seconds=t_d, repeated=t_d2, top_node=float(dens.nodes.max()), mean=dens.moment(1)),
        dict(method="dlnlab top eigenvalue (compiled Lanczos), first / repeated call", seconds=t_lz,
             repeated=t_lz2, value=top),
    ]
    checks += [dict(what="dlnlab hutch++ vs exact trace", rel_diff=rel(hpp.value, exact)),
               dict(what="dlnlab hutchinson vs exact trace", rel_diff=rel(hutch.value, exact)),
               dict(what="dlnlab SLQ top node vs Lanczos top eigenvalue", rel_diff=rel(float(dens.nodes.max()), top))]
    try:
        mf = _matfree_rows(obj, params, c)
    except ImportError:
        mf = None
        notes.append("matfree is not installed (pip install -e .[bench]): its rows are skipped")
    if mf is not None:
        rows += [dict(method=f"matfree tridiag_sym SLQ ({c['steps']} steps), first / repeated call",
                      seconds=mf["slq"][0], repeated=mf["slq"][1], top_node=mf["slq_top"]),
                 dict(method=f"matfree stochtrace Hutchinson ({c['samples']} HVPs), first / repeated call",
                      seconds=mf["hutchinson"][0], repeated=mf["hutchinson"][1], value=mf["trace"],
                      rel_err=rel(mf["trace"], exact))]
        checks.append(dict(what="matfree SLQ top node vs Lanczos", rel_diff=rel(mf["slq_top"], top)))
        notes.append(f"matfree vs dlnlab (same HVP): SLQ first call {mf['slq'][0] / t_d:.2f}x dlnlab's time, "
                     f"repeated {mf['slq'][1] / t_d2:.2f}x; Hutchinson first {mf['hutchinson'][0] / t_h:.2f}x, "
                     f"repeated {mf['hutchinson'][1] / t_h2:.2f}x (above 1: dlnlab faster)")
    if torch_res is not None:
        tt, td, tp = (torch_res[k]["seconds"] for k in ("trace", "density", "power"))
        tr_val = torch_res["trace"]["result"]
        evals, weights = (np.asarray(a) for a in torch_res["density"]["result"])
        lam_pt, it_pt = torch_res["power"]["result"]
        detail = f"{torch_res['threads']} thread(s), best of {c['torch_repeats']}"
        rows += [dict(method=f"PyTorch PyHessian trace() (Hutchinson, {c['samples']} HVPs)", seconds=tt,
                      value=tr_val, rel_err=rel(tr_val, exact), detail=detail),
                 dict(method=f"PyTorch PyHessian density(iter={c['steps']}, n_v=1)", seconds=td,
                      top_node=float(evals.max()), mean=float(np.sum(weights * evals)), detail=detail),
                 dict(method="PyTorch PyHessian eigenvalues() (power iteration)", seconds=tp, value=lam_pt,
                      hvps=it_pt, detail=detail)]
        checks += [dict(what="PyTorch Hutchinson vs exact trace", rel_diff=rel(tr_val, exact)),
                   dict(what="PyTorch SLQ top node vs dlnlab Lanczos", rel_diff=rel(float(evals.max()), top)),
                   dict(what="PyTorch power vs dlnlab Lanczos", rel_diff=rel(lam_pt, top))]
        for what, ours, ours2, theirs in (("Hessian trace (hutch++)", t_pp, t_pp2, tt),
                                          ("Hessian trace (hutchinson)", t_h, t_h2, tt),
                                          ("spectral density (SLQ)", t_d, t_d2, td),
                                          ("top Hessian eigenvalue (lanczos)", t_lz, t_lz2, tp)):
            for label, t, target in (("first call", ours, 5.0), ("repeated call", ours2, 20.0)):
                comparisons.append(dict(what=f"{what}: dlnlab {label} vs PyTorch PyHessian recipe", ours=1.0 / t,
                                        theirs=1.0 / theirs, unit="1/s", ratio=theirs / t, target=target,
                                        met=theirs / t >= target, estimated=False))
    else:
        notes.append("PyTorch is not installed (pip install -e .[bench]): its rows are skipped")
    try:
        t_rows, t_comps, t_checks, t_notes = tracked_sharpness(quick)
        rows, comparisons, checks, notes = rows + t_rows, comparisons + t_comps, checks + t_checks, notes + t_notes
    except Exception as exc:  # noqa: BLE001 - the engine's summaries are another module: report, do not hide
        notes.append(f"tracked sharpness not measured: {type(exc).__name__}: {exc}")
    notes.append(f"{n} parameters, {c['n_samples']} samples, float64; first calls include tracing and "
                 "compilation (dlnlab, matfree); PyTorch in a subprocess started before any dlnlab kernel compiled")
    notes.append(f"trace estimates with {c['samples']} HVPs: hutch++ error {rel(hpp.value, exact):.1e} "
                 f"(reported std error {hpp.std_error / exact:.1e} relative), hutchinson {rel(hutch.value, exact):.1e}"
                 f" ({hutch.std_error / exact:.1e})")
    return dict(name="curvature", title="4. Curvature", config=c, rows=rows, comparisons=comparisons,
                checks=checks, notes=notes)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--torch":
        _torch_main(sys.argv[2])
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import _common  # noqa: F401  (float64, like the other benchmarks)

        res = run(quick="--quick" in sys.argv)
        for key in ("rows", "checks", "comparisons", "notes"):
            for item in res[key]:
                print(item)
