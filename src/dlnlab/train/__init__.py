"""Training: gradient descent, SGD and gradient flow (see :func:`train`), plus step-size rules as optax transforms."""

from ._api import train as train
from ._api import train_batched as train_batched
from ._run import Run as Run
from ._schedules import ball_sgd as ball_sgd
from ._schedules import loss_scaled_sgd as loss_scaled_sgd
