"""A durable consumer in ten lines: every statement event, typed, acknowledged in batches,
resumed after restarts. The README's "Consume the stream" shows this file; CI runs it against
the real server (tests/it/clients.rs).

    pip install ./clients/python
    TRIBUTARY_ADDRESS=127.0.0.1:50051 TRIBUTARY_TOKEN=... python clients/python/examples/consume.py
"""

import os

from tributary_client import Client

client = Client(os.environ.get("TRIBUTARY_ADDRESS", "127.0.0.1:50051"), token=os.environ.get("TRIBUTARY_TOKEN"))
with client.consumer("billing", types=["statement.*"]) as events:
    for event in events:
        if event.HasField("statement"):
            print(event.sequence, event.type, event.statement.id, flush=True)
        events.ack(event)
