"""A bounded job queue served by a fixed number of worker threads (not a thread per request).

``submit`` refuses work when the queue is full (the app answers 503 with Retry-After). Jobs report
progress through :meth:`Job.report`, which is also where a cancelled or overdue job stops;
:meth:`JobQueue.cancel` ends a queued job at once. The moment a job ends it drops its callables and
its request (``fn``, ``batch_fn``, ``batch_item`` and, through them, the decoded images): a finished
job holds only its result bytes or its error message. Finished jobs are kept ``keep_s`` seconds, at
most ``max_jobs`` of them and at most ``max_result_bytes`` of results in all (oldest evicted first;
a request waiting for its job holds the job itself, so an evicted result still reaches it). Waiting
for a job from asyncio uses a future completed by the worker (``call_soon_threadsafe``): no thread is
parked per waiting request.

Batching: a job may carry a ``batch_key`` and a ``batch_fn``. With ``max_batch`` > 1, a worker that
takes such a job also takes the queued jobs with the same key (waiting at most ``batch_window_s``
for more to arrive), up to ``max_batch`` in all, and runs them with one ``batch_fn(jobs)`` call,
which answers one result (or exception) per job. A batch of one runs ``fn`` as usual.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import GanforgeError, WeightsError
from .errors import server_fault

log = logging.getLogger("ganforge.server")


class QueueFull(Exception):
    pass


class Cancelled(Exception):
    pass


@dataclass
class Result:
    body: bytes
    media_type: str
    filename: str


@dataclass
class Job:
    kind: str
    fn: Callable[["Job"], Result] | None  # None once the job has ended (its inputs are released)
    timeout: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    status: str = "queued"  # queued, running, done, failed, cancelled
    progress: float = 0.0
    stage: str = "queued"
    started: float | None = None
    finished: float | None = None
    result: Result | None = None
    error: tuple[int, str] | None = None  # (HTTP status, message)
    error_id: str | None = None  # a server fault's id, also in the server's log line
    cancelled: bool = False
    batch_key: Any = None  # jobs with equal keys may share one batch_fn call
    batch_fn: Callable[[list["Job"]], list[Any]] | None = None
    batch_item: Any = None  # what batch_fn needs of this job (its request spec)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiters: list = field(default_factory=list, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def report(self, fraction: float, stage: str | None = None) -> None:
        """Progress in [0, 1]; raises :class:`Cancelled` when the job was cancelled or ran too long."""
        self.progress = max(self.progress, min(1.0, float(fraction)))
        if stage:
            self.stage = stage
        if self.cancelled:
            raise Cancelled("cancelled")
        if self.started is not None and time.time() - self.started > self.timeout:
            raise Cancelled(f"took longer than the {self.timeout:g} s limit")

    def cancel(self) -> None:
        """Ask the job to stop: a queued job never starts, a running one stops at its next
        :meth:`report` (:meth:`JobQueue.cancel` also ends a queued job at once). A queued job
        drops its inputs now; it keeps its place in the queue until a worker discards it."""
        with self._lock:
            self.cancelled = True
            if self.status == "queued":
                self.fn = self.batch_fn = self.batch_item = None

    @property
    def result_bytes(self) -> int:
        return len(self.result.body) if self.result is not None else 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "status": self.status,
                               "progress": round(self.progress, 4), "stage": self.stage,
                               "created": self.created, "started": self.started, "finished": self.finished}
        if self.status == "done":
            out["result"] = f"/v1/jobs/{self.id}/result"
        if self.error:
            out["error"] = self.error[1]
        if self.error_id:
            out["error_id"] = self.error_id
        return out

    # -- completion -----------------------------------------------------------------------------------

    def _finish(self, status: str, *, result: Result | None = None, error: tuple[int, str] | None = None) -> None:
        with self._lock:
            self.status, self.result, self.error = status, result, error
            if status == "done":
                self.progress, self.stage = 1.0, "done"
            else:
                self.stage = status
            self.finished = time.time()
            # the request (decoded images, tensors) lives in these closures: drop it now, keep only the answer
            self.fn = self.batch_fn = self.batch_item = None
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that event loop is closed: nobody waits any more
                pass

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the job finished."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self.done:
                return True
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            with self._lock:
                if (loop, fut) in self._waiters:
                    self._waiters.remove((loop, fut))
            return self.done
        return True


def _weights_message(text: str) -> str:
    found = re.match(r"weights '([^']+)' not found", text)
    if found:
        return (f"model unavailable: weights {found.group(1)!r} not found on the server (its operator can run "
                f"`ganforge weights fetch {found.group(1)}` or set GANFORGE_WEIGHTS_DIR; GET /v1/models shows "
                f"which methods are available)")
    return "model unavailable: the server's weights for this method cannot be loaded (details in the server log)"


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class JobQueue:
    def __init__(self, *, workers: int = 1, max_queue: int = 16, max_jobs: int = 256, keep_s: float = 600.0,
                 max_batch: int = 1, batch_window_s: float = 0.0, max_result_bytes: int = 256 * 2**20) -> None:
        self.workers, self.max_queue, self.max_jobs, self.keep_s = workers, max_queue, max_jobs, keep_s
        self.max_result_bytes = int(max_result_bytes)
        self.max_batch, self.batch_window_s = max(1, int(max_batch)), max(0.0, float(batch_window_s))
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()  # guards _pending and _closing
        self._closing = False
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.completed = self.failed = self.rejected = self.cancelled = self.evicted = 0
        self.batches = self.batched_jobs = 0  # batch_fn calls, and the jobs they served

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            with self._cond:
                self._closing = False
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"ganforge-worker-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
            for job in self._jobs.values():
                if not job.done:
                    job.cancel()
        with self._cond:  # workers drain what is queued (all cancelled now), then exit
            self._closing = True
            self._cond.notify_all()
        for t in threads:
            t.join(timeout)

    def submit(self, kind: str, fn: Callable[[Job], Result], timeout: float, *, batch_key: Any = None,
               batch_fn: Callable[[list[Job]], list[Any]] | None = None, batch_item: Any = None) -> Job:
        job = Job(kind, fn, timeout, batch_key=batch_key, batch_fn=batch_fn, batch_item=batch_item)
        with self._lock:
            self._prune()
            if len(self._jobs) >= self.max_jobs:
                self.rejected += 1
                raise QueueFull(f"too many jobs kept ({self.max_jobs}); try again when some have expired")
            with self._cond:
                if len(self._pending) >= self.max_queue:
                    self.rejected += 1
                    raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting)")
                self._pending.append(job)
                self._cond.notify_all()
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """The jobs kept now (queued, running and finished ones not yet expired or evicted)."""
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job: Job) -> None:
        """Cancel ``job``: a queued one leaves the queue and ends as cancelled now (its inputs
        dropped); a running one stops at its next progress point; a finished one is left alone."""
        job.cancel()
        with self._cond:
            try:
                self._pending.remove(job)
            except ValueError:  # running, finished, or a worker has just taken it
                return
        job._finish("cancelled", error=(499, "cancelled before it started"))
        self._count(job)

    @property
    def result_bytes(self) -> int:
        with self._lock:
            return sum(j.result_bytes for j in self._jobs.values())

    def _prune(self) -> None:
        """Drop expired finished jobs, then the oldest finished ones while over the count or the
        result-bytes bound (lock held)."""
        now = time.time()
        for jid in [j.id for j in self._jobs.values() if j.done and now - (j.finished or now) > self.keep_s]:
            del self._jobs[jid]
        total = sum(j.result_bytes for j in self._jobs.values())
        if len(self._jobs) < self.max_jobs and total <= self.max_result_bytes:
            return
        for job in sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.finished or 0):
            if len(self._jobs) < self.max_jobs and total <= self.max_result_bytes:
                break
            del self._jobs[job.id]
            total -= job.result_bytes
            self.evicted += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            active = sum(1 for j in self._jobs.values() if not j.done)
        with self._cond:
            queued = len(self._pending)
        return {"workers": self.workers, "queued": queued, "max_queue": self.max_queue,
                "active": active, "completed": self.completed, "failed": self.failed, "rejected": self.rejected,
                "cancelled": self.cancelled, "result_bytes": self.result_bytes,
                "max_result_bytes": self.max_result_bytes, "evicted": self.evicted,
                "max_batch": self.max_batch, "batch_window_ms": round(self.batch_window_s * 1000, 3),
                "batches": self.batches, "batched_jobs": self.batched_jobs}

    # -- the workers ----------------------------------------------------------------------------------

    def _take(self) -> list[Job] | None:
        """The next job, plus queued jobs that can share its batch; None when stopping and drained."""
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            first = self._pending.popleft()
            batch = [first]
            if first.batch_key is None or first.batch_fn is None or self.max_batch <= 1 or first.cancelled:
                return batch
            deadline = time.monotonic() + self.batch_window_s
            while True:
                for job in list(self._pending):
                    if len(batch) >= self.max_batch:
                        break
                    if job.batch_key == first.batch_key and not job.cancelled:
                        self._pending.remove(job)
                        batch.append(job)
                left = deadline - time.monotonic()
                if len(batch) >= self.max_batch or left <= 0 or self._closing:
                    return batch
                self._cond.wait(left)  # woken by submit: look again

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if len(batch) == 1:
                self._run_one(batch[0])
            else:
                self._run_batch(batch)
            del batch  # not held while this worker waits for the next job

    def _start(self, job: Job) -> bool:
        with job._lock:  # against Job.cancel: a job is either cancelled while queued or started
            if not job.cancelled:
                job.status, job.stage, job.started = "running", "running", time.time()
                return True
        job._finish("cancelled", error=(499, "cancelled before it started"))
        return False

    def _run_one(self, job: Job) -> None:
        if not self._start(job):
            return
        try:
            result = job.fn(job)
        except Exception as exc:  # mapped to the client's answer in _fail
            self._fail(job, exc)
        else:
            job._finish("done", result=result)
        self._count(job)

    def _run_batch(self, batch: list[Job]) -> None:
        jobs = [j for j in batch if self._start(j)]
        if not jobs:
            return
        try:
            outcomes = jobs[0].batch_fn(jobs)  # type: ignore[misc]
            if len(outcomes) != len(jobs):
                raise RuntimeError(f"batch_fn answered {len(outcomes)} results for {len(jobs)} jobs")
        except Exception as exc:  # the whole batch failed (e.g. out of memory): each job alone, as usual
            log.warning("batch of %d %s jobs failed (%s: %s); running them one by one", len(jobs), jobs[0].kind,
                        type(exc).__name__, exc)
            for job in jobs:
                if job.done:
                    continue
                try:
                    job._finish("done", result=job.fn(job))
                except Exception as one:
                    self._fail(job, one)
                self._count(job)
            return
        with self._lock:
            self.batches += 1
            self.batched_jobs += len(jobs)
        for job, outcome in zip(jobs, outcomes):
            if job.done:  # batch_fn finished it (e.g. cancelled mid-way)
                pass
            elif isinstance(outcome, Exception):
                self._fail(job, outcome)
            else:
                job._finish("done", result=outcome)
            self._count(job)

    def _fail(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, Cancelled):
            job._finish("cancelled", error=(504, f"job stopped: {exc}"))
        elif isinstance(exc, WeightsError):  # the full text names server folders: to the log, not the client
            log.warning("job %s: %s", job.id, exc)
            job._finish("failed", error=(503, _weights_message(str(exc))))
        elif isinstance(exc, GanforgeError):
            job._finish("failed", error=(422, str(exc)))
        elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
            job._finish("failed", error=(503, "out of memory; try a smaller max_size"))
        else:  # a bug, a device error or a broken run on the server: logged with an id, never sent to the client
            status, message, job.error_id = server_fault(exc, f"job {job.id} ({job.kind}) failed")
            job._finish("failed", error=(status, message))

    def _count(self, job: Job) -> None:
        with self._lock:
            if job.status == "done":
                self.completed += 1
            elif job.status == "cancelled":
                self.cancelled += 1
            else:
                self.failed += 1
            self._prune()  # results are bounded by bytes as soon as they arrive
