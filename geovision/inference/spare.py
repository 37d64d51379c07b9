"""Work done in the cores' spare time, which the caller can always take back.

On a CPU the model's team of torch threads keeps the cores about 95% busy: between its
parallel regions (and while Python dispatches the next layer) a core idles for a moment.
:class:`SpareTime` is one helper thread that runs queued work only in those moments: on Linux
it runs under ``SCHED_IDLE``, so the kernel gives it a core only when no other thread wants it,
and it takes nothing from the model (a helper at normal priority would take a core from one
member of the team, and the whole team would wait for it at the next barrier).

Spare time is not promised: on a machine busy with other work the helper may not run at all.
So nothing waits for it while the model runs. Work is submitted as a :class:`Ticket`; when
its result is needed, :meth:`Ticket.claim` returns it if the helper has finished, runs the work
in the caller if the helper has not started it, and, if the helper is in the middle of it, runs
it again in the caller (the helper's result is then thrown away by ``discard``). The work must
therefore be repeatable: reading a block, or encoding a strip into a file named for who wrote
it. Once the model is done, a claimer may instead wait for the ticket the helper is on
(``claim(wait=True)``), and :meth:`SpareTime.settle` waits until the helper has let go of
everything, so that a scene's scratch files can be removed; while either waits, the helper runs
at normal priority where the system allows a thread to raise its own.

On CUDA the host's cores are free while the device runs the model, and the same tickets go to
*prompt* helpers instead: several threads at normal priority (``SpareTime(threads=n,
idle=False)``), whose work a claimer waits for rather than doing it again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Who runs a ticket's work: the spare-time helper or the caller claiming it.
SPARE, CALLER = "spare", "caller"

_PENDING, _RUNNING, _DONE, _TAKEN = range(4)


def idle_priority_available() -> bool:
    """Whether a thread can ask to run only when a core is otherwise idle (Linux)."""
    return hasattr(os, "SCHED_IDLE") and hasattr(os, "sched_setscheduler")


def _lower_this_thread() -> bool:
    """Run the calling thread under ``SCHED_IDLE``; True if that worked."""
    return idle_priority_available() and _set_policy(0, os.SCHED_IDLE)


def _set_policy(tid: int, policy: int) -> bool:
    """Set thread ``tid``'s scheduling policy (0: the calling thread); True if that worked."""
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except OSError:  # refused (a sandbox, a seccomp profile, no privilege): stay as we are
        return False
    return True


class Ticket(Generic[T]):
    """Work that the spare-time helper may do ahead, or the caller when it needs the result."""

    def __init__(self, work: Callable[[str], T], discard: Callable[[T], None] | None = None,
                 helper: SpareTime | None = None) -> None:
        """Hold ``work`` until the helper or a claimer runs it.

        ``work(who)`` does it (``who``: :data:`SPARE` or :data:`CALLER`); ``discard`` undoes
        a result nobody will use (the helper's, when the caller did the work again);
        ``helper``: the spare time it was submitted to (raised while a claimer waits).
        """
        self._work, self._discard, self._helper = work, discard, helper
        self._state = _PENDING
        self._lock = threading.Lock()
        self._left = threading.Event()  # set when the helper's run of it is over
        self._result: T | None = None
        self._error: BaseException | None = None
        self.by: str | None = None  # who did the work whose result claim() returned

    def _run_spare(self) -> None:
        with self._lock:
            if self._state != _PENDING:
                return
            self._state = _RUNNING
        try:
            result: Any = self._work(SPARE)
            error = None
        except BaseException as exc:  # handed to the claimer, who runs it again anyway
            result, error = None, exc
        with self._lock:
            if self._state == _TAKEN:  # the caller did it meanwhile: ours is not wanted
                taken = True
            else:
                taken = False
                self._state, self._result, self._error = _DONE, result, error
                self.by = SPARE
        try:
            if taken and error is None and self._discard is not None:
                self._discard(result)
        finally:
            self._left.set()

    def claim(self, wait: bool | None = None) -> T:
        """The result: the helper's if finished, else the work done now in this thread.

        Does not wait for the helper unless ``wait`` (None: unless the helper is prompt):
        then a ticket the helper is on is waited for rather than run again. An error of the
        helper's run is not raised: the work is done again here, and an error then is raised.
        """
        if wait is None:
            wait = self._helper is not None and not self._helper.idle
        with self._lock:
            state = self._state
            if state == _DONE and self._error is None:
                return self._result  # type: ignore[return-value]
            if state != _RUNNING or not wait:
                self._state = _TAKEN
        if state == _RUNNING and wait:
            with self._helper.raised() if self._helper else nullcontext():
                self._left.wait()
            return self.claim()  # done, or failed: then run here
        result = self._work(CALLER)
        self.by = CALLER
        return result


    def cancel(self) -> None:
        """Nobody will claim this: the helper skips it, or discards what it made."""
        with self._lock:
            state, result = self._state, self._result
            self._state = _TAKEN
        if state == _DONE and self._error is None and self._discard is not None:
            self._discard(result)  # type: ignore[arg-type]


