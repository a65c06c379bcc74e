"""Paper reproductions and the public experiment contract.

Write an experiment with :class:`Experiment` (sizes as data, a ``setup`` whose state the runner owns, claim and
figure functions, typed claim checks on the :class:`Context`), check it with :func:`check_experiment`, run it
with :func:`reproduce` or ``dlnlab reproduce``, and let others install it through the entry-point group
``"dlnlab.experiments"`` (see docs/writing-an-experiment.md). dlnlab's own experiments (saxe, ziyin2022,
mulayoff2020, jacot2021, ji2019) are found the same way and are imported only when asked for.
"""

from ._claims import Claim as Claim
from ._claims import ContractError as ContractError
from ._conformance import check_experiment as check_experiment
from ._context import Context as Context
from ._experiment import Experiment as Experiment
from ._experiment import NotReproduced as NotReproduced
from ._registry import GROUP as GROUP
from ._registry import discover as discover
from ._registry import get as get
from ._registry import names as names
from ._runner import Reproduction as Reproduction
from ._runner import reproduce as reproduce
