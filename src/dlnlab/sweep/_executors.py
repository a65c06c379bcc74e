"""Where sweep batches run: a local process pool (default) or a Dask distributed cluster.

Both executors call the same pure function, :func:`run_batch`, on the same batches, in worker
processes with the same JAX settings (float64, one compute thread:
``--xla_cpu_multi_thread_eigen=false``, one BLAS/OpenMP thread), so a config gives bit-identical
numbers on either (CPU). The thread settings are environment variables,
applied before the worker imports JAX: the local pool and a Dask ``LocalCluster`` inherit them from
this process; workers of an existing cluster must be started with them (see
:func:`worker_environment` and docs/workflow.md). Float64 is switched on by the worker entry itself
(the pool's initializer, :func:`worker_run_batch` for Dask), never by importing dlnlab. What a batch
prints on file descriptor 1 (LAPACK's complaints about inf) is captured and kept with its runs.

Local pool workers die with the sweep process: a SIGKILL of ``dlnlab sweep`` (which runs no cleanup)
ends its workers within a fraction of a second (:func:`_die_with_parent`), and with them the resource
tracker; SIGTERM and Ctrl-C shut the pool down as before.

Batches are padded to the function's ``batch_size`` with copies of their last config, so every run
goes through a compiled call of the same shape and its numbers never depend on which runs shared its
batch (nor on what a previous, interrupted sweep already stored).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

from ..errors import ConfigError

__all__ = [
    "run_batch",
    "worker_environment",
    "LocalExecutor",
    "DaskExecutor",
    "make_executor",
    "EXECUTORS",
]

EXECUTORS = ("local", "dask")


def worker_environment() -> dict[str, str]:
    """The environment every sweep worker runs under (one compute thread, float64)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return {
        "XLA_FLAGS": flags,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "JAX_ENABLE_X64": "1",
        "DLNLAB_X64": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    """Set ``env`` in os.environ (inherited by child processes started meanwhile), then restore."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _stdout_captured():
    """Capture file descriptor 1 (not just ``sys.stdout``): LAPACK reports bad arguments with C ``printf``
    (``** On entry to DLASCL parameter number 4 had an illegal value``) straight to the process's stdout, which is
    the user's terminal or the pipe a script reads results from. Yields a list that receives the text."""
    out: list[str] = []
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable fd 1 (an embedded interpreter): nothing to guard
        yield out
        return
    libc = None
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(None)
    text = io.StringIO()
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            with contextlib.redirect_stdout(text):  # Python-level prints, whatever sys.stdout is
                yield out
        finally:
            if libc is not None:
                libc.fflush(None)  # C stdio buffers the message while fd 1 is a file
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read(4096).decode("utf-8", "replace") + text.getvalue()[:4096])


def run_batch(function: str, configs: list[dict], batch_size: int) -> list[tuple[dict, float]]:
    """Run one batch in this process: ``[(outcome, seconds_per_run), ...]``, one per config (padding
    dropped).

    Never raises for a failing run: the error becomes outcomes with status ``"failed"``.
    """
    from . import _functions, _functions_dmf  # noqa: F401 - registers the built-in sweepable functions
    from ._registry import SWEEPABLES, get_sweepable

    if function not in SWEEPABLES:
        from .. import experiments  # noqa: F401 - paper modules may register sweepable functions

    t0 = time.perf_counter()
    n = len(configs)
    with _stdout_captured() as printed:
        try:
            fn = get_sweepable(function)
            padded = list(configs) + [configs[-1]] * max(0, batch_size - n)
            outcomes = list(fn.run_batch(padded))[:n]
            if len(outcomes) != n:
                raise RuntimeError(
                    f"{function}.run_batch returned {len(outcomes)} outcomes for {n} configs"
                )
        except Exception as exc:  # noqa: BLE001 - a failed batch is a result to store, not a crash
            msg = f"{type(exc).__name__}: {exc}"
            outcomes = [
                {"status": "failed", "message": msg, "metrics": {}, "trajectory": {}} for _ in range(n)
            ]
    said = " ".join("".join(printed).split())
    if said:  # what the computation printed goes with the runs it may concern, never to stdout
        for o in outcomes:
            if o.get("status") in ("diverged", "failed"):
                o["message"] = f"{o.get('message', '')} (printed: {said[:300]})".strip()
    dt = (time.perf_counter() - t0) / max(n, 1)
    return [(o, dt) for o in outcomes]


