"""Bad input to dl.curvature: one clear error naming the field, never a raw error, a NaN or an ignored option.

Covers a user's function whose Hessian-vector product is not symmetric (``stop_gradient``) or not finite, a
function that does not return a scalar or fails, sample counts below 1, ``k`` above the number of parameters,
density grids that do not cover the spectrum, and options that do not apply to the chosen method. The generated
families (every numeric option of trace and spectral_density) count toward the suite's bad-input total.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import reliability_helpers as rh  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import dlnlab as dl  # noqa: E402
from dlnlab import curvature  # noqa: E402
from dlnlab.errors import ConfigError, DataError, NumericalError  # noqa: E402

_OBJ = dl.Objective(dl.Regression.from_moments(np.diag([2.0, 1.0, 0.5]), np.ones((2, 3)), 3.0))
_P = dl.Net((3, 2, 2)).init(0, scheme="gaussian", scale=0.5)  # 10 parameters
_P0 = (jnp.ones((2, 3)), jnp.ones(4))


@jax.custom_jvp
def _product(a, b):
    return a * b


# A wrong derivative rule (the user forgot the b-tangent): d/da = b but d/db = 0, so the second derivative
# d2/(da db) is 1 one way and 0 the other.
_product.defjvp(lambda primals, tangents: (_product(*primals), primals[1] * tangents[0]))


def _asymmetric(p):
    a, b = p
    return jnp.sum(a**2) + jnp.sum(b**2) + jnp.sum(_product(a[0], b[:3]))


def _sqrt_at_zero(p):
    """Finite value at 0, infinite second derivative there."""
    return jnp.sum(jnp.sqrt(jnp.abs(p[0]))) + jnp.sum(p[1] ** 2)


CALLS = {
    "hessian": lambda f, p: curvature.hessian(f, p),
    "lanczos": lambda f, p: curvature.top_eigenvalues(f, p, k=2),
    "lanczos smallest": lambda f, p: curvature.top_eigenvalues(f, p, which="smallest"),
    "exact eigenvalues": lambda f, p: curvature.top_eigenvalues(f, p, method="exact"),
    "trace exact": lambda f, p: curvature.trace(f, p, method="exact"),
    "trace hutchinson": lambda f, p: curvature.trace(f, p, method="hutchinson", num_samples=10),
    "trace hutch++": lambda f, p: curvature.trace(f, p, method="hutch++", num_samples=9),
    "spectral density": lambda f, p: curvature.spectral_density(f, p, num_probes=1, num_steps=5),
}


@pytest.mark.parametrize("what", sorted(CALLS))
def test_asymmetric_hessian_vector_product_is_refused(what):
    with pytest.raises(DataError) as err:
        CALLS[what](_asymmetric, _P0)
    msg = rh.check_message(err.value, "f")
    assert "symmetric" in msg


@pytest.mark.parametrize("what", sorted(CALLS) + ["power"])
def test_non_finite_hessian_vector_product_is_refused(what):
    p = (jnp.zeros((2, 3)), jnp.ones(4))
    call = (lambda f, q: curvature.top_eigenvalues(f, q, method="power")) if what == "power" else CALLS[what]
    with pytest.raises(NumericalError) as err:
        call(_sqrt_at_zero, p)
    msg = " ".join(str(err.value).split())
    assert msg.startswith("f:") and ("NaN or infinite" in msg), msg


@pytest.mark.parametrize("f, match", [(lambda p: p[0].ravel(), "shape"), (lambda p: p[0] @ p[1], "failed"),
                                      (lambda p: jnp.sum(p[0]).astype(jnp.int32), "dtype")])
@pytest.mark.parametrize("what", ["hessian", "lanczos", "trace hutch++", "spectral density"])
def test_function_that_is_not_params_to_scalar(f, match, what):
    """Issue 13: ``curvature.hessian(lambda p: p[0].ravel(), p0)`` raised a raw error from deep inside."""
    with pytest.raises(DataError, match=match) as err:
        CALLS[what](f, _P0)
    rh.check_message(err.value, "f")


@pytest.mark.parametrize("call, field", [
    (lambda: curvature.top_eigenvalues(_OBJ, _P, method="exact", tol=1e-3), "tol"),
    (lambda: curvature.top_eigenvalues(_OBJ, _P, method="exact", max_iter=10), "max_iter"),
    (lambda: curvature.top_eigenvalues(_OBJ, _P, method="exact", key=3), "key"),
    (lambda: curvature.sharpness(_OBJ, _P, method="exact", tol=1e-3), "tol"),
    (lambda: curvature.trace(_OBJ, _P, method="exact", num_samples=10), "num_samples"),
    (lambda: curvature.trace(_OBJ, _P, method="exact", key=1), "key"),
    (lambda: curvature.spectral_density(_OBJ, _P, grid=np.linspace(-1, 100, 5000), num_grid=10), "num_grid"),
    (lambda: curvature.top_eigenvalues(_OBJ, _P, k=11), "k"),
    (lambda: curvature.top_eigenvalues(_OBJ, _P, k=7, layers=1), "k"),  # the block has 4 parameters
    (lambda: curvature.top_eigenvalues(_OBJ, _P, k=2, method="power"), "k"),
    (lambda: curvature.trace(_OBJ, _P, num_samples=0), "num_samples"),
    (lambda: curvature.trace(_OBJ, _P, method="hutchinson", num_samples=-3), "num_samples"),
    (lambda: curvature.trace(_OBJ, _P, method="hutch++", num_samples=2), "num_samples"),
    (lambda: curvature.spectral_density(_OBJ, _P, num_probes=0), "num_probes"),
    (lambda: curvature.spectral_density(_OBJ, _P, num_steps=0), "num_steps"),
    (lambda: curvature.hessian(_OBJ, _P, layers=2), "layers"),
    (lambda: curvature.hessian(_OBJ, _P, layers=()), "layers"),
    (lambda: curvature.hessian(_OBJ, _P, layers=(0, "1")), "layers"),
])
def test_options_that_do_not_apply_or_are_out_of_range(call, field):
    with pytest.raises(ConfigError) as err:
        call()
    rh.check_message(err.value, field)


def test_density_grid_must_cover_the_spectrum():
    d = curvature.spectral_density(_OBJ, _P, num_probes=2, num_steps=10)
    lo, hi, s = float(d.nodes.min()), float(d.nodes.max()), d.sigma
    ok = np.linspace(lo - 3.5 * s, hi + 3.5 * s, 4000)
    curvature.spectral_density(_OBJ, _P, num_probes=2, num_steps=10, grid=ok)
    for grid in (np.linspace(lo + 0.1 * (hi - lo), hi + 4 * s, 4000),  # misses the bottom of the spectrum
                 np.linspace(lo - 4 * s, 0.5 * (lo + hi), 4000),  # misses the top
                 np.linspace(lo - 4 * s, hi + 4 * s, 7),  # covers it, far too coarse for sigma
                 ok[::-1], [1.0]):
        with pytest.raises(ConfigError) as err:
            curvature.spectral_density(_OBJ, _P, num_probes=2, num_steps=10, grid=grid)
        rh.check_message(err.value, "grid")


# -- generated families ------------------------------------------------------------------------------
JUNK = st.one_of(st.booleans(), st.text(max_size=4), st.just([]), st.just({}), st.just(object()),
                 st.just(1 + 2j), st.just(np.array([1.0, 2.0])), st.floats(allow_nan=True))
BAD = {
    "num_samples": st.one_of(st.integers(-10**6, 0), JUNK),
    "method": st.one_of(st.text(max_size=10).filter(lambda s: s not in curvature.TRACE_METHODS), st.none()),
    "key": st.one_of(st.floats(), st.text(max_size=3), st.integers(2**64, 2**70)),
    "layers": st.one_of(st.integers(2, 10**6), st.integers(-10**6, -3), st.just(()), st.just([0, 0.5]),
                        st.text(min_size=1, max_size=3), st.booleans()),
    "num_probes": st.one_of(st.integers(-10**6, 0), JUNK),
    "num_steps": st.one_of(st.integers(-10**6, 0), JUNK),
    "sigma": st.one_of(st.floats(max_value=0.0), st.sampled_from([np.nan, np.inf, -np.inf]), st.text(max_size=3)),
    "num_grid": st.one_of(st.integers(-10**6, 1), JUNK),
}
FIELDS = {
    "trace": ("num_samples", "method", "key", "layers"),
    "spectral_density": ("num_probes", "num_steps", "key", "sigma", "num_grid", "layers"),
}


@rh.property_settings(150)
@given(data=st.data(), fn=st.sampled_from(sorted(FIELDS)))
def test_generated_bad_options(data, fn):
    field = data.draw(st.sampled_from(FIELDS[fn]), label="field")
    value = data.draw(BAD[field], label=field)
    call = getattr(curvature, fn)
    rh.outcome(f"curvature.{fn}(options)", lambda: call(_OBJ, _P, **{field: value}), field=field, must_fail=True)
