"""The job queue: one device lock, FIFO order, per-job progress, interrupt and skip.

A1111 serialises every generation (UI and API alike) on one FIFO ``queue_lock`` and keeps the progress of the running
job in the module-global ``shared.state`` (``job_count``, ``job_no``, ``sampling_step``, ``sampling_steps``,
``textinfo``, ``interrupted``, ``skipped``, live preview).  Here the same information lives in a :class:`JobState`
per job, owned by a :class:`JobQueue` object that the app context holds; nothing is module-global.

Usage::

    queue = JobQueue()
    job = queue.submit(run_txt2img, ctx, params, kind="txt2img")   # calls run_txt2img(ctx, params, job=job)
    result = job.result()                                          # blocks; raises JobFailedError on failure

Inside the job, the sampler calls ``job.state.check()`` (or passes ``job.state.sampler_callback`` as the
k-diffusion style ``callback``) once per step: it raises :class:`Interrupted` after ``interrupt()`` and reports a
``skip()`` request, exactly where A1111's sampler callback raises ``InterruptedException``.
"""

from __future__ import annotations

import enum
import logging
import secrets
import string
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modules.runtime.fifo_lock import FifoLock
from modules.runtime.job_state import Interrupted, JobState, Skipped

log = logging.getLogger(__name__)

__all__ = [
    "Interrupted",
    "Job",
    "JobError",
    "JobFailedError",
    "JobQueue",
    "JobState",
    "JobStatus",
    "Skipped",
    "make_task_id",
]

_TASK_ID_ALPHABET = string.ascii_uppercase + string.digits


def make_task_id(kind: str = "task") -> str:
    """A task id in A1111's format ``task(<kind>-<7 random A-Z0-9>)`` (the UI's ``id_task``; API ``force_task_id``)."""
    suffix = "".join(secrets.choice(_TASK_ID_ALPHABET) for _ in range(7))
    return f"task({kind}-{suffix})"


class JobStatus(str, enum.Enum):
    """Life cycle of a job: queued → running → done | failed | interrupted (queued jobs may be cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.INTERRUPTED)


@dataclass(frozen=True)
class JobError:
    """What went wrong in a failed job: the exception's message and type name (A1111 shows both in the UI)."""

    message: str
    type: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class QueueFullError(RuntimeError):
    """The queue holds `max_queued` waiting jobs already."""


