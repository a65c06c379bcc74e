"""Training: gradient descent, SGD and gradient flow (see :func:`train`)."""

from ._api import train as train
from ._api import train_batched as train_batched
from ._run import Run as Run
