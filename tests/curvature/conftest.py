"""Curvature tests run in float64 (enabled here: importing dlnlab changes no JAX setting), on small awkward
objectives: unequal widths, anisotropic data, weight decay, a residual net, a nonlinear callable on a dict pytree,
and a diagonal network written as an objective class with a ``.value`` method."""

import jax

jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402
from curvature_cases import CASES, make_case  # noqa: E402


@pytest.fixture(params=CASES)
def case(request):
    f, params = make_case(request.param)
    return request.param, f, params
