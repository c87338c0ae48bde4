"""Run scenes on a Dask cluster: start or join the cluster, submit one task per scene, show progress, collect.

Failure handling, as Dask provides it:
* a task that *raises* (an unexpected error: out of memory in torch, a flaky network file system) is run again
  up to `retries` times (`Client.submit(..., retries=)`); input errors the user must fix are not retried
  (see `task`);
* a task whose *worker dies* (killed, out of memory, machine lost) is rescheduled on another worker; after
  `allowed-failures` + 1 deaths Dask gives up with `KilledWorker`. On the LocalCluster we start,
  allowed-failures = `retries`; on an existing cluster it is the scheduler's own setting.
The LocalCluster uses worker processes behind nannies (a dead worker is restarted) and worker-saturation 1.0
(a scene waits in the scheduler until a worker is free instead of queueing behind a long one).
"""
from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TextIO

from .outputs import check_output, remove_stale_partials, setting_differences
from .scenes import Scene
from .task import PROGRESS_TOPIC, BatchSettings, SceneOutcome, run_scene


@dataclass(frozen=True)
class ClusterSettings:
    scheduler: str | None = None      # address of an existing scheduler; None: a LocalCluster on this machine
    workers: int = 0                  # LocalCluster workers; 0: CPU cores // torch threads per scene
    threads_per_worker: int = 1       # scenes run at once by one worker
    memory_limit: str = "auto"        # per LocalCluster worker ('auto': RAM / workers; '0': no limit)
    retries: int = 2
    connect_timeout: float = 60.0     # seconds to wait for the scheduler and its first worker