class JobFailedError(RuntimeError):
    """Raised by :meth:`Job.result` when the job's function raised; carries the recorded :class:`JobError`."""

    def __init__(self, job_id: str, error: JobError) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class Job:
    """One submitted unit of device work: its id, status, :class:`JobState`, and eventually a result or error."""

    def __init__(self, job_id: str, kind: str, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], clock: Callable[[], float]) -> None:
        self.id = job_id
        self.kind = kind
        self.state = JobState(kind, clock=clock)
        self.created_at = clock()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: JobError | None = None
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._status = JobStatus.QUEUED
        self._value: Any = None
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Job], None]] = []
        self.user: str | None = None
        """The authenticated login that submitted the job, when logins are required (A1111 `p.user`)."""

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, status={self._status.value})"

    @property
    def status(self) -> JobStatus:
        return self._status

    def interrupt(self) -> None:
        """Ask this job to stop: a running job stops at its next ``check()``; a queued job never starts."""
        self.state.interrupt()

    def skip(self) -> None:
        """Ask a running job to skip the image it is sampling (A1111 "Skip")."""
        self.state.skip()

    def add_done_callback(self, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` once the job has finished (at once if it already has), from the finishing thread; lets
        an async handler wait without holding a worker thread."""
        with self._lock:
            if not self._finished.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; False if ``timeout`` seconds passed first."""
        return self._finished.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The function's return value (``None`` if it was interrupted before returning).

        Raises :class:`JobFailedError` if the function raised and :class:`TimeoutError` if ``timeout`` passed.
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(f"job {self.id} did not finish within {timeout} s (status: {self._status.value})")
        if self._status is JobStatus.FAILED:
            assert self.error is not None
            raise JobFailedError(self.id, self.error)
        return self._value

    # -- used by JobQueue only ------------------------------------------------------------------------------------

    def _start(self, now: float) -> bool:
        with self._lock:
            if self._status is not JobStatus.QUEUED or self.state.interrupted:
                return False
            self._status = JobStatus.RUNNING
            self.started_at = now
        self.state.begin()
        return True

    def _run(self) -> None:
        try:
            value = self._fn(*self._args, job=self, **self._kwargs)
        except Interrupted:
            self._finish(JobStatus.INTERRUPTED, None, None)
        except BaseException as exc:  # a job must never take the worker down; the error is recorded instead
            self._finish(JobStatus.FAILED, None, JobError(str(exc), type(exc).__name__))
            if not isinstance(exc, Exception | SystemExit):
                raise
        else:
            status = JobStatus.INTERRUPTED if self.state.interrupted else JobStatus.DONE
            self._finish(status, value, None)

    def _cancel(self) -> bool:
        """Finish a job that never started (interrupted while queued)."""
        with self._lock:
            if self._status is not JobStatus.QUEUED:
                return False
        self._finish(JobStatus.INTERRUPTED, None, None)
        return True

    def _finish(self, status: JobStatus, value: Any, error: JobError | None) -> None:
        with self._lock:
            self._status = status
            self._value = value
            self.error = error
            self.finished_at = self.state.clock()
            self._fn = _released
            self._args = ()
            self._kwargs = {}
        self.state.end()
        with self._lock:
            self._finished.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # a waiter's callback must not break the worker
                log.error("job %s: done-callback failed: %s", self.id, exc)


def _released(*_args: Any, **_kwargs: Any) -> None:
    """Placeholder for a finished job's function, so the job does not keep its arguments (models, images) alive."""


class JobQueue:
    """FIFO job queue with one worker thread and one device lock.

    Jobs run one at a time in submission order, like A1111's ``queue_lock`` (a FIFO lock shared by the UI and the
    API).  Other device work (loading a checkpoint from the settings page, say) takes the same lock through
    :meth:`exclusive` and is ordered fairly with the jobs.  A failing job records its error and the next job runs
    normally.  Finished jobs stay retrievable by id until ``keep_finished`` newer ones have finished (A1111 keeps
    the last 16 finished task ids for ``/internal/progress``).
    """

    def __init__(self, *, keep_finished: int = 64, max_queued: int = 0, clock: Callable[[], float] = time.time,
                 name: str = "job-queue") -> None:
        """`max_queued` > 0 bounds the jobs waiting behind the running one (`--max-queued-jobs`): a submit beyond
        it raises :class:`QueueFullError` (the API answers 429) instead of growing the queue without end."""
        self.max_queued = max(0, max_queued)
        self.device_lock = FifoLock()
        self._clock = clock
        self._name = name
        self._keep_finished = keep_finished
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._current: Job | None = None
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- submitting and looking up --------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, kind: str = "task", job_id: str | None = None,
               user: str | None = None, **kwargs: Any) -> Job:
        """Queue ``fn(*args, job=<the Job>, **kwargs)`` and return its :class:`Job` at once.

        ``job_id`` lets a client choose the id (A1111's ``force_task_id``); otherwise one is made with
        :func:`make_task_id`.  Raises ``ValueError`` for an id that is already queued or running, and
        ``RuntimeError`` after :meth:`shutdown`.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("the job queue is shut down; no new jobs are accepted")
            if job_id is None:
                job_id = make_task_id(kind)
                while self._find_active(job_id) is not None:
                    job_id = make_task_id(kind)
            elif self._find_active(job_id) is not None:
                raise ValueError(f"a job with id {job_id!r} is already queued or running")
            if self.max_queued and len(self._waiting) >= self.max_queued:
                raise QueueFullError(f"{len(self._waiting)} jobs are already waiting (--max-queued-jobs "
                                     f"{self.max_queued}); try again when some have finished")
            job = Job(job_id, kind, fn, args, kwargs, self._clock)
            job.user = user
            self._waiting.append(job)
            self._ensure_worker()
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        """The queued, running or recently finished job with this id, or None."""
        with self._cond:
            return self._find_active(job_id) or self._finished.get(job_id)

    def current(self) -> Job | None:
        """The running job, if any."""
        with self._cond:
            return self._current

    def pending(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        with self._cond:
            return list(self._waiting)

    def queue_position(self, job_id: str) -> tuple[int, int] | None:
        """``(position, waiting)`` of a queued job: 1 = runs next; ``waiting`` = how many jobs are queued.

        ``(0, waiting)`` for the running job, ``None`` for an unknown or finished one.  The UI shows this as
        "In queue: position/waiting" (A1111 reports queued tasks from its ``pending_tasks``).
        """
        with self._cond:
            waiting = len(self._waiting)
            if self._current is not None and self._current.id == job_id:
                return 0, waiting
            for index, job in enumerate(self._waiting, start=1):
                if job.id == job_id:
                    return index, waiting
        return None

    # -- control --------------------------------------------------------------------------------------------------

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the running job (A1111 ``POST /sdapi/v1/interrupt``) or, given an id, that job.

        A queued job that is interrupted is removed from the queue and finishes as ``interrupted`` without running.
        Returns whether a job was found.
        """
        with self._cond:
            job = self._current if job_id is None else self._find_active(job_id)
            if job is None:
                return False
            job.state.interrupt()
            if job in self._waiting:
                self._waiting.remove(job)
                cancelled = job
            else:
                cancelled = None
        if cancelled is not None and cancelled._cancel():
            self._remember(cancelled)
        return True

    def skip(self) -> bool:
        """Skip the image the running job is sampling (A1111 ``POST /sdapi/v1/skip``). False when idle."""
        with self._cond:
            job = self._current
        if job is None:
            return False
        job.state.skip()
        return True

    def stop_generating(self) -> bool:
        """Let the running job finish its current image, then stop (A1111 1.9 "stop generating")."""
        with self._cond:
            job = self._current
        if job is None:
            return False
        job.state.stop_generating()
        return True

    @contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the device lock for work outside a job (checkpoint switch, unload); waits its turn in FIFO order."""
        if not self.device_lock.acquire(timeout=timeout):
            raise TimeoutError(f"the device stayed busy for {timeout} s")
        try:
            yield
        finally:
            self.device_lock.release()

    def progress_info(self) -> dict[str, Any]:
        """A1111 ``GET /sdapi/v1/progress`` fields for the running job; zeros when idle."""
        job = self.current()
        if job is None:
            return JobState.idle_progress_info()
        return job.state.progress_info()

    def join(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._current is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, *, cancel_pending: bool = True, timeout: float | None = None) -> None:
        """Stop accepting jobs; interrupt queued ones (or let them run), then stop the worker thread."""
        with self._cond:
            self._closed = True
            cancelled = list(self._waiting) if cancel_pending else []
            if cancel_pending:
                self._waiting.clear()
            self._cond.notify_all()
            worker = self._worker
        for job in cancelled:
            job.state.interrupt()
            if job._cancel():
                self._remember(job)
        if worker is not None:
            worker.join(timeout)

    # -- worker ---------------------------------------------------------------------------------------------------

    def _find_active(self, job_id: str) -> Job | None:
        if self._current is not None and self._current.id == job_id:
            return self._current
        return next((job for job in self._waiting if job.id == job_id), None)

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._worker.start()

    def _next_job(self) -> Job | None:
        with self._cond:
            while not self._waiting:
                if self._closed:
                    return None
                self._cond.wait()
            job = self._waiting.popleft()
            self._current = job
            return job

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                with self.device_lock:
                    if job._start(self._clock()):
                        job._run()
                    else:
                        job._cancel()
            finally:
                with self._cond:
                    self._current = None
                    self._cond.notify_all()
                self._remember(job)

    def _remember(self, job: Job) -> None:
        with self._cond:
            self._finished[job.id] = job
            self._finished.move_to_end(job.id)
            while len(self._finished) > self._keep_finished:
                self._finished.popitem(last=False)
            self._cond.notify_all()
