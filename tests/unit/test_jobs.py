"""The job queue: FIFO order, one job at a time, interrupt/skip, failures, progress and ETA (A1111 semantics)."""

from __future__ import annotations

import re
import threading

import pytest

from modules.runtime.fifo_lock import FifoLock
from modules.runtime.jobs import (
    Interrupted,
    Job,
    JobError,
    JobFailedError,
    JobQueue,
    JobState,
    JobStatus,
    Skipped,
    make_task_id,
)

TIMEOUT = 10


@pytest.fixture
def queue():
    q = JobQueue()
    yield q
    q.shutdown(timeout=TIMEOUT)


def _gated(log: list[str], name: str, gate: threading.Event | None = None, running: list[int] | None = None):
    """A job body that logs its start/end and optionally waits for ``gate``; counts concurrent runs."""

    def body(*, job: Job) -> str:
        if running is not None:
            running.append(1)
            assert len(running) == 1, "two jobs ran at the same time"
        log.append(f"start {name}")
        if gate is not None:
            assert gate.wait(TIMEOUT)
        log.append(f"end {name}")
        if running is not None:
            running.pop()
        return name

    return body


def test_two_jobs_run_one_at_a_time_in_fifo_order(queue: JobQueue) -> None:
    log: list[str] = []
    running: list[int] = []
    gate = threading.Event()
    first = queue.submit(_gated(log, "first", gate, running), kind="txt2img")
    second = queue.submit(_gated(log, "second", None, running), kind="txt2img")

    assert _wait_for(lambda: first.status is JobStatus.RUNNING)
    assert second.status is JobStatus.QUEUED
    assert queue.queue_position(second.id) == (1, 1)
    assert queue.queue_position(first.id) == (0, 1)
    gate.set()

    assert first.result(TIMEOUT) == "first"
    assert second.result(TIMEOUT) == "second"
    assert log == ["start first", "end first", "start second", "end second"]
    assert first.status is second.status is JobStatus.DONE
    assert queue.queue_position(second.id) is None
    assert queue.get(first.id) is first


def test_many_submitters_from_threads_all_finish_in_submission_order(queue: JobQueue) -> None:
    order: list[int] = []
    gate = threading.Event()
    blocker = queue.submit(lambda *, job: gate.wait(TIMEOUT))
    assert _wait_for(lambda: blocker.status is JobStatus.RUNNING)
    jobs = [queue.submit(lambda i, *, job: order.append(i), i) for i in range(20)]
    assert [j.id for j in queue.pending()] == [j.id for j in jobs]
    gate.set()
    assert queue.join(TIMEOUT)
    assert blocker.status is JobStatus.DONE
    assert order == list(range(20))


def test_interrupt_stops_the_running_job_and_the_next_job_runs(queue: JobQueue) -> None:
    started = threading.Event()
    steps_done: list[int] = []

    def sampler(*, job: Job) -> str:
        job.state.set_job_count(1)
        job.state.set_sampling_steps(1000)
        for i in range(1000):
            job.state.check()
            started.set()
            steps_done.append(i)
            job.state.step()
            threading.Event().wait(0.002)
        return "finished"

    long_job = queue.submit(sampler)
    after = queue.submit(lambda *, job: "after")
    assert started.wait(TIMEOUT)
    assert queue.interrupt() is True
    assert long_job.wait(TIMEOUT)
    assert long_job.status is JobStatus.INTERRUPTED
    assert long_job.result() is None
    assert len(steps_done) < 1000
    assert after.result(TIMEOUT) == "after"
    assert after.status is JobStatus.DONE


def test_interrupting_a_queued_job_cancels_it_without_running(queue: JobQueue) -> None:
    gate = threading.Event()
    ran: list[str] = []
    first = queue.submit(lambda *, job: gate.wait(TIMEOUT))
    assert _wait_for(lambda: first.status is JobStatus.RUNNING)
    second = queue.submit(lambda *, job: ran.append("second"))
    third = queue.submit(lambda *, job: ran.append("third"))
    assert queue.interrupt(second.id)
    assert second.wait(TIMEOUT) and second.status is JobStatus.INTERRUPTED
    assert queue.queue_position(third.id) == (1, 1)
    gate.set()
    assert third.wait(TIMEOUT)
    assert first.status is JobStatus.DONE
    assert ran == ["third"]


def test_a_job_that_returns_after_interrupt_keeps_its_partial_result(queue: JobQueue) -> None:
    """Processing may catch Interrupted and return the images made so far (A1111 keeps them); status says so."""

    def body(*, job: Job) -> list[str]:
        job.interrupt()
        try:
            job.state.check()
        except Interrupted:
            return ["partial"]
        return ["full"]

    job = queue.submit(body)
    assert job.result(TIMEOUT) == ["partial"]
    assert job.status is JobStatus.INTERRUPTED


