"""Sweeps: config grids (cartesian and zipped axes, seeds) run on a content-addressed store.

A sweep names a registered *sweepable function* (names only: a config file never imports code), a
grid over its fields and seeds. Each run is stored under the hash of its normalised config and the
dlnlab version; re-running skips what is stored; results go to a Parquet table and per-run
trajectories to ``.npz`` files (no pickle).
Executors: a local process pool (default) or Dask distributed, with bit-identical results.

Example:
    >>> import dlnlab as dl
    >>> df = dl.sweep("examples/sweep.toml", out="results/sweep")   # doctest: +SKIP
"""

from . import _functions as _functions  # noqa: F401 - registers the built-in sweepable functions
from . import _functions_dmf as _functions_dmf  # noqa: F401 - arora2019 / gissin2020 sweepables
from . import _functions_diagonal as _functions_diagonal  # noqa: F401 - woodworth2020 sweepable
from . import _functions_eos as _functions_eos  # noqa: F401 - cohen2021 sweepable
from ._api import load_results as load_results
from ._api import plan_batches as plan_batches
from ._api import plot_store as plot_store
from ._api import sweep as sweep
from ._config import SweepSpec as SweepSpec
from ._config import load_spec as load_spec
from ._config import run_id as run_id
from ._executors import worker_environment as worker_environment
from ._registry import Field as Field
from ._registry import Sweepable as Sweepable
from ._registry import get_sweepable as get_sweepable
from ._registry import register_sweepable as register_sweepable
from ._registry import sweepable_names as sweepable_names
from ._store import Store as Store
from ._store import load_trajectory as load_trajectory
