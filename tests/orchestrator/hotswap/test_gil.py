"""Taking turns with a worker thread: results, errors, give-ups, and a job
that progresses while the loop never idles (real threads, no mocks)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from orchestrator.hotswap.gil import Turns, run_aside

GIVE_UP_S = 60.0  # "give up after" limits only: a loaded CI machine is slow


async def test_the_job_result_comes_back_and_checkpoints_pass_during_turns():
    def job(checkpoint):
        total = 0
        for i in range(10_000):
            checkpoint()
            total += i
        return total

    assert await run_aside(job, timeout_s=GIVE_UP_S, name="test-job") == sum(range(10_000))


async def test_the_job_error_is_raised_in_the_caller():
    def job(checkpoint):
        checkpoint()
        raise ValueError("bad module")

    with pytest.raises(ValueError, match="bad module"):
        await run_aside(job, timeout_s=GIVE_UP_S, name="test-job")


async def test_a_job_past_its_deadline_is_given_up_and_its_late_result_discarded():
    release = threading.Event()
    discarded: list[str] = []
    seen = threading.Event()

    def job(checkpoint):
        release.wait(GIVE_UP_S)
        return "late"

    def discard(result):
        discarded.append(result)
        seen.set()

    with pytest.raises(TimeoutError, match=r"test-job did not finish within 0\.2 s"):
        await run_aside(job, timeout_s=0.2, name="test-job", discard=discard)
    assert discarded == []
    release.set()
    assert await asyncio.to_thread(seen.wait, GIVE_UP_S)
    assert discarded == ["late"]


async def test_a_cancelled_wait_lets_the_job_finish_and_discards_its_result():
    started, seen = threading.Event(), threading.Event()
    discarded: list[int] = []

    def job(checkpoint):
        started.set()
        for _ in range(200):
            checkpoint()  # parked outside turns: only abandoning the job lets it through
            time.sleep(0.001)
        return 7

    def discard(result):
        discarded.append(result)
        seen.set()

    waiting = asyncio.create_task(run_aside(job, timeout_s=GIVE_UP_S, name="test-job", discard=discard))
    assert await asyncio.to_thread(started.wait, GIVE_UP_S)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.to_thread(seen.wait, GIVE_UP_S)
    assert discarded == [7]


def test_past_its_turn_the_worker_parks_until_the_next():
    turns: Turns[None] = Turns(None)
    steps: list[int] = []
    slept = threading.Event()

    def worker():
        turns.checkpoint()
        steps.append(1)
        time.sleep(0.05)  # outlives the first turn
        slept.set()
        turns.checkpoint()
        steps.append(2)
        turns.finish(None, None)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    turns.give_turn(0.01)
    assert slept.wait(GIVE_UP_S)
    time.sleep(0.2)  # no turn given: the worker must still be parked
    assert steps == [1]
    deadline = time.monotonic() + GIVE_UP_S
    while not turns.done and time.monotonic() < deadline:
        turns.give_turn(0.01)
    thread.join(GIVE_UP_S)
    assert steps == [1, 2]


async def test_a_job_progresses_while_the_loop_never_idles():
    """The CI case: a feed that yields with ``sleep(0)`` after every small
    batch releases the GIL briefly on every loop pass, which restarts a
    waiting thread's switch timer; the job must finish anyway, and the
    feed must go on meanwhile."""
    fed = 0
    stop = asyncio.Event()

    async def feed():
        nonlocal fed
        while not stop.is_set():
            for _ in range(64):
                fed += sum(range(50)) > 0
            await asyncio.sleep(0)

    def job(checkpoint):
        total = 0
        for i in range(300_000):
            if i % 100 == 0:
                checkpoint()
            total += i % 7
        return total

    feeder = asyncio.create_task(feed())
    await asyncio.sleep(0)
    before = fed
    result = await run_aside(job, timeout_s=GIVE_UP_S, name="test-job")
    during = fed - before
    stop.set()
    await feeder
    assert result == sum(i % 7 for i in range(300_000))
    assert during > 0  # the loop was served between the job's turns
