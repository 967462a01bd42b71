#!/usr/bin/env python3
"""Writes the Klavi golden-fixture inputs (*.raw.json, *.request.json, *.config.json).

The seed examples are rebuilt in Klavi's real camelCase shape (see README, "Reconstruction of
the seed"). Signatures are hex HMAC-SHA256 of the exact raw bytes written. Expectations
(*.expected.json) are produced by `UPDATE_FIXTURES=1 cargo test` and then checked by hand.

    python3 plugins/klavi/scripts/make_fixtures.py
"""
import copy
import hashlib
import hmac
import json
import pathlib

DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
SECRET = "klavi-fixture-secret"
RECEIVED_AT = 1_704_067_200  # the fixture runner's receive time (2024-01-01T00:00:00Z)

EVENT_ID = "1495468585434-0e73d1719173766fe4dfe1a8"
EVENT_TIME = "2022-06-25T20:08:17.848Z"
LINK_ID = "ed812-81fcec-7ec55-7aa7d29-2a3188b75"
CONSENT_ID = "at932-61fc6c-0ec02-9fa7d29-2b3188b78"
CPF = "25872252137"
CNPJ = "12345678000195"
EXTERNAL_INFO = {"myTraceId": "yourTraceId_1", "myUUID": "yourUUID_1"}
PERMISSIONS_APPLY = [
    "REGISTRATION_ALL",
    "ACCOUNTS_ALL",
    "CREDIT_CARDS_ALL",
    "CREDIT_OPERATIONS_ALL",
    "INVESTMENTS_ALL",
]
PERMISSIONS_GRANTED = ["REGISTRATION_ALL", "ACCOUNTS_ALL"]


def envelope(name, payload, event_id=EVENT_ID):
    return {
        "partnerAppId": "12345678",
        "eventId": event_id,
        "eventType": "api",
        "eventName": name,
        "eventTime": EVENT_TIME,
        "payload": payload,
        "externalInfo": copy.deepcopy(EXTERNAL_INFO),
    }


def base_payload():
    return {"personalTaxId": CPF, "businessTaxId": ""}


def link_created(event_id=EVENT_ID):
    return envelope("link_created", {**base_payload(), "linkId": LINK_ID}, event_id)


def consent(name, granted, event_id=EVENT_ID):
    payload = {
        **base_payload(),
        "linkId": LINK_ID,
        "consents": {
            "consentId": CONSENT_ID,
            "externalTrackId": "222121",
            "institutionCode": "033",
            "permissionsApply": list(PERMISSIONS_APPLY),
            "permissionsGranted": list(granted),
            "expireAt": "2024-06-25T20:08:17.848Z",
        },
    }
    return envelope(name, payload, event_id)


def product_request_received(event_id=EVENT_ID):
    payload = {
        **base_payload(),
        "requestId": "766fe4dfe1a8",
        "requestBody": {
            "taxId": "12345678901",
            "institutionCode": "033",
            "linkId": LINK_ID,
            "consentIds": [CONSENT_ID],
            "products": ["pf_checking_account", "pf_credit_card"],
            "productCallbackURL": {
                "pf_checking_account": "https://www.yourdomain.com/checking/yourpath",
                "pf_credit_card": "https://www.yourdomain.com/creditcard/yourpath",
            },
        },
    }
    return envelope("product_request_received", payload, event_id)


def product_generated(success, event_id=EVENT_ID):
    payload = {**base_payload(), "requestId": "766fe4dfe1a8", "product": "pf_checking_account"}
    if not success:
        payload["failureReason"] = "No checking account"
    name = "product_generated_success" if success else "product_generated_failed"
    return envelope(name, payload, event_id)


def sign(body: bytes, key: str = SECRET) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def write(case, body, headers=None, config=None, signed=True, pretty=True, timestamp=True):
    """Writes one case. `body` is a JSON value or raw bytes. Signed requests carry a fresh
    X-Klavi-Timestamp too (the adapter requires it by default) unless `timestamp` is False."""
    if isinstance(body, bytes):
        raw = body
    elif pretty:
        raw = (json.dumps(body, indent=2) + "\n").encode()
    else:
        raw = json.dumps(body, separators=(",", ":")).encode()
    (DIR / f"{case}.raw.json").write_bytes(raw)
    all_headers = {"Content-Type": "application/json"}
    if signed:
        all_headers["X-Klavi-Signature"] = sign(raw)
        if timestamp:
            all_headers["X-Klavi-Timestamp"] = str(RECEIVED_AT)
    all_headers.update(headers or {})
    spec = {"headers": all_headers}
    (DIR / f"{case}.request.json").write_text(json.dumps(spec, indent=2) + "\n")
    if config is not None:
        (DIR / f"{case}.config.json").write_text(json.dumps(config, indent=2) + "\n")


def with_secret(**extra):
    return {"secret_key": SECRET, **extra}