class _Meeting:
    """Where every helper thread stops once (see :meth:`SpareTime.settle`)."""

    def __init__(self, threads: int) -> None:
        self.left = threads
        self.lock = threading.Lock()
        self.reached = threading.Event()  # every helper has got here
        self.release = threading.Event()  # the settler has seen it

    def arrive(self) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            self.reached.set()
        self.release.wait()  # so that no helper takes a second meeting item


class SpareTime:
    """Helper threads running tickets in order, in the cores' spare time (or promptly).

    Use as a context manager; leaving it lets the helpers go (work they have not started is
    left to the claimers: every ticket must be claimed).
    """

    def __init__(self, name: str = "geovision-spare", idle: bool = True,
                 threads: int = 1) -> None:
        """Start the helpers.

        Args:
            name: the threads' name.
            idle: run under ``SCHED_IDLE`` where the system allows it (else: prompt helpers,
                at normal priority, whose tickets claimers wait for).
            threads: helper threads taking tickets from the one queue.
        """
        self._queue: queue.SimpleQueue[Ticket[Any] | _Meeting | None] = queue.SimpleQueue()
        self.idle = idle
        self.threads = max(1, threads)
        self.lowered = threading.Event()  # set once a helper runs at idle priority
        self._tids: list[int] = []
        self._closed = False
        self._workers = [threading.Thread(target=self._serve, name=f"{name}-{k}", daemon=True)
                         for k in range(self.threads)]
        for t in self._workers:
            t.start()

    def _serve(self) -> None:
        self._tids.append(threading.get_native_id())
        if self.idle and _lower_this_thread():
            self.lowered.set()
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, _Meeting):  # settle(): everything before is let go
                item.arrive()
                continue
            item._run_spare()

    def submit(self, work: Callable[[str], T], discard: Callable[[T], None] | None = None,
               ) -> Ticket[T]:
        """Queue ``work`` (see :class:`Ticket`); the helper starts it when it gets to it."""
        ticket: Ticket[T] = Ticket(work, discard, self)
        self._queue.put(ticket)
        return ticket

    def settle(self) -> None:
        """Wait until the helper has let go of every ticket submitted so far.

        Call it once every ticket is claimed: the helpers then only finish (and discard)
        the ones they are on, if any, and skip the rest.
        """
        if not any(t.is_alive() for t in self._workers):
            return
        if self._closed:  # the helpers end after the tickets queued before close()
            with self.raised():
                for t in self._workers:
                    t.join()
            return
        meeting = _Meeting(self.threads)
        for _ in range(self.threads):  # each helper takes one and waits there for the others
            self._queue.put(meeting)
        if not meeting.reached.wait(0.01):
            with self.raised():
                meeting.reached.wait()
        meeting.release.set()

    @contextmanager
    def raised(self) -> Iterator[None]:
        """Run the helper at normal priority for the duration, where the system allows it.

        (A thread without the privilege may not leave ``SCHED_IDLE``: it then stays there.)
        """
        raised = [tid for tid in list(self._tids) if self.lowered.is_set()
                  and _set_policy(tid, os.SCHED_OTHER)]
        try:
            yield
        finally:
            for tid in raised:
                _set_policy(tid, os.SCHED_IDLE)

    def close(self) -> None:
        """Let the helpers end once they have gone through the queue (without waiting)."""
        self._closed = True
        for _ in range(self.threads):
            self._queue.put(None)

    def __enter__(self) -> SpareTime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoSpareTime:
    """The same interface with no helper: every ticket's work is done when it is claimed."""

    def submit(self, work: Callable[[str], T], discard: Callable[[T], None] | None = None,
               ) -> Ticket[T]:
        """A ticket that only the claimer will run."""
        return Ticket(work, discard)

    def settle(self) -> None:
        """Nothing is ever in flight."""

    def close(self) -> None:
        """Nothing to let go."""

    def __enter__(self) -> NoSpareTime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
