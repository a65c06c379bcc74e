"""Measurements of a deep linear network: spectra, ranks, balancedness, alignment, plateaus.

Example:
    >>> import jax, dlnlab as dl
    >>> params = dl.Net((3, 4, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.3)
    >>> dl.diagnostics.end_to_end(params).shape
    (2, 3)
"""

from ._balance import Balancedness as Balancedness
from ._balance import balance_gaps as balance_gaps
from ._balance import balancedness as balancedness
from ._diagonal import BetaNorms as BetaNorms
from ._diagonal import SupportRecovery as SupportRecovery
from ._diagonal import beta_norms as beta_norms
from ._diagonal import support_recovery as support_recovery
from ._plateaus import Plateau as Plateau
from ._plateaus import Plateaus as Plateaus
from ._plateaus import detect_plateaus as detect_plateaus
from ._plateaus import plateau_summaries as plateau_summaries
from ._spectra import alignment as alignment
from ._spectra import effective_rank as effective_rank
from ._spectra import end_to_end as end_to_end
from ._spectra import layer_norms as layer_norms
from ._spectra import numerical_rank as numerical_rank
from ._spectra import rank_one_ratio as rank_one_ratio
from ._spectra import singular_values as singular_values
