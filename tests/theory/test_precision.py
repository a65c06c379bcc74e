"""Theory computes in NumPy float64 whatever JAX's 64-bit flag says: every public function of the theory modules
of the four seed papers (exact, flat, saddles, margin, modes) is called in two fresh processes, one with
``jax_enable_x64`` and one without, on inputs exactly representable in float32 (so both see the same numbers).

- numbers (closed forms, eigenvalues, solutions) must be float64 and agree to 1e-10;
- parameter tuples meant as initial weights (``Solution.params()``, ``flattest_minimum``, ``escape_params``)
  are JAX arrays in JAX's default dtype, computed in float64 and rounded: they agree to float32 rounding;
- the JAX array helpers of ``margin`` (predictor, margins, alignment, Lemma 2 terms) are array functions that
  work in the dtype they are given: they agree to float32 rounding;
- ``modes.aligned_init`` and ``saddles.saddle_params`` draw a random rotation with JAX's generator, whose
  numbers depend on the dtype: only their shapes are compared.
"""

import json
import subprocess
import sys

import numpy as np

PROBE = r'''
import json, sys
import jax
if sys.argv[1] == "x64":
    jax.config.update("jax_enable_x64", True)
import numpy as np
import dlnlab as dl
from dlnlab.theory import exact, flat, saddles, margin, modes

# Dyadic data: exactly representable in float32, so both runs see the same inputs.
Sxx = np.array([[4.0, 0.5, 0.0], [0.5, 2.0, 0.25], [0.0, 0.25, 1.0]])
Syx = np.array([[2.0, 1.0, 0.5], [0.5, -1.0, 0.25]])
prob = dl.Regression.from_moments(Sxx, Syx, 8.0)
prob1 = dl.Regression.from_moments(Sxx, Syx[:1], 6.0)
wprob = dl.Regression.from_moments(np.eye(3), np.array([[3.0, 0.0, 0.0], [0.0, 1.5, 0.0]]), 12.0)
net = dl.Net((3, 4, 2))
Ws = (np.array([[1.0, 0.5, 0.0], [0.25, -0.5, 1.0], [0.0, 0.5, 0.5], [1.0, 0.0, -0.25]]),
      np.array([[0.5, 1.0, -0.5, 0.25], [0.0, 0.5, 1.0, -1.0]]))
X = np.array([[1.0, 0.5], [2.0, 1.0], [-1.0, -0.5], [-1.5, -2.0], [0.5, 2.0], [-0.5, -1.5]])
y = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
P = (np.array([[1.0, 0.5], [0.25, -0.5]]), np.array([[0.5, 1.0]]))

out = {}
def put(name, fn):
    try:
        v = fn()
    except Exception as exc:  # noqa: BLE001
        out[name] = f"ERROR {type(exc).__name__}: {exc}"[:300]
        return
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(v) if np.asarray(x).dtype.kind in "fiub"]
    out[name] = {"dtypes": sorted({str(np.asarray(x).dtype) for x in leaves if np.asarray(x).dtype.kind == "f"}),
                 "values": [np.asarray(x, dtype=np.float64).ravel().tolist() for x in leaves]}

sol = exact.solve(prob1, (3, 4, 4, 1), 0.05)
put("exact.solve", lambda: (sol.loss, sol.end_to_end))
put("exact.solve.params", lambda: sol.params())
put("exact.critical_weight_decay", lambda: exact.critical_weight_decay(prob1, (3, 4, 4, 1)))
put("exact.hessian_at_zero", lambda: exact.hessian_at_zero(prob1, (3, 4, 4, 1), 0.05))
drop = exact.solve(prob1, (3, 4, 1), 0.05, dl.Dropout(0.25))
put("exact.prediction_variance", lambda: exact.prediction_variance(drop))
put("flat.target", lambda: flat.target(prob))
sq = dl.Regression.from_moments(np.eye(3), np.array([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 20.0)
minimum = (np.diag([2.0, 1.0, 0.0]), np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # W2 W1 = Syx: a global minimum
put("flat.sharpness_at_minimum", lambda: flat.sharpness_at_minimum(sq, minimum))
put("flat.flattest_sharpness", lambda: flat.flattest_sharpness(prob, 3, n_starts=4))
put("flat.flattest_direction", lambda: flat.flattest_direction(prob, 3, n_starts=4))
put("flat.critical_step", lambda: flat.critical_step(prob, 3, n_starts=4))
put("flat.balanced_sharpness", lambda: flat.balanced_sharpness(prob, 3))
put("flat.flattest_minimum", lambda: flat.flattest_minimum(wprob, (3, 3, 2)))
put("flat.layer_gains", lambda: flat.layer_gains(Ws, np.array([1.0, 0.0, 0.0])))
put("flat.gain_interval", lambda: flat.gain_interval(3, 2.0))
put("flat.coupling", lambda: flat.coupling(Ws))
put("flat.coupling_scores", lambda: flat.coupling_scores(Ws))
put("flat.subspace_coupling", lambda: flat.subspace_coupling(Ws, 1))
put("flat.path_coupling", lambda: flat.path_coupling(Ws, np.array([1.0, 0.0, 0.0])))
put("saddles.escape_direction", lambda: saddles.escape_direction(prob))
put("saddles.escape_speed", lambda: saddles.escape_speed(prob, 3))
put("saddles.escape_params", lambda: saddles.escape_params(net, prob))
seq = saddles.saddle_sequence(prob)
put("saddles.saddle_sequence", lambda: [(s.rank, s.loss, s.end_to_end) for s in seq])
put("saddles.predicted_escape_times", lambda: saddles.predicted_escape_times(prob, depth=2, sigma=0.01, width=4))
put("saddles.depth2_mode_scale", lambda: saddles.depth2_mode_scale(Ws, prob))
put("saddles.saddle_params", lambda: saddles.saddle_params(net, seq[1]))
put("saddles.saddle_distance", lambda: saddles.saddle_distance(Ws))
put("saddles.end_to_end_ntk", lambda: saddles.end_to_end_ntk(Ws))
put("saddles.init_distances", lambda: saddles.init_distances(prob, tuple(0.01 * W for W in Ws)))
mm = margin.max_margin(X, y)
put("margin.max_margin", lambda: (mm.direction, mm.margin))
put("margin.predictor", lambda: margin.predictor(P))
put("margin.max_margin_cosine", lambda: margin.max_margin_cosine(np.array([1.0, 0.5]), mm.direction))
put("margin.normalized_margin", lambda: margin.normalized_margin(np.array([1.0, 0.5]), X, y))
put("margin.frobenius_margin", lambda: margin.frobenius_margin(P, X, y))
put("margin.end_to_end_alignment", lambda: margin.end_to_end_alignment(P))
put("margin.balance_constant", lambda: margin.balance_constant(P))
put("margin.lemma2_terms", lambda: margin.lemma2_terms(P))
put("margin.lemma2", lambda: margin.lemma2(P, P))
put("modes.mode_strength", lambda: modes.mode_strength(2.0, 1e-3, np.array([0.0, 1.0, 5.0]), depth=3))
put("modes.target_modes", lambda: modes.target_modes(wprob))
put("modes.end_to_end_trajectory", lambda: modes.end_to_end_trajectory(wprob, 1e-3, np.array([0.0, 2.0]), depth=2))
put("modes.aligned_init", lambda: modes.aligned_init(net, wprob, 1e-3))
print(json.dumps(out))
'''

