"""The publisher sink's lanes (no I/O): one partition's records, in order, across generations."""

from __future__ import annotations

from feed_publisher.sink import _Lane


def records(*names: str) -> list[tuple[bytes, bytes]]:
    return [(n.encode(), n.encode()) for n in names]


def test_a_batch_takes_the_head_of_one_generation_only() -> None:
    lane = _Lane("md.quotes", 0)
    lane.queue.extend([(3, records("a", "b")), (3, records("c")), (4, records("d"))])
    assert lane.take() == (3, records("a", "b", "c"))
    assert lane.held() == 4
    assert lane.held(3) == 3
    lane.flight = None
    assert lane.take() == (4, records("d"))


def test_what_did_not_go_out_goes_back_in_front() -> None:
    lane = _Lane("md.quotes", 0)
    lane.queue.extend([(3, records("a", "b", "c")), (4, records("d"))])
    generation, taken = lane.take()
    lane.flight = None
    lane.put_back(generation, taken[2:])  # the batch held two of the three
    lane.put_back(generation, [])  # nothing: nothing put back
    assert list(lane.queue) == [(3, records("c")), (4, records("d"))]
    assert lane.held(3) == 1
