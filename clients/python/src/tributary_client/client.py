"""Connecting, and the resuming streams: one Subscribe call at a time, reopened after the last
sequence handed out whenever the server or the network breaks it."""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Optional, Union

import grpc
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tributary.v1 import service_pb2, service_pb2_grpc
from tributary.v1.event_pb2 import Event

from .acks import AckBatch, Acker

log = logging.getLogger("tributary_client")

# Transient trouble worth reopening the stream for; anything else is a refusal.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

Start = Union[str, int, datetime]
"""``"earliest"``, ``"latest"``, a sequence to resume after, or an instant to start from.
(A ``"latest"`` stream that breaks before its first event reopens from the latest again.)"""


@dataclass(frozen=True)
class Backoff:
    """How a stream reconnects: exponential from ``initial`` to ``max`` seconds, jittered."""

    initial: float = 0.1
    max: float = 10.0
    max_retries: Optional[int] = None
    """Retries in a row before the stream raises the last error; None retries forever."""

    def delay(self, attempt: int) -> float:
        full = min(self.max, self.initial * (2 ** min(attempt - 1, 20)))
        return full / 2 + random.uniform(0, full / 2)

    def allows(self, attempt: int) -> bool:
        return self.max_retries is None or attempt <= self.max_retries


def payload(event: Event) -> Optional[Message]:
    """The event's typed payload (``StatementEvent``, ``ConsentEvent``, ...), or None."""
    field = event.WhichOneof("payload")
    return getattr(event, field) if field else None


def _start(request: service_pb2.SubscribeRequest, start: Start) -> None:
    if start == "earliest":
        request.from_earliest = True
    elif start == "latest":
        request.from_latest = True
    elif isinstance(start, datetime):
        request.from_time.FromDatetime(start)
    elif isinstance(start, int) and not isinstance(start, bool):
        request.after_sequence = start
    else:
        raise ValueError(f"start must be 'earliest', 'latest', a sequence or a datetime: {start!r}")


class Client:
    """A connection to a Tributary server (one HTTP/2 channel, shared by its streams).

    ``address`` is ``host:port`` (``http://`` and ``https://`` prefixes are accepted; https
    means TLS). ``ca_file`` trusts that CA for the server's certificate; ``cert_file`` and
    ``key_file`` present a client certificate (mTLS). ``token`` is sent as
    ``authorization: Bearer <token>`` on every call.
    """

    def __init__(
        self,
        address: str,
        *,
        token: Optional[str] = None,
        ca_file: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        backoff: Backoff = Backoff(),
        ack_batch: AckBatch = AckBatch(),
    ):
        tls = address.startswith("https://") or ca_file is not None or cert_file is not None
        target = address.split("://", 1)[-1].rstrip("/")
        # A dead server is noticed on an idle stream too.
        options = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000)]
        if tls:
            read = lambda path: open(path, "rb").read() if path else None  # noqa: E731
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(ca_file),
                private_key=read(key_file),
                certificate_chain=read(cert_file),
            )
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = service_pb2_grpc.EventStreamStub(self._channel)
        token = (token or "").strip()
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()
        self.backoff = backoff
        self.ack_batch = ack_batch

    def _metadata(self) -> tuple:
        """The token, and the caller's trace context (the server links its deliveries to it)."""
        carrier: dict = {}
        TraceContextTextMapPropagator().inject(carrier, otel_context.get_current())
        return self._auth + tuple(carrier.items())

    def subscribe(
        self, *, sources: Iterable[str] = (), types: Iterable[str] = (), start: Start = "earliest"
    ) -> "Subscription":
        """Events matching the filter from ``start`` on, surviving server restarts."""
        request = service_pb2.SubscribeRequest(
            filter=service_pb2.Filter(sources=list(sources), types=list(types))
        )
        _start(request, start)
        return Subscription(self, request)

    def consumer(
        self,
        name: str,
        *,
        sources: Iterable[str] = (),
        types: Iterable[str] = (),
        start: Start = "earliest",
    ) -> "Consumer":
        """The durable consumer ``name``: the server keeps its position. A new one starts at
        ``start``; an existing one resumes after its last ack. Call ``ack(event)`` once an
        event is handled; acks go out in batches and on ``close()``."""
        request = service_pb2.SubscribeRequest(
            consumer=name, filter=service_pb2.Filter(sources=list(sources), types=list(types))
        )
        _start(request, start)
        return Consumer(self, request)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Subscription(Iterator[Event]):
    """Events in sequence order; reconnects and resumes by itself. Raises the
    ``grpc.RpcError`` of a refusal (authentication, scope, retention) or of the last retry."""

    def __init__(self, client: Client, request: service_pb2.SubscribeRequest):
        self._client = client
        self._request = request
        self._call = None
        self._last: Optional[int] = None
        self._closed = False

    @property
    def last_sequence(self) -> Optional[int]:
        """The last sequence handed out (resume after it)."""
        return self._last

    def _open(self):
        request = self._request
        if self._last is not None and not request.consumer:
            request = service_pb2.SubscribeRequest()
            request.CopyFrom(self._request)
            request.after_sequence = self._last
        return self._client._stub.Subscribe(request, metadata=self._client._metadata())

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Event:
        retries = 0
        while not self._closed:
            try:
                if self._call is None:
                    self._call = self._open()
                event = next(self._call)
            except StopIteration:
                code = grpc.StatusCode.UNAVAILABLE  # the server ended the call: reopen
                error = None
            except grpc.RpcError as rpc_error:
                if self._closed:
                    break
                code, error = rpc_error.code(), rpc_error
            else:
                # A durable consumer resumes after its last *ack*: skip what was handed out.
                if self._last is not None and event.sequence <= self._last:
                    continue
                self._last = event.sequence
                return event
            self._call = None
            retries += 1
            if code not in RETRYABLE or not self._client.backoff.allows(retries):
                self._closed = True
                if error is not None:
                    raise error
                break
            delay = self._client.backoff.delay(retries)
            log.warning("event stream broken (%s); reconnecting in %.2fs", code.name, delay)
            time.sleep(delay)
        raise StopIteration

    def close(self) -> None:
        """Stops the stream (the next ``next()`` ends the iteration)."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Consumer(Subscription):
    """A durable consumer's events, with batched acks. Events handled but not acknowledged
    when the process dies are delivered again (at least once); within one ``Consumer`` none
    is handed out twice."""

    def __init__(self, client: Client, request: service_pb2.SubscribeRequest):
        super().__init__(client, request)
        name = request.consumer

        def send(sequence: int) -> None:
            client._stub.Ack(
                service_pb2.AckRequest(consumer=name, sequence=sequence),
                metadata=client._auth,
                timeout=10,
            )

        self._acks = Acker(send, client.ack_batch, name=name)

    def ack(self, event: Event) -> None:
        """Marks ``event``, and every event before it, handled."""
        self._acks.record(event.sequence)

    @property
    def acked(self) -> int:
        """The last sequence the server confirmed."""
        return self._acks.acked

    def close(self) -> None:
        """Stops the stream, sends the last acks and waits for the server to confirm them."""
        super().close()
        self._acks.close()
