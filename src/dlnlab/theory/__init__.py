"""Theory: what deep linear networks should do (closed forms, limits, bounds), one paper per module."""

from . import diagonal as diagonal
from . import dmf as dmf
from . import exact as exact
from . import flat as flat
from . import incremental as incremental
from . import margin as margin
from . import modes as modes
from . import nuclear as nuclear
from . import saddles as saddles
