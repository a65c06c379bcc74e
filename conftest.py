"""Root conftest: the docstrings' runnable examples are part of the test suite.

The README's test command is ``pytest -q -n 2 tests``. Every public docstring carries a runnable example, so when
the whole ``tests`` folder is collected, ``src/dlnlab`` is collected too and each module's examples run as a
doctest item (``src/dlnlab/curvature.py::dlnlab.curvature``). Running a single test file or folder does not add
them; ``pytest src/dlnlab`` runs only them. Examples run in float64, like the tests: importing dlnlab changes no
JAX setting, so it is enabled here (tests/conftest.py does the same for the tests).
"""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

_ROOT = Path(__file__).resolve().parent
_SRC = _ROOT / "src" / "dlnlab"
_TESTS = _ROOT / "tests"


def _resolved(arg: str) -> Path:
    return Path(arg.split("::")[0]).resolve()


def pytest_configure(config: pytest.Config) -> None:
    args = [_resolved(a) for a in config.args]
    if _TESTS in args and _SRC not in args and not any(_SRC in a.parents for a in args):
        config.args.append(str(_SRC))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Doctests of the package's modules (pytest's ``--doctest-modules`` does the same when it is given)."""
    if file_path.suffix != ".py" or _SRC not in file_path.parents or parent.config.option.doctestmodules:
        return None
    from _pytest.doctest import DoctestModule

    return DoctestModule.from_parent(parent, path=file_path)