def test_failing_job_records_its_error_and_the_next_job_runs(queue: JobQueue) -> None:
    def broken(*, job: Job) -> None:
        raise ValueError("width must be a multiple of 8, got 511")

    bad = queue.submit(broken)
    good = queue.submit(lambda x, *, job: x * 2, 21)
    assert bad.wait(TIMEOUT)
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None
    assert bad.error.type == "ValueError"
    assert bad.error.message == "width must be a multiple of 8, got 511"
    with pytest.raises(JobFailedError, match="multiple of 8") as info:
        bad.result()
    assert info.value.error == bad.error
    assert good.result(TIMEOUT) == 42


def test_skip_abandons_the_current_image_and_the_batch_continues(queue: JobQueue) -> None:
    """Batch count 3: a skip during image 1 ends that image early; images 2 and 3 sample all their steps."""
    started = threading.Event()
    release = threading.Event()
    steps_per_image: list[int] = []

    def batch(*, job: Job) -> list[int]:
        state = job.state
        state.set_job_count(3)
        for n in range(3):
            state.set_sampling_steps(5)
            done = 0
            try:
                for i in range(5):
                    if n == 0 and i == 2:
                        started.set()
                        assert release.wait(TIMEOUT)
                    state.sampler_callback({"i": i, "denoised": f"latent {n}.{i}"})
                    done += 1
            except Skipped:
                pass
            steps_per_image.append(done)
            state.next_job()
        return steps_per_image

    job = queue.submit(batch)
    assert started.wait(TIMEOUT)
    assert queue.skip() is True
    release.set()
    assert job.result(TIMEOUT) == [2, 5, 5]
    assert job.status is JobStatus.DONE
    assert job.state.skipped is False
    assert job.state.job_no == 3


def test_check_raises_interrupted_and_reports_skip() -> None:
    state = JobState()
    assert state.check() is False
    state.skip()
    assert state.check() is True
    state.interrupt()
    with pytest.raises(Interrupted):
        state.check()


def test_progress_follows_a1111_formula_across_batches() -> None:
    state = JobState("txt2img")
    assert state.progress() == 0.0
    state.set_job_count(4)
    state.set_sampling_steps(20)
    state.step(10)
    assert state.progress() == pytest.approx(0.125)  # half of the first of four batches
    state.next_job()
    state.next_job()
    state.set_sampling_steps(20)
    state.step(5)
    assert state.progress() == pytest.approx(2 / 4 + 5 / 20 / 4)
    state.next_job()
    state.next_job()
    state.next_job()
    assert state.progress() == 1.0  # clamped


def test_eta_is_elapsed_over_progress_minus_elapsed() -> None:
    now = [1000.0]
    state = JobState("txt2img", clock=lambda: now[0])
    state.begin()
    state.set_job_count(2)
    state.set_sampling_steps(10)
    assert state.eta_relative() is None  # no progress yet: unknown, not infinite
    now[0] += 6.0
    state.step(3)  # progress 0.15 after 6 s → 40 s predicted in total
    assert state.eta_relative() == pytest.approx(34.0)
    info = state.progress_info()
    assert info["progress"] == pytest.approx(0.15)
    assert info["eta_relative"] == pytest.approx(34.0)
    assert info["state"] == {
        "skipped": False, "interrupted": False, "stopping_generation": False, "job": "txt2img",
        "job_count": 2, "job_timestamp": state.job_timestamp, "job_no": 0, "sampling_step": 3, "sampling_steps": 10,
    }
    assert re.fullmatch(r"\d{14}", state.job_timestamp)
    now[0] += 100.0
    state.end()
    assert state.elapsed(now[0] + 50) == pytest.approx(106.0)  # frozen at the end


def test_queue_progress_info_reports_the_running_job_and_idle_zeros(queue: JobQueue) -> None:
    idle = queue.progress_info()
    assert idle["progress"] == 0 and idle["eta_relative"] == 0 and idle["state"]["job_count"] == 0
    inside = threading.Event()
    gate = threading.Event()

    def body(*, job: Job) -> None:
        job.state.set_job_count(1)
        job.state.set_sampling_steps(4)
        job.state.step(2)
        job.state.set_textinfo("Sampling")
        inside.set()
        assert gate.wait(TIMEOUT)

    job = queue.submit(body, kind="img2img")
    assert inside.wait(TIMEOUT)
    info = queue.progress_info()
    assert info["progress"] == pytest.approx(0.5)
    assert info["state"]["job"] == "img2img"
    assert info["textinfo"] == "Sampling"
    assert info["eta_relative"] is not None and info["eta_relative"] >= 0
    gate.set()
    assert job.wait(TIMEOUT)


