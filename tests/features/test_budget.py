"""The counted work budget shared by the Python and JavaScript extractors (malseq.features.budget)."""

from __future__ import annotations

import time

import pytest

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features.budget import (
    DEADLINE_CHECK_UNITS,
    MAX_PARSE_UNITS,
    TAIL_SHARE,
    BudgetExhausted,
    WorkBudget,
    head_then_tail,
    parse_cost,
    parse_window,
)


def test_spend_raises_past_the_units_and_stays_exhausted() -> None:
    budget = WorkBudget(10)
    budget.spend(4)
    budget.spend_bytes(200)  # 1 + 200 // 64 = 4 units
    assert (budget.used, budget.left, budget.exhausted) == (8, 2, False)
    with pytest.raises(BudgetExhausted):
        budget.spend(3)
    assert budget.exhausted and budget.left < 0
    with pytest.raises(BudgetExhausted):
        budget.spend()


def test_a_share_spends_from_its_parent_and_is_capped_by_it() -> None:
    parent = WorkBudget(100)
    parent.spend(20)
    share = parent.share(0.5)
    assert share.units == 40 and share.left == 40
    share.spend(30)
    assert parent.used == 50 and share.left == 10
    with pytest.raises(BudgetExhausted):
        share.spend(11)
    assert share.exhausted and not parent.exhausted  # the pass is over, the file goes on
    parent.spend(30)
    big = WorkBudget(1000, parent=parent)
    with pytest.raises(BudgetExhausted):
        big.spend(50)  # the parent has fewer units left than the share's own cap
    assert big.exhausted and parent.exhausted


def test_a_passed_deadline_raises_time_budget_exceeded_not_budget_exhausted() -> None:
    deadline = Deadline(0.0)
    time.sleep(0.01)
    budget = WorkBudget(10 * DEADLINE_CHECK_UNITS, deadline)
    budget.spend(DEADLINE_CHECK_UNITS - 1)  # no check before the first checkpoint
    with pytest.raises(TimeBudgetExceeded):
        budget.spend(1)
    with pytest.raises(TimeBudgetExceeded):
        budget.check_deadline()
    WorkBudget(10).check_deadline()  # no deadline: nothing to check


def _run(items: list[int], units: int) -> tuple[list[int], list[int], bool]:
    """(handled items, on_skip calls, complete) of a head-then-tail pass where item i costs i units."""
    handled: list[int] = []
    skips: list[int] = []

    def handle(item: int, budget: WorkBudget) -> None:
        budget.spend(item)
        handled.append(item)

    complete = head_then_tail(items, WorkBudget(units), handle, lambda item: item, skips.append)
    return handled, skips, complete


def test_head_then_tail_handles_everything_in_order_when_it_fits() -> None:
    items = [1 + i % 7 for i in range(100)]
    handled, skips, complete = _run(items, int(sum(items) / (1 - TAIL_SHARE)) + 1)
    assert handled == items and skips == [] and complete


def test_head_then_tail_cuts_at_the_same_place_every_time_and_keeps_the_tail() -> None:
    items = [1 + i % 7 for i in range(10_000)]
    units = 2000
    first = _run(items, units)
    handled, skips, complete = first
    assert not complete
    assert all(_run(items, units) == first for _ in range(3))  # same input, same cut
    (tail_start,) = skips
    tail = items[tail_start:]
    # The tail is the end of the list, costing about half the reserve; the head used the rest.
    assert handled[-len(tail):] == tail
    assert 0 < sum(tail) <= int(units * TAIL_SHARE) // 2
    head = handled[: len(handled) - len(tail)]
    assert head == items[: len(head)]
    assert sum(head) <= units - int(units * TAIL_SHARE)


def test_parse_window_bounds_a_parse_by_input_size() -> None:
    small = b"x = f(1, 2)\n" * 1000
    assert parse_window(small) is None
    code = b"".join(b"v%d = g(a, b.c, [1, 2])\n" % i for i in range(200_000))
    window = parse_window(code)
    assert window is not None and window == parse_window(code)
    head_end, tail_start = window
    assert 0 < head_end < tail_start < len(code)
    cost = parse_cost(code, 0, head_end) + parse_cost(code, tail_start)
    assert MAX_PARSE_UNITS * 0.9 < cost <= MAX_PARSE_UNITS
    # A long literal without delimiters costs far less per byte than code does.
    literal = b"s = '" + b"QUJD" * 1_000_000 + b"'\n"
    assert parse_window(literal) is None
