"""A CloudEvents consumer that knows nothing of Tributary's types, for tests/it/cloudevents.rs.

Its message classes are generated at start from the CloudEvents Protobuf Format schema alone
(proto/io/cloudevents/v1/cloudevents.proto, passed as --proto) by grpcio-tools, into a temporary
directory: no tributary.v1 stub is imported. It calls /tributary.v1.CloudEventStream/Subscribe
through a plain channel with the request bytes given in hex (--request-hex; the Rust side
encodes the SubscribeRequest), and prints one JSON line per CloudEvent:

    {"id", "source", "spec_version", "type", "attributes": {name: [kind, value]},
     "proto_data": {"type_url", "value_hex"}}

with timestamps as "<seconds>.<nanos, 9 digits>". Ends with `done` after --count events, or with
`error <CODE>` (exit 2) when the server refuses.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def cloudevents_module(proto: str):
    """cloudevents_pb2, generated from `proto` only. The schema is compiled from its own
    directory (`cloudevents.proto`): a module path `io.cloudevents.v1` would collide with
    Python's standard `io` module."""
    out = tempfile.mkdtemp(prefix="cloudevents-py-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    directory, name = os.path.split(os.path.abspath(proto))
    args = ["grpc_tools.protoc", f"-I{directory}", f"-I{well_known}", f"--python_out={out}", name]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto}")
    sys.path.insert(0, out)
    return importlib.import_module(os.path.splitext(name)[0] + "_pb2")


def attribute(value) -> list:
    kind = value.WhichOneof("attr")
    if kind == "ce_timestamp":
        return [kind, f"{value.ce_timestamp.seconds}.{value.ce_timestamp.nanos:09d}"]
    if kind == "ce_bytes":
        return [kind, value.ce_bytes.hex()]
    return [kind, getattr(value, kind)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--proto", required=True)
    parser.add_argument("--request-hex", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--token")
    args = parser.parse_args()

    cloudevents_pb2 = cloudevents_module(args.proto)
    request = bytes.fromhex(args.request_hex)
    channel = grpc.insecure_channel(args.address)
    subscribe = channel.unary_stream(
        "/tributary.v1.CloudEventStream/Subscribe",
        request_serializer=lambda _: request,
        response_deserializer=cloudevents_pb2.CloudEvent.FromString,
    )
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    try:
        stream = subscribe(None, metadata=metadata, timeout=30)
        for handled, event in enumerate(stream, start=1):
            assert event.WhichOneof("data") == "proto_data", event
            line = {
                "id": event.id,
                "source": event.source,
                "spec_version": event.spec_version,
                "type": event.type,
                "attributes": {name: attribute(value) for name, value in event.attributes.items()},
                "proto_data": {
                    "type_url": event.proto_data.type_url,
                    "value_hex": event.proto_data.value.hex(),
                },
            }
            print(json.dumps(line, sort_keys=True), flush=True)
            if handled == args.count:
                break
    except grpc.RpcError as error:
        print("error", error.code().name, flush=True)
        return 2
    stream.cancel()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
