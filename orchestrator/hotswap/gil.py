"""Sharing the GIL between the event loop's thread and helper threads.

CPython passes the GIL to a waiting thread once the holder has run for the
switch interval (``sys.getswitchinterval()``, 5 ms) without a switch. But
the waiter's timer starts over every time the holder releases the GIL, even
for a microsecond, and a holder that takes it straight back usually wins.
An event loop fed as fast as it goes releases it on every iteration
(``epoll_wait`` with a zero timeout) and takes it back at once, so a thread
that needs the GIL (watchfiles' watching thread after each step, a worker
loading and checking new module code) waits until it happens to win a race:
tens of milliseconds on a quiet machine, seconds on a loaded one. The same
happens the other way round when a worker releases it briefly and often
(``time.sleep(0)``): the loop waits.

So the loop and a worker take turns on purpose (``run_aside``): the loop
makes one pass (serving a batch of events), then blocks (releasing the GIL and not
competing for it) while the worker runs for ``TURN_S``. The worker calls
its ``checkpoint`` often (between sample events, between steps); past the
end of its turn a checkpoint parks it until the next turn, which hands the
GIL straight back. So the job always progresses however busy the loop is,
the events wait about ``TURN_S`` per turn, and between turns the loop runs
at full speed; an idle loop passes at once, and the job runs nearly alone.
Code between checkpoints (a module's own code running at import or
construction) competes for the GIL the ordinary way, with the
switch interval lowered to ``JOB_SWITCH_INTERVAL_S`` meanwhile.

``lend_while_busy`` gives a service's threads (the watcher's) a short turn
every ``IDLE_PERIOD_S`` while the loop's thread is busy (an idle loop
blocks in ``epoll_wait``, which is turn enough).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

Checkpoint = Callable[[], None]

JOB_SWITCH_INTERVAL_S = 0.0005  # while a job runs: how long the loop waits for the GIL back
TURN_S = 0.001  # one turn of the job: the events wait about this long
IDLE_PERIOD_S = 0.01  # a service's threads get a turn this often while the loop is busy
IDLE_LEND_S = 0.0002
_BUSY = 0.5  # the loop's thread counts as busy when it ran at least this share of the period


def no_checkpoint() -> None:
    """A ``Checkpoint`` for code run outside ``run_aside`` (tests, tools)."""


@contextlib.contextmanager
def short_gil_slices(interval_s: float = JOB_SWITCH_INTERVAL_S) -> Iterator[None]:
    """Lower the interpreter's switch interval while a worker thread runs."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval_s))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Turns(Generic[T]):
    """Turn-taking between the loop's thread and one worker, and the job's outcome."""

    def __init__(self, discard: Callable[[T], object] | None) -> None:
        self.cond = threading.Condition()
        self.turn_ends = 0.0  # perf_counter; read without the lock on the fast path
        self.parked = False
        self.done = False
        self.abandoned = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.discard = discard

    def checkpoint(self) -> None:
        """Worker side: return at once during its turn, else wait for the next."""
        if time.perf_counter() < self.turn_ends:
            return
        with self.cond:
            self.parked = True
            self.cond.notify_all()
            while time.perf_counter() >= self.turn_ends and not self.abandoned:
                self.cond.wait()
            self.parked = False

    def give_turn(self, seconds: float) -> None:
        """Loop side: block until the worker parks, finishes, or ``seconds`` pass."""
        with self.cond:
            self.turn_ends = time.perf_counter() + seconds
            self.parked = False
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.parked or self.done, timeout=seconds)
            self.turn_ends = 0.0

    def finish(self, result: T | None, error: BaseException | None) -> None:
        with self.cond:
            self.result, self.error = result, error
            self.done = True
            late = self.abandoned
            self.cond.notify_all()
        if late and error is None and self.discard is not None:
            self.discard(result)  # type: ignore[arg-type]  # no error: the job returned a T

    def abandon(self) -> bool:
        """Stop waiting for the job and let it run freely; False if it finished meanwhile."""
        with self.cond:
            if self.done:
                return False
            self.abandoned = True
            self.cond.notify_all()
            return True


async def run_aside(
    job: Callable[[Checkpoint], T],
    *,
    timeout_s: float,
    name: str,
    discard: Callable[[T], object] | None = None,
) -> T:
    """Run ``job(checkpoint)`` in a new thread, taking turns with it; return
    its result or raise its exception. ``TimeoutError`` after ``timeout_s``:
    the thread cannot be stopped and runs on, and if it ever returns,
    ``discard`` gets the result (to forget modules it loaded).

    A thread of its own rather than the loop's default executor: a job stuck
    in new module code keeps only its own thread, never one the daemon's
    other work waits for."""
    turns: Turns[T] = Turns(discard)

    def work() -> None:
        try:
            turns.checkpoint()  # start on the first turn
            result = job(turns.checkpoint)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            turns.finish(None, exc)
        else:
            turns.finish(result, None)

    deadline = time.monotonic() + timeout_s
    with short_gil_slices():
        threading.Thread(target=work, name=name, daemon=True).start()
        try:
            while not turns.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0.0 and turns.abandon():
                    raise TimeoutError(f"{name} did not finish within {timeout_s:g} s")
                turns.give_turn(max(0.0, min(TURN_S, remaining)))
                # One pass of the loop serves what waited during the turn (a
                # batch of the feed, say) before the next turn, or before the
                # caller goes on with the swap itself. An idle loop passes at
                # once, and the job runs nearly alone.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            turns.abandon()  # the daemon is stopping: whatever the job loads later is forgotten
            raise
    if turns.error is not None:
        raise turns.error
    return turns.result  # type: ignore[return-value]  # no error: the job returned a T


async def lend_while_busy(period_s: float = IDLE_PERIOD_S, lend_s: float = IDLE_LEND_S) -> None:
    """Forever: every ``period_s``, if the loop's thread was busy most of
    that time, step aside for ``lend_s`` so other threads get the GIL."""
    wall, cpu = time.perf_counter(), time.thread_time()
    while True:
        await asyncio.sleep(period_s)
        now, ran = time.perf_counter(), time.thread_time()
        if ran - cpu >= _BUSY * (now - wall):
            time.sleep(lend_s)
            now, ran = time.perf_counter(), time.thread_time()
        wall, cpu = now, ran
