"""Registered paper reproductions (see :mod:`dlnlab.experiments._base` for the contract)."""

from . import (
    jacot2021,  # noqa: F401
    ji2019,  # noqa: F401
    mulayoff2020,  # noqa: F401
    saxe,  # noqa: F401
    ziyin2022,  # noqa: F401
)
from ._base import REGISTRY as REGISTRY
from ._base import Claim as Claim
from ._base import Context as Context
from ._base import Experiment as Experiment
from ._base import get as get
from ._base import names as names
from ._base import register as register