def default_workers(torch_threads: int) -> int:
    """One worker per `torch_threads` cores (2 cores, 1 thread per scene → 2 workers)."""
    return max(1, (os.cpu_count() or 1) // max(1, torch_threads))


@contextmanager
def dask_client(cluster: ClusterSettings, torch_threads: int = 1) -> Iterator[object]:
    """A connected `distributed.Client`; a LocalCluster we start is shut down (workers included) on exit."""
    import dask
    from distributed import Client, LocalCluster

    if cluster.scheduler:
        client = Client(cluster.scheduler, timeout=cluster.connect_timeout)
        try:
            try:
                client.wait_for_workers(1, timeout=cluster.connect_timeout)
            except (TimeoutError, OSError):
                raise RuntimeError(f"the scheduler {cluster.scheduler} has no worker after "
                                   f"{cluster.connect_timeout:.0f} s: start some with "
                                   f"`dask worker {cluster.scheduler}` (from the repository folder, or with it "
                                   f"on PYTHONPATH)") from None
            yield client
        finally:
            client.close()
        return
    config = {"distributed.scheduler.allowed-failures": cluster.retries,
              "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(config):
        local = LocalCluster(n_workers=cluster.workers or default_workers(torch_threads),
                             threads_per_worker=cluster.threads_per_worker, processes=True,
                             memory_limit=cluster.memory_limit,
                             dashboard_address="127.0.0.1:0")  # any free port: 8787 may be another cluster's
    try:
        client = Client(local)
        try:
            yield client
        finally:
            client.close()
    finally:
        # a worker that has run torch often needs more than the nanny's 4 s to exit and is then killed, with a
        # warning that would only alarm here: the work is over
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
        local.close()


def check_workers(client) -> None:
    """Fail early, with one clear message, when workers cannot import the plugin or the core (torch)."""
    try:
        versions = client.run(_worker_versions)
    except Exception as e:  # noqa: BLE001  (any import or unpickling error on a worker)
        raise RuntimeError(f"a Dask worker cannot load SURE Fusion ({type(e).__name__}: {e}): workers need the "
                           f"repository (or the installed plugin) on PYTHONPATH and torch, pytorch_wavelets, "
                           f"PyWavelets and GDAL installed; start them from the repository folder") from None
    if not versions:
        raise RuntimeError("the Dask cluster has no workers")


def _worker_versions() -> str:
    from ..core_loader import core_module

    return core_module().__version__


def plan(scenes: list[Scene], settings: BatchSettings) -> tuple[list[SceneOutcome], list[Scene]]:
    """(outcomes of scenes finished earlier, scenes to run). Checked here, before any cluster starts."""
    skipped, to_run = [], []
    for scene in scenes:
        check = None if settings.overwrite else check_output(scene.output)
        if check is not None and check.finished:
            note = f"finished earlier ({check.reason})"
            differences = setting_differences(check.metadata, settings.requested_metadata())
            if differences:
                note += f"; made with {', '.join(differences)}: use --overwrite to redo it"
            skipped.append(SceneOutcome(scene.name, "skipped", 0.0, scene.output, note))
        else:
            to_run.append(scene)
    return skipped, to_run


def run_scenes(client, scenes: list[Scene], settings: BatchSettings, retries: int = 2,
               display: ProgressDisplay | None = None, poll_seconds: float = 0.25) -> list[SceneOutcome]:
    """Run `scenes` as one task each; returns their outcomes in the order of `scenes`."""
    display = display or ProgressDisplay(len(scenes), stream=None)
    for scene in scenes:
        remove_stale_partials(scene.output)
    finished_before = set() if settings.overwrite else {s.name for s in scenes if check_output(s.output).finished}
    fractions: dict[str, float] = {}

    def on_progress(event) -> None:
        _, message = event
        fractions[message["scene"]] = float(message["fraction"])

    client.subscribe_topic(PROGRESS_TOPIC, on_progress)
    batch_id = uuid.uuid4().hex[:8]
    submitted = time.perf_counter()
    futures = {client.submit(run_scene, scene, settings, key=task_key(scene, batch_id), retries=retries,
                             pure=False): scene for scene in scenes}
    outcomes: dict[str, SceneOutcome] = {}
    try:
        pending = set(futures)
        while pending:
            for future in [f for f in pending if f.done()]:
                pending.discard(future)
                scene = futures[future]
                outcome = _of_this_run(_outcome_of(future, scene, time.perf_counter() - submitted),
                                       scene.name in finished_before, time.perf_counter() - submitted)
                outcomes[scene.name] = outcome
                fractions.pop(scene.name, None)
                display.finished(outcome)
            if pending:
                display.update(len(outcomes), fractions)
                time.sleep(poll_seconds)
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        for future in futures:
            future.release()
    for scene in scenes:  # only tasks killed mid-write leave these; none of ours is running now
        remove_stale_partials(scene.output)
    return [outcomes[scene.name] for scene in scenes]


def task_key(scene: Scene, batch_id: str) -> str:
    """The Dask key of a scene's task: readable on the dashboard, unique per batch run."""
    return f"fuse-{scene.name}-{batch_id}"


def _of_this_run(outcome: SceneOutcome, finished_before: bool, elapsed: float) -> SceneOutcome:
    """A task that found its output finished although it was not when the batch started: a worker wrote it in this
    run and was lost before it reported (Dask then runs the task again), so the scene is done, not skipped."""
    if outcome.status != "skipped" or finished_before:
        return outcome
    return replace(outcome, status="done", seconds=elapsed,
                   message=f"written in this run by a worker lost before it reported; found complete when the task "
                           f"ran again ({outcome.message})")


def _outcome_of(future, scene: Scene, elapsed: float) -> SceneOutcome:
    from distributed.scheduler import KilledWorker

    if future.status == "finished":
        return future.result()
    try:
        error = future.exception()
    except Exception as e:  # noqa: BLE001  (cancelled, scheduler lost)
        error = e
    if isinstance(error, KilledWorker):
        message = (f"the worker running it died {error.allowed_failures + 1} times (killed, or out of memory: try a "
                   f"smaller --tile-size or a larger --memory-limit)")
    else:
        message = f"{type(error).__name__}: {error}"
    return SceneOutcome(scene.name, "failed", elapsed, scene.output, message)


class ProgressDisplay:
    """A one-line progress bar on a terminal (rewritten in place); elsewhere, one line per finished scene.

    The bar counts finished scenes plus the fraction of the running ones, from the workers' progress events.
    """

    def __init__(self, total: int, stream: TextIO | None = sys.stderr, width: int = 30, refresh_seconds: float = 0.5):
        self.total, self.stream, self.width = total, stream, width
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.refresh = refresh_seconds
        self.start = time.perf_counter()
        self.last_draw = -float("inf")
        self.done = 0
        self._line = ""

    def update(self, done: int, fractions: dict[str, float]) -> None:
        self.done = done
        now = time.perf_counter()
        if not self.tty or now - self.last_draw < self.refresh:
            return
        self.last_draw = now
        fraction = (done + sum(fractions.values())) / max(1, self.total)
        filled = int(round(self.width * min(1.0, fraction)))
        running = f", running: {', '.join(f'{n} {100 * f:.0f}%' for n, f in sorted(fractions.items()))}" \
            if fractions else ""
        self._draw(f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}% {done}/{self.total} scenes, "
                   f"{now - self.start:.0f} s{running}")

    def finished(self, outcome: SceneOutcome) -> None:
        self.done += 1
        if self.stream is None:
            return
        self._draw("")
        detail = outcome.message if outcome.status == "failed" else outcome.output
        self.stream.write(f"[{self.done}/{self.total}] {outcome.name}: {outcome.status} in {outcome.seconds:.1f} s "
                          f"({detail})\n")
        self.stream.flush()
        self.last_draw = -float("inf")

    def _draw(self, text: str) -> None:
        if not self.tty:
            return
        self.stream.write("\r" + text.ljust(len(self._line)) + ("\r" if not text else ""))
        self.stream.flush()
        self._line = text


def format_summary(outcomes: list[SceneOutcome]) -> str:
    """A plain-text table: scene, status, seconds, output; a failed scene's message on the line below it."""
    rows = [("scene", "status", "seconds", "output")]
    rows += [(o.name, o.status, f"{o.seconds:.1f}", o.output) for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip())
        if k and outcomes[k - 1].status != "done" and outcomes[k - 1].message:
            lines.append(f"    {outcomes[k - 1].message}")
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped (finished earlier), {counts['failed']} failed")
    return "\n".join(lines)
