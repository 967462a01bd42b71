"""A Python consumer that exports its own spans: each event's handling span is a child of its
delivery, so one trace shows the provider's POST through to this handler (documentation code;
the client's tracing is tested in tests/it/clients/).

    pip install ./clients/python opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=my-consumer \\
        python examples/consumers/python_trace.py 127.0.0.1:50051
"""

import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from tributary_client import Client, process_span

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

client = Client(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
for event in client.subscribe(start="latest"):
    with process_span(event) as span:
        # ... handle the event here ...
        print(event.sequence, format(span.get_span_context().trace_id, "032x"))
