"""Spare-time work: done ahead by an idle-priority helper, or by the claimer, never waited for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from geovision.inference import heap
from geovision.inference.spare import (
    CALLER,
    SPARE,
    NoSpareTime,
    SpareTime,
    idle_priority_available,
)


class Work:
    """Counts who ran it; the helper's run can be held at its start."""

    def __init__(self, hold: bool = False) -> None:
        self.runs: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.discarded: list[str] = []
        if not hold:
            self.release.set()

    def __call__(self, who: str) -> str:
        self.runs.append(who)
        if who == SPARE:
            self.started.set()
            self.release.wait(5)
            self.finished.set()
        return f"made by {who}"

    def discard(self, result: str) -> None:
        self.discarded.append(result)


def test_a_finished_ticket_gives_the_helpers_result_without_running_again():
    work = Work()
    with SpareTime() as spare:
        ticket = spare.submit(work, work.discard)
        assert work.finished.wait(5)
        assert ticket.claim() == "made by spare"
    assert work.runs == [SPARE] and ticket.by == SPARE and work.discarded == []


def test_a_ticket_the_helper_has_not_started_is_run_by_the_claimer_alone():
    blocker = Work(hold=True)
    work = Work()
    with SpareTime() as spare:
        spare.submit(blocker)
        assert blocker.started.wait(5)  # the helper is busy: the next ticket waits in line
        ticket = spare.submit(work, work.discard)
        assert ticket.claim() == "made by caller" and ticket.by == CALLER
        blocker.release.set()
        assert blocker.finished.wait(5)
    spare._workers[0].join(5)
    assert work.runs == [CALLER]  # the helper skipped it


def test_a_ticket_the_helper_is_on_is_run_again_by_the_claimer_who_never_waits():
    work = Work(hold=True)
    with SpareTime() as spare:
        ticket = spare.submit(work, work.discard)
        assert work.started.wait(5)
        assert ticket.claim() == "made by caller"  # at once, the helper still held
        work.release.set()
    spare._workers[0].join(5)
    assert work.runs == [SPARE, CALLER]
    assert work.discarded == ["made by spare"]  # the helper's copy is thrown away


def test_a_claimer_that_may_wait_takes_the_helpers_result_of_the_ticket_it_is_on():
    work = Work(hold=True)
    with SpareTime() as spare:
        ticket = spare.submit(work, work.discard)
        assert work.started.wait(5)
        threading.Timer(0.05, work.release.set).start()
        assert ticket.claim(wait=True) == "made by spare" and ticket.by == SPARE
    assert work.runs == [SPARE] and work.discarded == []


def test_settle_returns_once_the_helper_has_let_go_of_everything():
    on, queued = Work(hold=True), Work()
    with SpareTime() as spare:
        running = spare.submit(on, on.discard)
        assert on.started.wait(5)
        later = spare.submit(queued, queued.discard)
        assert running.claim() == "made by caller"  # the helper's run goes on meanwhile
        assert later.claim() == "made by caller"
        threading.Timer(0.05, on.release.set).start()
        spare.settle()
        # the helper's copy is discarded before settle returns; the other was never run
        assert on.discarded == ["made by spare"] and queued.runs == [CALLER]
    spare.settle()  # after close: waits for the helper to end
    assert not spare._workers[0].is_alive()
    NoSpareTime().settle()


def test_a_failure_in_spare_time_is_retried_by_the_claimer():
    calls: list[str] = []

    def flaky(who: str) -> int:
        calls.append(who)
        if who == SPARE:
            raise OSError("transient")
        return 7

    with SpareTime() as spare:
        ticket = spare.submit(flaky)
        spare.close()
        spare._workers[0].join(5)
        assert ticket.claim() == 7
    assert calls == [SPARE, CALLER]

    def broken(who: str) -> int:
        raise ValueError(f"bad input ({who})")

    with pytest.raises(ValueError, match=r"bad input \(caller\)"):
        NoSpareTime().submit(broken).claim()


def test_cancelled_tickets_are_skipped_or_their_results_discarded():
    blocker, skipped, done = Work(hold=True), Work(), Work()
    with SpareTime() as spare:
        finished = spare.submit(done, done.discard)
        assert done.finished.wait(5)
        spare.submit(blocker)
        assert blocker.started.wait(5)
        pending = spare.submit(skipped, skipped.discard)
        pending.cancel()
        finished.cancel()
        blocker.release.set()
    spare._workers[0].join(5)
    assert skipped.runs == [] and done.discarded == ["made by spare"]


