"""Shared helpers of the benchmarks: timing, environment record, data, PyTorch thread choice.

Every benchmark runs dlnlab and its competitor in the same process, on the same data, one after the other, and
reports wall-clock times (``time.perf_counter``) with compilation included unless a row says otherwise. The
machine this project runs on is shared, so each result also records the load average before and after.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from contextlib import contextmanager

import jax
import numpy as np

import dlnlab as dl

# The benchmarks compute in float64 unless a row says float32 (importing dlnlab changes no JAX setting).
jax.config.update("jax_enable_x64", True)


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class Timer:
    """``with Timer() as t: ...``; then ``t.s`` holds the wall-clock seconds."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self._t0
        return False


def best_of(fn, repeat: int = 3) -> float:
    """Smallest wall-clock time of ``repeat`` calls (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def environment() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "dlnlab": dl.__version__,
        "load_average_1min": load(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads_default"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def fastest_torch_threads(probe) -> int:
    """PyTorch's best thread count for ``probe`` (a callable doing a little work): 1 or the default.

    On a loaded machine PyTorch's default of one thread per core can be several times slower than one thread
    (its workers spin and wait for each other); the competitor gets whichever is faster.
    """
    import torch

    default = torch.get_num_threads()
    times = {}
    for n in sorted({1, default}):
        with torch_threads(n):
            probe()  # warm-up
            t0 = time.perf_counter()
            probe()
            times[n] = time.perf_counter() - t0
    return min(times, key=times.get)


def regression_data(n: int, d_in: int, d_out: int, *, seed: int = 0, noise: float = 0.1):
    """Anisotropic Gaussian inputs and a noisy linear teacher (float64 NumPy arrays)."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(2.0, 0.5, d_in)
    X = rng.normal(size=(n, d_in)) * scales
    teacher = rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)
    Y = X @ teacher.T + noise * rng.normal(size=(n, d_out))
    return X, Y


def rate(work: float, seconds: float) -> float:
    return work / seconds if seconds > 0 else float("inf")


def fmt(x: float, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    a = abs(x)
    if a >= 1e9:
        s = f"{x / 1e9:.3g}G"
    elif a >= 1e6:
        s = f"{x / 1e6:.3g}M"
    elif a >= 1e4:
        s = f"{x / 1e3:.3g}k"
    else:
        s = f"{x:.3g}"
    return s + unit
