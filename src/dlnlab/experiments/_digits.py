"""scikit-learn's bundled 8x8 digits, shared by the mulayoff2020 (ReLU denoiser) and ji2019 experiments."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: the 1797 images, ``(1797, 64)`` gray levels 0..16, and their digits 0..9.

    Read from scikit-learn's data file without importing scikit-learn (the import alone costs about a second of
    a quick-mode budget); ``sklearn.datasets.load_digits`` if the file is not where scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            if data.shape == (1797, 65):  # 64 pixels, then the label
                return data[:, :64], data[:, 64].astype(int)
    from sklearn.datasets import load_digits

    dg = load_digits()
    return dg.data, dg.target