def test_prompt_helpers_share_the_queue_and_claimers_wait_for_them():
    # CUDA's encoders: several threads at normal priority; a claimer waits for the one a
    # helper is on instead of doing it again
    first, second = Work(hold=True), Work(hold=True)
    with SpareTime(idle=False, threads=2) as spare:
        a = spare.submit(first, first.discard)
        b = spare.submit(second, second.discard)
        assert first.started.wait(5) and second.started.wait(5)  # both at once
        threading.Timer(0.05, first.release.set).start()
        assert a.claim() == "made by spare"  # waited for, not run again
        second.release.set()
        assert b.claim() == "made by spare"
        assert not spare.lowered.is_set()
        names = {t.name for t in spare._workers}
    assert first.runs == second.runs == [SPARE] and first.discarded == second.discarded == []
    assert names == {"geovision-spare-0", "geovision-spare-1"}
    with SpareTime(threads=1) as idle:  # an idle helper's ticket is still run again
        held = Work(hold=True)
        ticket = idle.submit(held, held.discard)
        assert held.started.wait(5)
        assert ticket.claim() == "made by caller"
        held.release.set()
        idle.settle()
    assert held.discarded == ["made by spare"]


def test_settle_waits_for_every_helper_thread():
    works = [Work(hold=True) for _ in range(3)]
    with SpareTime(idle=False, threads=3) as spare:
        tickets = [spare.submit(w, w.discard) for w in works]
        for w in works:
            assert w.started.wait(5)
        for t in tickets:  # taken back by the claimer while the helpers are still on them
            assert t.claim(wait=False) == "made by caller"
        for k, w in enumerate(works):
            threading.Timer(0.02 * (k + 1), w.release.set).start()
        spare.settle()
        # every helper has let go (and discarded its copy) before settle returns
        assert [w.discarded for w in works] == [["made by spare"]] * 3
        after = Work()
        ticket = spare.submit(after)
        assert after.finished.wait(5)  # the helpers serve on
        assert ticket.claim() == "made by spare"
    spare.settle()
    assert not any(t.is_alive() for t in spare._workers)


@pytest.mark.skipif(not idle_priority_available(), reason="SCHED_IDLE is Linux's")
def test_the_helper_runs_at_idle_priority_and_the_caller_does_not():
    seen: dict[str, int] = {}

    def policy(who: str) -> int:
        seen[who] = os.sched_getscheduler(0)
        return seen[who]

    with SpareTime() as spare:
        ticket = spare.submit(policy)
        spare.close()
        spare._workers[0].join(5)
        ticket.claim()
        spare.submit(policy).claim()  # after close: only a claimer runs it
    assert spare.lowered.is_set()
    assert seen == {SPARE: os.SCHED_IDLE, CALLER: os.sched_getscheduler(0)}
    assert seen[CALLER] != os.SCHED_IDLE


FAULTS = """
import json, resource
import numpy as np
from geovision.inference import heap

size = 40 * 2**20  # above glibc's largest mmap threshold (32 MiB)


def faults(n=size):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(n, np.uint8)
    a.fill(1)  # touch every page
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


faults()
plain = faults()  # mmap'd and unmapped each time: every page faults again
with heap.steady_heap() as on:
    faults()
    steady = max(faults() for _ in range(3))  # the pages of the last one, kept by the heap
    held = resident()
heap.returned()
given_back = held - resident()
# larger than any chunk the heap kept: mmap'd and unmapped each time again, as by default
after = [faults(2 * size) for _ in range(2)][-1]
print(json.dumps({"on": on, "plain": plain, "steady": steady, "after": after,
                  "given_back": given_back, "pages": size // 2**21}))
"""


@pytest.mark.skipif(not heap.available(), reason="the allocator settings are glibc's")
def test_a_steady_heap_reuses_freed_pages_instead_of_faulting_them_in_again():
    # a fresh process: a long-lived one may hold freed heap memory that serves it anyway
    run = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True,
                         check=True)
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["on"]
    assert got["plain"] >= got["pages"]  # (at least one fault per 2 MiB huge page)
    assert got["steady"] < got["plain"] // 10
    assert got["given_back"] >= 30 * 2**20  # the kept pages are returned
    assert got["after"] >= 2 * got["pages"]  # the defaults are back (one fault per huge page)
