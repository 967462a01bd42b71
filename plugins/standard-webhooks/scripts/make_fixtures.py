#!/usr/bin/env python3
"""Writes the Standard Webhooks golden-fixture inputs (*.raw.json, *.request.json, *.config.json).

`v1` signatures are base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" keyed by the
base64-decoded bytes after `whsec_`, over the exact raw bytes written. The two `spec-vector-*`
cases are the specification's published vectors (its libraries' tests), byte for byte, with the
published signatures. Expectations (*.expected.json) are produced by
`UPDATE_FIXTURES=1 cargo test -p tributary-adapter-standard-webhooks` and then checked by hand.

    python3 plugins/standard-webhooks/scripts/make_fixtures.py
"""
import base64
import hashlib
import hmac
import json
import pathlib

DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
RECEIVED_AT = 1_704_067_200  # the fixture runner's receive time (2024-01-01T00:00:00Z)

# The published vector: secret, message id, timestamp, body and signatures.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1_614_265_330
SPEC_BODY = '{"test": 2432232314}'
SPEC_V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# The public key of the published Ed25519 signing key (seed
# VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=) and its published signature.
SPEC_WHPK = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g="
SPEC_V1A = (
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)
# The spec vector was signed in 2021: its cases accept that timestamp.
SPEC_CONFIG = {"tolerance_seconds": RECEIVED_AT - SPEC_TIMESTAMP + 60}

SECRET = SPEC_SECRET
NEW_SECRET = "whsec_" + base64.b64encode(b"the-new-secret-after-rotation-32").decode()


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body.encode()
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers(msg_id, timestamp, signature):
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def write(name, body, request, config=None):
    (DIR / f"{name}.raw.json").write_text(body)
    (DIR / f"{name}.request.json").write_text(json.dumps({"headers": request}, indent=2) + "\n")
    if config is not None:
        (DIR / f"{name}.config.json").write_text(json.dumps(config, indent=2) + "\n")


def signed(name, body, msg_id, config=None, timestamp=RECEIVED_AT, secret=SECRET):
    write(name, body, headers(msg_id, timestamp, sign(secret, msg_id, timestamp, body)), config)


def main():
    DIR.mkdir(exist_ok=True)
    (DIR / "adapter-config.json").write_text(json.dumps({"verification": {"secrets": [SECRET]}}, indent=2) + "\n")

    # The specification's vectors: authentic, but `{"test": ...}` is no event (dead letter).
    write("spec-vector-v1", SPEC_BODY, headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_V1),
          {"verification": {"secrets": [SPEC_SECRET]}, **SPEC_CONFIG})
    write("spec-vector-v1a", SPEC_BODY, headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_V1A),
          {"verification": {"secrets": [SPEC_WHPK]}, **SPEC_CONFIG})
    write("spec-vector-multi-signature", SPEC_BODY, headers(
        SPEC_ID, SPEC_TIMESTAMP,
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        f"{SPEC_V1} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
        {"verification": {"secrets": [SPEC_SECRET]}, **SPEC_CONFIG})

    # The specification's example payloads (full and thin).
    signed("contact-created-full",
           '{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":'
           '{"id":"1f81eb52-5198-4599-803e-771906343485","type":"contact.created",'
           '"fullName":"John Smith","address":"800 W NASA Pkwy, Webster, TX 77598, USA",'
           '"phoneNumber":"(281) 332-2575","birthday":"1980-04-19","occupation":"Engineer, ACME"}}',
           "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    signed("contact-created-thin",
           '{\n  "type": "contact.created",\n  "timestamp": "2022-11-03T20:26:10.344522Z",\n'
           '  "data": {\n    "id": "1f81eb52-5198-4599-803e-771906343485"\n  }\n}\n',
           "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X")
    # Exact data: numbers no double holds, kept as written (text, not float).
    signed("invoice-paid-exact-numbers",
           '{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00.123456789+01:00",'
           '"data":{"id":98765432109876543210,"amount":12345678901234567.89,'
           '"fee":0.000000000001,"count":18446744073709551617,"tiny":1e-400,'
           '"nested":{"ids":[9007199254740993,-9007199254740993]},"note":"caf\\u00e9 \u00e9"}}',
           "msg_exact_numbers")
    # No timestamp in the payload: the event's time falls to the host's receive time.
    signed("no-payload-timestamp", '{"type":"ping.sent","data":null}', "msg_no_timestamp")
    # Type mapping: a table entry, and the prefix for the rest.
    mapping = {"verification": {"secrets": [SECRET]}, "type_prefix": "acme.",
               "types": {"invoice.paid": "payment.received"}}
    signed("type-mapped", '{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00Z",'
           '"data":{"id":"inv_1"}}', "msg_mapped", mapping)
    signed("type-prefixed", '{"type":"invoice.created","timestamp":"2024-01-01T00:00:00Z",'
           '"data":{"id":"inv_2"}}', "msg_prefixed", mapping)
    # Rotation: signed by the old and the new secret; a source listing both, or only the new.
    body = '{"type":"user.updated","timestamp":"2023-12-31T23:59:00Z","data":{"id":"u_1"}}'
    both = (sign(SECRET, "msg_rotation", RECEIVED_AT, body) + " "
            + sign(NEW_SECRET, "msg_rotation", RECEIVED_AT, body))
    write("rotation-both-signatures", body, headers("msg_rotation", RECEIVED_AT, both),
          {"verification": {"secrets": [NEW_SECRET, SECRET]}})
    write("rotation-new-secret-only", body, headers("msg_rotation", RECEIVED_AT, both),
          {"verification": {"secrets": [NEW_SECRET]}})
    # Authentic but not an event: dead letters with the reason.
    signed("dead-letter-missing-type", '{"timestamp":"2024-01-01T00:00:00Z","data":{}}',
           "msg_no_type")
    signed("dead-letter-bad-timestamp", '{"type":"a.b","timestamp":"yesterday","data":{}}',
           "msg_bad_timestamp")
    signed("dead-letter-missing-data", '{"type":"a.b","timestamp":"2024-01-01T00:00:00Z"}',
           "msg_no_data")
    # Authentic but not a Standard Webhooks payload: malformed (400).
    signed("malformed-array-body", '[{"type":"a.b","data":{}}]', "msg_array")
    signed("malformed-not-json", 'type=a.b&data=x', "msg_form")
    # Not authentic (401).
    good = '{"type":"a.b","timestamp":"2024-01-01T00:00:00Z","data":{}}'
    signed("reject-wrong-secret", good, "msg_wrong", secret=NEW_SECRET)
    signed("reject-stale-timestamp", good, "msg_stale", timestamp=RECEIVED_AT - 301)
    signed("reject-future-timestamp", good, "msg_future", timestamp=RECEIVED_AT + 301)
    right = sign(SECRET, "msg_version", RECEIVED_AT, good)
    write("reject-unknown-version", good,
          headers("msg_version", RECEIVED_AT, right.replace("v1,", "v2,", 1)))
    write("reject-malformed-base64", good,
          headers("msg_base64", RECEIVED_AT, "v1,not*base64*at*all"))
    write("reject-missing-signature", good,
          {k: v for k, v in headers("msg_nosig", RECEIVED_AT, right).items()
           if k != "webhook-signature"})
    write("reject-no-secret-configured", good, headers("msg_nosecret", RECEIVED_AT,
          sign(SECRET, "msg_nosecret", RECEIVED_AT, good)), {})


if __name__ == "__main__":
    main()