ROUNDED = {"exact.solve.params", "flat.flattest_minimum", "saddles.escape_params", "margin.predictor",
           "margin.max_margin_cosine", "margin.normalized_margin", "margin.frobenius_margin",
           "margin.end_to_end_alignment", "margin.lemma2_terms"}
RANDOM = {"saddles.saddle_params", "modes.aligned_init"}


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_theory_is_float64_with_or_without_jax_x64():
    with64, without = _probe("x64"), _probe("x32")
    assert with64.keys() == without.keys() and len(with64) >= 40
    for name, a in with64.items():
        b = without[name]
        assert not isinstance(a, str) and not isinstance(b, str), (name, a, b)
        assert [len(v) for v in a["values"]] == [len(v) for v in b["values"]], name
        if name in RANDOM:
            continue
        if name not in ROUNDED:
            assert b["dtypes"] in ([], ["float64"]), (name, b["dtypes"])
        rtol = 1e-6 if name in ROUNDED else 1e-10
        for u, v in zip(a["values"], b["values"], strict=True):
            u, v = np.asarray(u), np.asarray(v)
            scale = max(float(np.abs(u).max(initial=0.0)), 1e-300)
            assert np.all(np.abs(u - v) <= rtol * scale), (name, float(np.abs(u - v).max()) / scale)
