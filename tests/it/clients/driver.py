"""Drives the Python client for tests/it/clients/python.rs: consumes from a real server and
prints one line per handled event, `event <sequence> <type> <trace id>`, flushed at once, so
the Rust test can restart the server mid-stream and compare what the handler saw.

Ends with `done` after --count events (a consumer closes first: its last acks are sent), or
with `error <CODE>` (exit 2) when the server refuses.
"""

import argparse
import sys

import grpc
from tributary_client import AckBatch, Backoff, Client, payload, process_span


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--token")
    parser.add_argument("--consumer")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ack-events", type=int, default=100)
    parser.add_argument("--trace-endpoint", help="OTLP/gRPC endpoint: trace each handling")
    parser.add_argument("--reflection", action="store_true", help="list services first")
    args = parser.parse_args()

    tracer = None
    if args.trace_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "billing-py"}))
        exporter = OTLPSpanExporter(endpoint=args.trace_endpoint, insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("billing")

    if args.reflection:
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )

        channel = grpc.insecure_channel(args.address.split("://", 1)[-1])
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        print("services", " ".join(sorted(services)), flush=True)

    client = Client(
        args.address,
        token=args.token,
        backoff=Backoff(initial=0.05, max=0.5),
        ack_batch=AckBatch(events=args.ack_events, interval=60),
    )
    if args.consumer:
        events = client.consumer(args.consumer)
    else:
        events = client.subscribe()
    try:
        handled = 0
        for event in events:
            trace_id = "-"
            if tracer is not None:
                with process_span(event, tracer) as span:
                    trace_id = format(span.get_span_context().trace_id, "032x")
            assert payload(event) is not None, "a typed payload"
            print("event", event.sequence, event.type, trace_id, flush=True)
            if args.consumer:
                events.ack(event)
            handled += 1
            if handled == args.count:
                break
    except grpc.RpcError as error:
        print("error", error.code().name, flush=True)
        return 2
    events.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
