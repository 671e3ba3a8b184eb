"""GCM nonces are drawn from the OS a batch at a time (``infrastructure.sealing``): a
repeated nonce under one key would break AES-GCM, so none may repeat, within a batch,
across batches, or between a process and its forked child."""

import os

from infrastructure.sealing import Nonces


def test_nonces_never_repeat_across_many_batches() -> None:
    nonces = Nonces()
    taken = [nonces.take() for _ in range(5 * 1024 + 7)]  # five batches and some
    assert {len(n) for n in taken} == {12}
    assert len(set(taken)) == len(taken)


def test_a_forked_child_takes_none_of_the_nonces_its_parent_has_left() -> None:
    nonces = Nonces()
    nonces.take()  # the parent holds the rest of a batch
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its next nonces, then leave at once
        os.close(read_end)
        os.write(write_end, b"".join(nonces.take() for _ in range(8)))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        childs = pipe.read()
    os.waitpid(child, 0)
    parents = b"".join(nonces.take() for _ in range(8))
    assert len(childs) == len(parents) == 8 * 12
    assert {childs[i : i + 12] for i in range(0, 96, 12)}.isdisjoint(
        parents[i : i + 12] for i in range(0, 96, 12)
    )
