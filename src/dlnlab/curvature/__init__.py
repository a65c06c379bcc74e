"""Curvature of any objective: dense Hessians, Hessian-vector products, extreme eigenvalues, Morse index, the
Hessian trace (:func:`trace`: exact, Hutchinson, Hutch++) and its spectral density (:func:`spectral_density`:
stochastic Lanczos quadrature).

``f`` is a :class:`dlnlab.Objective`, any :class:`dlnlab.AbstractObjective` (through its ``.value``) or any
callable ``params -> scalar`` (params any pytree, e.g. a ReLU MLP's). Vectors are flattened with
:func:`jax.flatten_util.ravel_pytree` (layer order, row-major within a layer). Sharpness is the top eigenvalue of
the Hessian of the library's loss (squared loss with no 1/2, so it is twice the sharpness of a 1/2-normalised
loss, and gradient descent with step ``eta`` is stable near a minimum only when sharpness <= 2 / eta).

Eigenvalue methods, all returning :class:`Eigen`:

- ``"exact"``: the dense Hessian and ``numpy.linalg.eigh`` (small nets: a few thousand parameters);
- ``"lanczos"``: thick-restart Lanczos with full reorthogonalisation on Hessian-vector products, the whole
  iteration (restarts and convergence test included) one compiled loop;
- ``"power"``: power iteration on Hessian-vector products (the PyHessian approach; ``which="smallest"``
  iterates on ``H - lambda_max I``), the whole loop compiled. Slow when the top eigenvalues are close; kept as a
  cross-check.

``which="smallest"`` gives the most negative eigenvalues (the descent directions at a saddle); ``layers=``
restricts any tool to the Hessian block of some parameter arrays (per-layer curvature).
:func:`lanczos_step` and :func:`power_step` are pure, jittable warm-started steps for use inside a compiled loop.

Compiled code is reused: every kernel is compiled once per structure (objective type and static options,
parameter shapes) and takes the objective's arrays and the params as traced arguments, so sharpness tracked
along a run with one :class:`dlnlab.Objective` (or with new data of the same shapes) compiles once. A plain
Python callable is hashed by identity: reuse the same function object, or pass a pytree callable
(``jax.tree_util.Partial(loss, X=X, Y=Y)``, an equinox Module) whose arrays are traced too.

Example:
    >>> import jax, numpy as np, dlnlab as dl
    >>> obj = dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones((2, 3)), 1.0))
    >>> params = dl.Net((3, 4, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.5)
    >>> ex = dl.curvature.top_eigenvalues(obj, params, k=2, method="exact")
    >>> lz = dl.curvature.top_eigenvalues(obj, params, k=2, method="lanczos")
    >>> bool(np.allclose(ex.values, lz.values))
    True
"""

from ._density import SpectralDensity as SpectralDensity
from ._density import spectral_density as spectral_density
from ._eigen import METHODS as METHODS
from ._eigen import Eigen as Eigen
from ._eigen import hessian as hessian
from ._eigen import hvp as hvp
from ._eigen import morse_index as morse_index
from ._eigen import power_step as power_step
from ._eigen import sharpness as sharpness
from ._eigen import top_eigenvalues as top_eigenvalues
from ._lanczos import lanczos_step as lanczos_step
from ._trace import TRACE_METHODS as TRACE_METHODS
from ._trace import TraceEstimate as TraceEstimate
from ._trace import trace as trace

__all__ = ["Eigen", "METHODS", "hessian", "hvp", "top_eigenvalues", "sharpness", "morse_index", "power_step",
           "lanczos_step", "trace", "TraceEstimate", "TRACE_METHODS", "spectral_density", "SpectralDensity"]
