"""Griffe extension: read dlnlab's docstrings as they are written.

dlnlab's docstrings are Google style with two habits griffe does not know:

- ``Example:`` (singular) heads the doctest block; griffe reads only ``Examples:`` as an examples section and would
  turn the block into an admonition whose ``>>>`` lines are parsed as Markdown (``[1.0, 2.0]`` becomes a broken
  link). It is renamed so the block renders as a console code block.
- Sphinx roles (``:func:`train```, ``:class:`dlnlab.Objective```) are shown as inline code; Markdown has no roles.

The docstring text is changed in the loaded documentation only, never in the source.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.M)
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`~?([^`]+)`")


def _fix(text: str) -> str:
    return _ROLE.sub(r"`\1`", _EXAMPLE.sub(r"\1Examples:", text))


class DlnlabDocstrings(griffe.Extension):
    """Rewrite ``Example:`` headers and Sphinx roles in every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _fix(obj.docstring.value)