def _die_with_parent(parent: int, poll: float = 0.25) -> None:
    """End this worker when the sweep process ``parent`` dies, even by SIGKILL (which runs no cleanup in the
    parent): on Linux the kernel sends SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere a
    daemon thread polls ``os.getppid()`` (a dead parent re-parents the worker) and exits within ``poll`` s."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError, TypeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # died before the watch was set
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="dlnlab-parent-watch", daemon=True).start()


def _worker_start(parent: int) -> None:
    """Initializer of every local pool worker: the parent-death watch, then JAX's float64 (the sweep functions
    compute in float64; set here, in the worker, never by importing dlnlab)."""
    _die_with_parent(parent)
    _enable_x64()


def _enable_x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def worker_run_batch(function: str, configs: list[dict], batch_size: int) -> list[tuple[dict, float]]:
    """:func:`run_batch` in a worker process: float64 enabled first (what Dask workers call)."""
    _enable_x64()
    return run_batch(function, configs, batch_size)


class LocalExecutor:
    """A pool of ``workers`` spawned processes (one compute thread each)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers

    def run(self, batches: list[tuple[str, list[dict], int]]) -> Iterator[tuple[int, list]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        if not batches:
            return
        n = min(self.workers or os.cpu_count() or 1, len(batches))
        with _environ(worker_environment()):
            pool = ProcessPoolExecutor(
                max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start, initargs=(os.getpid(),),
            )
            try:
                futures = {pool.submit(run_batch, *b): i for i, b in enumerate(batches)}
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield futures[fut], fut.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Submit batches to a Dask distributed scheduler, or to a LocalCluster started here when none
    is given."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler
        self.workers = workers

    def run(self, batches: list[tuple[str, list[dict], int]]) -> Iterator[tuple[int, list]]:
        if not batches:
            return
        from distributed import Client, LocalCluster, as_completed

        with contextlib.ExitStack() as stack:
            if self.scheduler:
                try:
                    client = stack.enter_context(Client(self.scheduler, timeout="10s"))
                except (OSError, TimeoutError, ValueError) as exc:
                    raise ConfigError(
                        f"scheduler: expected a reachable Dask scheduler, got {self.scheduler!r} "
                        f"that cannot be reached ({exc})"
                    ) from None
            else:
                stack.enter_context(_environ(worker_environment()))
                n = min(self.workers or os.cpu_count() or 1, len(batches))
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",  # scheduler and workers listen on loopback only
                        dashboard_address="127.0.0.1:0",
                        silence_logs=logging.ERROR,
                    )
                )
                client = stack.enter_context(Client(cluster))
            futures = {
                client.submit(
                    worker_run_batch, *b, pure=False, key=f"dlnlab-batch-{i}-{time.time_ns()}"
                ): i
                for i, b in enumerate(batches)
            }
            try:
                for fut in as_completed(list(futures)):
                    yield futures[fut], fut.result()
            finally:
                client.cancel(list(futures))


def make_executor(
    executor: str = "local", *, workers: int | None = None, scheduler: str | None = None
):
    if executor not in EXECUTORS:
        raise ConfigError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ConfigError(f"workers: expected a positive integer, got {workers!r}")
    if scheduler is not None and executor != "dask":
        raise ConfigError(
            f"scheduler: only used with executor 'dask', got {scheduler!r} with executor {executor!r}; "
            "expected executor 'dask' or no scheduler"
        )
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise ConfigError(f"scheduler: expected an address like tcp://HOST:8786, got {scheduler!r}")
    return LocalExecutor(workers) if executor == "local" else DaskExecutor(scheduler, workers)
