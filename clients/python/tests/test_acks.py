"""The batching of acks, without a server (the end-to-end tests are in tests/it/clients.rs)."""

import threading
import time

from tributary_client.acks import AckBatch, Acker


class Sent:
    def __init__(self, fail_first: int = 0):
        self.sequences = []
        self.fail_first = fail_first
        self.changed = threading.Event()

    def __call__(self, sequence: int) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("server down")
        self.sequences.append(sequence)
        self.changed.set()


def wait_for(condition, within=5.0):
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_acks_go_out_per_batch_of_events_and_on_close():
    sent = Sent()
    acker = Acker(sent, AckBatch(events=3, interval=60))
    for sequence in (1, 2, 3):
        acker.record(sequence)
    wait_for(lambda: sent.sequences == [3])
    acker.record(5)
    acker.record(8)
    time.sleep(0.1)
    assert sent.sequences == [3], "8 waits for its batch"
    acker.close()
    assert sent.sequences == [3, 8]
    assert acker.acked == 8


def test_an_unfilled_batch_goes_out_after_the_interval():
    sent = Sent()
    acker = Acker(sent, AckBatch(events=100, interval=0.2))
    started = time.monotonic()
    acker.record(7)
    wait_for(lambda: sent.sequences == [7])
    assert time.monotonic() - started >= 0.19
    acker.close()
    assert sent.sequences == [7], "nothing new to ack on close"


def test_a_failed_ack_is_retried_and_never_goes_backwards():
    sent = Sent(fail_first=1)
    acker = Acker(sent, AckBatch(events=1, interval=0.05))
    acker.record(4)
    wait_for(lambda: sent.sequences == [4])
    acker.record(2)  # an older sequence handled late: the ack stays at 4
    acker.close()
    assert sent.sequences == [4]
    assert acker.acked == 4
