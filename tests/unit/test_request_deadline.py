"""The request read deadline (webhook/admission/http_guard.py): each request must arrive whole within the timeout
of its first byte; idle keep-alive time is not counted; a kept-alive connection does not make a timer per request.
Driven by a fake clock (tests/integration/test_slow_clients.py has the real server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from webhook.admission.http_guard import RequestDeadline


class _Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class _Clock:
    """time() and call_later() of an event loop, run by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if timer.when <= self.now and not timer.cancelled and timer in self.timers:
                self.timers.remove(timer)
                timer.callback()

    def pending(self) -> int:
        return sum(not t.cancelled for t in self.timers)


def _deadline(clock: _Clock, expired: list[float]) -> RequestDeadline:
    loop = cast(asyncio.AbstractEventLoop, cast(Any, clock))
    return RequestDeadline(loop, 10.0, lambda: expired.append(clock.now))


def test_a_request_that_does_not_arrive_in_time_closes_the_connection() -> None:
    clock, expired = _Clock(), []
    deadline = _deadline(clock, expired)
    deadline.start()
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.2)
    assert expired == [10.1]


def test_prompt_requests_with_idle_time_between_them_are_never_cut() -> None:
    clock, expired = _Clock(), []
    deadline = _deadline(clock, expired)
    for _ in range(5):
        deadline.start()
        clock.advance(0.01)
        deadline.finish()
        clock.advance(30)  # idle keep-alive, longer than the timeout
    assert expired == []


def test_a_later_request_gets_its_own_whole_timeout() -> None:
    clock, expired = _Clock(), []
    deadline = _deadline(clock, expired)
    deadline.start()
    clock.advance(1)
    deadline.finish()
    clock.advance(6)
    deadline.start()  # begins at 7 s; the first request's timer fires at 10 s and must not cut it
    clock.advance(9.5)  # 16.5 s
    assert expired == []
    clock.advance(0.6)  # 17.1 s: 10 s after this request's first byte
    assert expired == [17.1]


def test_many_requests_make_one_timer_not_one_each() -> None:
    clock, _ = _Clock(), []
    deadline = _deadline(clock, [])
    for _ in range(1000):
        deadline.start()
        clock.advance(0.001)
        deadline.finish()
    assert len(clock.timers) == 1


def test_a_closed_connection_leaves_no_timer() -> None:
    clock, expired = _Clock(), []
    deadline = _deadline(clock, expired)
    deadline.start()
    deadline.stop()
    assert clock.pending() == 0
    clock.advance(60)
    assert expired == []
