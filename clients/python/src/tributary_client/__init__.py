"""A consumer of Tributary's event stream in a few lines.

    from tributary_client import Client

    client = Client("127.0.0.1:50051", token="team-token")
    with client.consumer("billing", types=["statement.*"]) as events:
        for event in events:
            print(event.sequence, event.type)
            events.ack(event)

- Streams reconnect with backoff and resume after the last event they handed out: no gap and
  no duplicate for the handler, across server restarts.
- Durable consumers batch their acks (after N events or T seconds, and on close).
- Events are the generated ``tributary.v1.Event`` messages; ``payload(event)`` is the typed one.
- ``process_span(event)`` continues the event's trace: the consumer's span is a child of the
  delivery, in the provider's trace.
"""

from tributary.v1.event_pb2 import Event
from tributary.v1.service_pb2 import Filter

from .acks import AckBatch
from .client import Backoff, Client, Consumer, Subscription, payload
from .tracing import context_of, process_span

__all__ = [
    "AckBatch",
    "Backoff",
    "Client",
    "Consumer",
    "Event",
    "Filter",
    "Subscription",
    "context_of",
    "payload",
    "process_span",
]