def main():
    DIR.mkdir(exist_ok=True)
    for old in DIR.glob("*.json"):
        if old.name != "adapter-config.json" and not old.name.endswith(".expected.json"):
            old.unlink()
    (DIR / "adapter-config.json").write_text(json.dumps({"secret_key": SECRET}, indent=2) + "\n")

    # Every seed example, as Klavi sends it: a one-element array.
    write("seed-link-created", [link_created()])
    write("seed-consent-authorised", [consent("consent_authorised", PERMISSIONS_GRANTED)])
    write("seed-consent-error", [consent("consent_error", [])])
    write("seed-consent-rejected", [consent("consent_rejected", [])])
    write("seed-consent-expired", [consent("consent_expired", [])])
    write("seed-consent-revoked", [consent("consent_revoked", PERMISSIONS_GRANTED)])
    write("seed-consent-deleted-by-user", [consent("consent_deleted_by_user", PERMISSIONS_GRANTED)])
    write("seed-product-request-received", [product_request_received()])
    write("seed-product-generated-success", [product_generated(True)])
    write("seed-product-generated-failed", [product_generated(False)])

    # Arrays of several events, in order, each with its own eventId.
    journey = [
        link_created("1495468585434-0e73d1719173766fe4dfe1a1"),
        consent("consent_authorised", PERMISSIONS_GRANTED, "1495468585435-0e73d1719173766fe4dfe1a2"),
        product_request_received("1495468585436-0e73d1719173766fe4dfe1a3"),
        product_generated(True, "1495468585437-0e73d1719173766fe4dfe1a4"),
        product_generated(False, "1495468585438-0e73d1719173766fe4dfe1a5"),
    ]
    write("array-several-events", journey, pretty=False)
    analysis = envelope(
        "analysis_finished", {**base_payload(), "analysisId": "an-1"}, "1495468585440-aa"
    )
    analysis["eventType"] = "analysis"
    new_api_event = envelope("consent_paused", {**base_payload()}, "1495468585441-bb")
    write(
        "array-unknown-events-mixed",
        [journey[0], analysis, journey[1], new_api_event, journey[3]],
    )

    # Spellings.
    spelled = link_created()
    spelled["eventID"] = spelled.pop("eventId")
    write("event-id-capital-d", [spelled])
    spaced = [
        consent("consent authorised", PERMISSIONS_GRANTED, "1495468585450-01"),
        consent("Consent Deleted By User", PERMISSIONS_GRANTED, "1495468585450-02"),
        product_generated(False, "1495468585450-03"),
    ]
    spaced[2]["eventName"] = "product generated failed"
    spaced[2]["eventType"] = "API"
    write("event-name-with-spaces", spaced)
    write("body-lone-object", link_created())
    write("body-empty-array", [])

    # Missing optional fields and extra fields.
    sparse_consent = {
        "eventId": "1495468585460-01",
        "eventName": "consent_error",
        "payload": {"personalTaxId": CPF, "consents": {"consentId": CONSENT_ID}},
    }
    sparse_request = {
        "eventId": "1495468585460-02",
        "eventType": "api",
        "eventName": "product_request_received",
        "payload": {"requestId": "766fe4dfe1a8"},
    }
    sparse_link = {"eventId": "1495468585460-03", "eventName": "link_created"}
    bad_values = link_created("1495468585460-04")
    bad_values["eventTime"] = "not a time"
    bad_values["externalInfo"] = "not an object"
    write("missing-optional-fields", [sparse_consent, sparse_request, sparse_link, bad_values])
    extra = consent("consent_error", [], "1495468585470-01")
    extra["apiVersion"] = "v9"
    extra["payload"]["newField"] = {"nested": [1, 2]}
    extra["payload"]["failureReason"] = "INSTITUTION_UNAVAILABLE"
    extra["payload"]["consents"]["status"] = "ERROR"
    extra["payload"]["consents"]["createdAt"] = "2022-06-25T20:00:00.000Z"
    extra_request = product_request_received("1495468585470-02")
    body = extra_request["payload"]["requestBody"]
    body["productsCallbackURL"] = body.pop("productCallbackURL")
    body["productsCallbackURL"]["all"] = "https://www.yourdomain.com/all"
    body["externalInfo"] = {"x": 1}
    write("extra-unknown-fields", [extra, extra_request])
    one = consent("consent_revoked", PERMISSIONS_GRANTED, "1495468585480-01")
    one["payload"]["consents"] = [one["payload"]["consents"]]
    two = consent("consent_expired", [], "1495468585480-02")
    two["payload"]["consents"] = [two["payload"]["consents"], two["payload"]["consents"]]
    write("consents-as-array", [one, two])
    business = link_created("1495468585490-01")
    business["payload"] = {
        "personalTaxId": "258.722.521-37",
        "businessTaxId": "12.345.678/0001-95",
        "linkId": LINK_ID,
    }
    business_request = product_request_received("1495468585490-02")
    business_request["payload"]["personalTaxId"] = ""
    business_request["payload"]["businessTaxId"] = CNPJ
    business_request["payload"]["requestBody"]["taxId"] = CNPJ
    write("tax-ids-formatted-and-business", [business, business_request])
    # externalInfo nested 40 levels: the SDK keeps 16 levels as a Struct, the rest as JSON text
    # (a deeper Struct would make the result undecodable for the host).
    deep = link_created("1495468585495-01")
    nested = "bottom"
    for level in range(40, 0, -1):
        nested = {f"l{level}": nested}
    deep["externalInfo"] = nested
    write("external-info-nested-40-levels", [deep], pretty=False)

    # Malformed bodies: refused whole, nothing stored.
    write("malformed-not-json", b'[{"eventId": "1", "eventName": "link_created"')
    write("malformed-body-is-a-string", b'"link_created"')
    write("malformed-body-is-null", b"null")

    # Elements that are not Klavi events: each one dead-lettered (keyed by the host on its
    # content), its siblings stored.
    write("element-not-object-dead-lettered", [link_created(), 42])
    no_id = link_created()
    del no_id["eventId"]
    write("element-without-event-id-dead-lettered", [no_id])
    empty_id = link_created()
    empty_id["eventId"] = ""
    write("element-with-empty-event-id-dead-lettered", [link_created("ok-1"), empty_id])
    no_name = link_created()
    del no_name["eventName"]
    write("element-without-event-name-dead-lettered", [no_name])
    # Good and bad elements interleaved: the order is kept within events and within dead
    # letters. The element without an eventName shares its eventId with a stored sibling.
    consent_no_id = consent("consent_authorised", PERMISSIONS_GRANTED)
    del consent_no_id["eventId"]
    revoked_no_name = consent("consent_revoked", PERMISSIONS_GRANTED, "1495468585500-01")
    del revoked_no_name["eventName"]
    write(
        "array-partially-bad",
        [
            link_created("1495468585500-01"),
            consent_no_id,
            consent("consent_revoked", PERMISSIONS_GRANTED, "1495468585500-03"),
            "consent_expired",
            revoked_no_name,
            product_generated(True, "1495468585500-06"),
        ],
    )

    # Personal-data policies, on events carrying a CPF, a CNPJ and a requested tax id.
    pii = [
        business,
        business_request,
        product_request_received("1495468585490-03"),
    ]
    write("pii-default-hash", pii)
    write("pii-hash-explicit-key", pii, config=with_secret(personal_data={"hash_key": "partner-lgpd-key"}))
    write("pii-mask", pii, config=with_secret(personal_data={"default": "mask", "mask_keep_last": 3}))
    write("pii-keep", pii, config=with_secret(personal_data={"default": "keep"}))
    write(
        "pii-per-field-mix",
        pii,
        config=with_secret(
            personal_data={
                "default": "keep",
                "hash_key": "partner-lgpd-key",
                "fields": {"personal_tax_id": "hash", "business_tax_id": "mask"},
            }
        ),
    )

    # Verification.
    seed = [link_created()]
    raw = (json.dumps(seed, indent=2) + "\n").encode()
    write("signature-wrong", seed, headers={"X-Klavi-Signature": sign(raw, "another-secret")})
    write("signature-missing", seed, signed=False)
    write("signature-not-hex", seed, headers={"X-Klavi-Signature": "sha256=zz"})
    write("signature-uppercase-with-prefix", seed, headers={"X-Klavi-Signature": "sha256=" + sign(raw).upper()})
    write("signature-over-other-bytes", seed, headers={"X-Klavi-Signature": sign(raw.rstrip(b"\n"))})
    write("timestamp-fresh", seed, headers={"X-Klavi-Timestamp": str(RECEIVED_AT - 100)})
    write("timestamp-stale", seed, headers={"X-Klavi-Timestamp": str(RECEIVED_AT - 301)})
    write("timestamp-in-future", seed, headers={"X-Klavi-Timestamp": str(RECEIVED_AT + 301)})
    write("timestamp-at-window-edge", seed, headers={"X-Klavi-Timestamp": str(RECEIVED_AT - 300)})
    write("timestamp-not-a-number", seed, headers={"X-Klavi-Timestamp": "2024-01-01T00:00:00Z"})
    write(
        "timestamp-custom-window-stale",
        seed,
        headers={"X-Klavi-Timestamp": str(RECEIVED_AT - 100)},
        config=with_secret(max_age_seconds=60),
    )
    write(
        "custom-header-names",
        seed,
        headers={"X-Signature": sign(raw), "X-Sent-At": str(RECEIVED_AT)},
        config=with_secret(signature_header="X-Signature", timestamp_header="X-Sent-At"),
        signed=False,
    )
    write("timestamp-missing", seed, timestamp=False)
    write(
        "timestamp-missing-not-required",
        seed,
        config=with_secret(require_timestamp=False),
        timestamp=False,
    )
    write("no-secret-configured", seed, config={})
    write("verification-disabled", seed, config={"verification": {"disabled": True}}, signed=False)


if __name__ == "__main__":
    main()
