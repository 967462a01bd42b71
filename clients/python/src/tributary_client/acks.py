"""Batched acknowledgements of a durable consumer: one Ack call per batch, never one per event.

The consumer records "handled up to sequence S"; a background thread sends ``Ack(S)`` when N
events were handled since the last ack, when the oldest unacknowledged one is T seconds old,
and once more on close. What is not acknowledged is delivered again after a restart.
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger("tributary_client")


@dataclass(frozen=True)
class AckBatch:
    """When a durable consumer sends its acks."""

    events: int = 100
    """Send an ack once this many events were handled since the last one."""
    interval: float = 1.0
    """Send an ack once the oldest unacknowledged handled event is this many seconds old."""


class Acker:
    """Records handled sequences and sends them, batched, with ``send(sequence)``."""

    def __init__(self, send: Callable[[int], None], batch: AckBatch, name: str = "acks"):
        self._send = send
        self._batch = batch
        self._cond = threading.Condition()
        self._handled = 0
        self._count = 0
        self._acked = 0
        self._acked_count = 0
        self._due: Optional[float] = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"tributary-{name}", daemon=True)
        self._thread.start()

    def record(self, sequence: int) -> None:
        """Every event up to ``sequence`` is handled (cumulative, never backwards)."""
        with self._cond:
            self._handled = max(self._handled, sequence)
            self._count += 1
            if self._due is None:
                self._due = time.monotonic() + self._batch.interval
            self._cond.notify()

    @property
    def acked(self) -> int:
        """The last sequence the server confirmed."""
        with self._cond:
            return self._acked

    def close(self, timeout: float = 10.0) -> None:
        """Sends what is left and waits (at most ``timeout`` seconds) for the server."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _ready(self) -> bool:
        if self._handled <= self._acked:
            return False
        full = self._count - self._acked_count >= self._batch.events
        late = self._due is not None and time.monotonic() >= self._due
        return full or late

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._closing or self._ready()):
                    wait = None if self._due is None else max(0.0, self._due - time.monotonic())
                    self._cond.wait(wait)
                target, count, closing = self._handled, self._count, self._closing
            if target > self._acked:
                try:
                    self._send(target)
                except Exception as error:  # noqa: BLE001 - kept for the next try
                    log.warning("ack of %d failed (%s); retrying", target, getattr(error, "code", lambda: error)())
                    with self._cond:
                        self._due = time.monotonic() + self._batch.interval
                    if closing:
                        return
                    continue
                with self._cond:
                    self._acked, self._acked_count = target, count
                    self._due = None if self._handled <= target else time.monotonic() + self._batch.interval
            if closing:
                return
