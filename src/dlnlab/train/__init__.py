"""Training: one engine for gradient descent, SGD and gradient flow (see :func:`train`), the method objects
(:class:`GD`, :class:`SGD`, :class:`Flow`), what to record (:class:`Record`), when to stop (:class:`Stop`), the
result (:class:`Run`, :class:`Status`), plus step-size rules as optax transforms."""

from ._api import train as train
from ._api import train_batched as train_batched
from ._methods import GD as GD
from ._methods import SGD as SGD
from ._methods import Flow as Flow
from ._options import Record as Record
from ._options import Stop as Stop
from ._run import Run as Run
from ._run import Status as Status
from ._schedules import ball_sgd as ball_sgd
from ._schedules import loss_scaled_sgd as loss_scaled_sgd
