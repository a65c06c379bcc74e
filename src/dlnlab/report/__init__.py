"""Reports and figures: the self-contained HTML report and sweep plots (lines with seed bands,
heatmaps).

Example:
    >>> from dlnlab.report import write_report
    >>> path = write_report("results", claims=[])   # doctest: +SKIP
"""

from ._html import machine_info as machine_info
from ._html import render_report as render_report
from ._html import write_report as write_report
from ._io import atomic_write_bytes as atomic_write_bytes
from ._io import atomic_write_text as atomic_write_text
from ._plots import plot_sweep as plot_sweep