def test_live_preview_slot_and_every_n_steps_rule() -> None:
    state = JobState()
    state.set_job_count(1)
    state.set_sampling_steps(20)
    assert state.latest_preview() is None
    assert not state.preview_due(10)  # no latent yet
    state.sampler_callback({"i": 4, "denoised": "latent@5"})
    assert state.current_latent == "latent@5"
    assert not state.preview_due(10)
    state.sampler_callback({"i": 9, "denoised": "latent@10"})
    assert state.preview_due(10)
    assert not state.preview_due(-1)  # -1 = only at the end
    preview_id = state.set_preview("image@10")
    assert state.latest_preview() == (preview_id, "image@10")
    assert state.latest_preview(since_id=preview_id) is None
    assert not state.preview_due(10)


def test_job_ids_follow_a1111_task_format_and_forced_ids_are_kept(queue: JobQueue) -> None:
    assert re.fullmatch(r"task\(txt2img-[A-Z0-9]{7}\)", make_task_id("txt2img"))
    gate = threading.Event()
    job = queue.submit(lambda *, job: gate.wait(TIMEOUT), job_id="task(api-FORCED1)")
    assert job.id == "task(api-FORCED1)"
    with pytest.raises(ValueError, match="already queued or running"):
        queue.submit(lambda *, job: None, job_id="task(api-FORCED1)")
    gate.set()
    assert job.wait(TIMEOUT)


def test_exclusive_device_work_waits_for_the_running_job(queue: JobQueue) -> None:
    log: list[str] = []
    gate = threading.Event()
    job = queue.submit(_gated(log, "job", gate))
    assert _wait_for(lambda: job.status is JobStatus.RUNNING)

    def switch_model() -> None:
        with queue.exclusive(timeout=TIMEOUT):
            log.append("model switched")

    thread = threading.Thread(target=switch_model)
    thread.start()
    assert _wait_for(lambda: queue.device_lock.waiting() == 1)
    assert "model switched" not in log
    gate.set()
    thread.join(TIMEOUT)
    assert log == ["start job", "end job", "model switched"]


def test_fifo_lock_grants_in_request_order() -> None:
    lock = FifoLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        t.start()
        assert _wait_for(lambda n=i + 1: lock.waiting() == n)
        threads.append(t)
    lock.release()
    for t in threads:
        t.join(TIMEOUT)
    assert order == [0, 1, 2, 3, 4]
    assert lock.acquire(timeout=0.01)
    other: list[bool] = []
    t = threading.Thread(target=lambda: other.append(lock.acquire(timeout=0.01)))
    t.start()
    t.join(TIMEOUT)
    assert other == [False]  # timed out while we hold it
    assert lock.waiting() == 0
    with pytest.raises(RuntimeError, match="not reentrant"):
        lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError, match="unlocked"):
        lock.release()


def test_shutdown_cancels_queued_jobs_and_refuses_new_ones() -> None:
    queue = JobQueue()
    gate = threading.Event()
    running = queue.submit(lambda *, job: gate.wait(TIMEOUT))
    queued = queue.submit(lambda *, job: "never")
    assert _wait_for(lambda: running.status is JobStatus.RUNNING)
    stopper = threading.Thread(target=queue.shutdown, kwargs={"timeout": TIMEOUT})
    stopper.start()
    assert queued.wait(TIMEOUT)
    assert queued.status is JobStatus.INTERRUPTED
    with pytest.raises(RuntimeError, match="shut down"):
        queue.submit(lambda *, job: None)
    gate.set()
    stopper.join(TIMEOUT)
    assert running.status is JobStatus.DONE


def _wait_for(predicate, timeout: float = TIMEOUT) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return True
        event.wait(0.005)
    return predicate()


def test_device_lock_is_not_reentrant_inside_a_job(queue: JobQueue) -> None:
    """Taking the device lock again inside a job would deadlock; it fails loudly instead and the job records it."""

    def body(*, job: Job) -> None:
        with queue.exclusive():
            pass

    job = queue.submit(body)
    assert job.wait(TIMEOUT)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "not reentrant" in job.error.message
    assert queue.submit(lambda *, job: "still works").result(TIMEOUT) == "still works"


def test_system_exit_inside_a_job_is_recorded_and_the_worker_survives(queue: JobQueue) -> None:
    failing = queue.submit(lambda *, job: (_ for _ in ()).throw(SystemExit("library called exit")))
    after = queue.submit(lambda *, job: "next")
    assert failing.wait(TIMEOUT) and failing.status is JobStatus.FAILED
    assert failing.error == JobError("library called exit", "SystemExit")
    assert after.result(TIMEOUT) == "next"
