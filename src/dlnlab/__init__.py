"""dlnlab: a laboratory for deep linear networks.

Build a deep linear network, train it (gradient descent, SGD, exact gradient flow), compute what theory predicts,
measure what training did, and reproduce four landmark papers. See ``docs/`` and the README.

Importing dlnlab changes no JAX setting. Library functions work in the dtype they are given (float32 params
train in float32); theory functions compute in NumPy float64 regardless. For float64 training, as the
reproductions, the CLI and the tests use, enable it yourself before building arrays::

    jax.config.update("jax_enable_x64", True)
"""

from . import curvature as curvature  # noqa: E402
from . import diagnostics as diagnostics  # noqa: E402
from . import errors as errors  # noqa: E402
from . import summaries as summaries  # noqa: E402
from . import theory as theory  # noqa: E402
from ._diagonal import DiagonalNet as DiagonalNet  # noqa: E402
from ._losses import AbstractLoss as AbstractLoss  # noqa: E402
from ._model import AbstractModel as AbstractModel  # noqa: E402
from .experiments import Experiment as Experiment  # noqa: E402
from .experiments import NotReproduced as NotReproduced  # noqa: E402
from .experiments import check_experiment as check_experiment  # noqa: E402
from .experiments import reproduce as reproduce  # noqa: E402
from .nets import Net as Net  # noqa: E402
from .objective import AbstractObjective as AbstractObjective  # noqa: E402
from .objective import Objective as Objective  # noqa: E402
from .objective import as_objective as as_objective  # noqa: E402
from .problems import AbstractNoise as AbstractNoise  # noqa: E402
from .problems import AbstractProblem as AbstractProblem  # noqa: E402
from .problems import Classification as Classification  # noqa: E402
from .problems import Dropout as Dropout  # noqa: E402
from .problems import MatrixCompletion as MatrixCompletion  # noqa: E402
from .problems import MatrixSensing as MatrixSensing  # noqa: E402
from .problems import MultiplicativeNoise as MultiplicativeNoise  # noqa: E402
from .problems import Regression as Regression  # noqa: E402
from .sweep import sweep as sweep  # noqa: E402
from .train import GD as GD  # noqa: E402
from .train import SGD as SGD  # noqa: E402
from .train import Flow as Flow  # noqa: E402
from .train import Record as Record  # noqa: E402
from .train import Run as Run  # noqa: E402
from .train import Status as Status  # noqa: E402
from .train import Stop as Stop  # noqa: E402
from .train import train as train  # noqa: E402
from .train import train_batched as train_batched  # noqa: E402

__version__ = "0.1.0"
