"""Learning problems behind one interface (:class:`AbstractProblem`), and neuron-noise models behind another
(:class:`AbstractNoise`).

- :class:`Regression` (from samples or moments), :class:`Classification` (labels +-1, margin losses),
  :class:`MatrixCompletion` (observed entries), :class:`MatrixSensing` (linear measurements);
- :class:`Dropout`, :class:`MultiplicativeNoise` (mean-one multiplicative noise on hidden units).

Normalisation (fixed across dlnlab): every cost is a mean over its terms (samples, observed entries,
measurements) with no 1/2. See each class for its formula.

Example:
    >>> import numpy as np, dlnlab as dl
    >>> X = np.random.default_rng(0).normal(size=(100, 3)); Y = X @ np.ones((3, 2))
    >>> prob = dl.Regression.from_data(X, Y)
    >>> prob.Sxx.shape, prob.Syx.shape, prob.n_samples
    ((3, 3), (2, 3), 100)
"""

from ._base import AbstractProblem as AbstractProblem
from ._classification import Classification as Classification
from ._matrix import MatrixCompletion as MatrixCompletion
from ._matrix import MatrixSensing as MatrixSensing
from ._matrix import low_rank_target as low_rank_target
from ._noise import AbstractNoise as AbstractNoise
from ._noise import Dropout as Dropout
from ._noise import MultiplicativeNoise as MultiplicativeNoise
from ._regression import Regression as Regression

__all__ = ["AbstractProblem", "AbstractNoise", "Regression", "Classification", "MatrixCompletion",
           "MatrixSensing", "low_rank_target", "Dropout", "MultiplicativeNoise"]
