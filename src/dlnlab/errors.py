"""Errors raised on purpose by dlnlab.

Every error the library raises deliberately derives from :class:`DlnlabError`, so a caller (or the CLI) can
tell a bad input or a numerical failure from a bug. ``ConfigError`` and ``DataError`` are also ``ValueError``s,
so code written against plain Python conventions keeps working.
"""

from __future__ import annotations

__all__ = ["DlnlabError", "ConfigError", "DataError", "NumericalError"]


class DlnlabError(Exception):
    """Base class of every error dlnlab raises on purpose."""


class ConfigError(DlnlabError, ValueError):
    """An option, name or hyperparameter is invalid (names the field, the value and what was expected)."""


class DataError(DlnlabError, ValueError):
    """Input data are malformed: wrong shape, non-finite values, bad labels, non-separable, ..."""


class NumericalError(DlnlabError, ArithmeticError):
    """A computation failed numerically (a solver did not converge, a result is not finite)."""
