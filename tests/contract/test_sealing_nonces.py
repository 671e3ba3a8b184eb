"""GCM nonces are drawn from the OS a batch at a time (``infrastructure.nonces``): a
repeated nonce under one key would break AES-GCM, so none may repeat, within a batch,
across batches, or between a process and its forked child."""

from infrastructure.nonces import Nonces
from tests.contract.forking import report_from_forked_child


def test_nonces_never_repeat_across_many_batches() -> None:
    nonces = Nonces()
    taken = [nonces.take() for _ in range(5 * 1024 + 7)]  # five batches and some
    assert {len(n) for n in taken} == {12}
    assert len(set(taken)) == len(taken)


def test_a_forked_child_takes_none_of_the_nonces_its_parent_has_left() -> None:
    nonces = Nonces()
    nonces.take()  # the parent holds the rest of a batch
    childs = report_from_forked_child(lambda: b"".join(nonces.take() for _ in range(8)))
    parents = b"".join(nonces.take() for _ in range(8))
    assert len(childs) == len(parents) == 8 * 12
    assert {childs[i : i + 12] for i in range(0, 96, 12)}.isdisjoint(
        parents[i : i + 12] for i in range(0, 96, 12)
    )
