"""Root conftest: the docstrings' runnable examples are part of the test suite.

The README's test command is ``pytest -q -n 2 tests``. Every public docstring carries a runnable example, so when
the whole ``tests`` folder is collected, ``src/dlnlab`` is collected too and each module's examples run as a
doctest item (``src/dlnlab/curvature.py::dlnlab.curvature``). Running a single test file or folder does not add
them; ``pytest src/dlnlab`` runs only them. Examples run in float64, like the tests: importing dlnlab changes no
JAX setting, so it is enabled here (tests/conftest.py does the same for the tests).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import jax
import pytest
from _pytest.doctest import DoctestModule

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
    return _InstalledDoctests.from_parent(parent, path=file_path)


class _InstalledDoctests(DoctestModule):
    """A module's doctests, imported by its dotted name (``dlnlab.curvature``), not from its file.

    The README installs dlnlab with ``pip install .``, so the package the tests import lives in site-packages;
    importing ``src/dlnlab/...`` by path as well would give two copies of dlnlab (pytest refuses that). The dotted
    name finds the installed one, which is the same code.
    """

    def _getobj(self):
        rel = self.path.relative_to(_SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        return importlib.import_module(".".join(parts))
