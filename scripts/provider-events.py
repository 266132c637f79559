#!/usr/bin/env python3
"""Writes one API Gateway HTTP API (payload v2) sample per provider into events/providers/,
signed the way that provider signs, with the example secrets of shared/src/verify/README.md.

    python3 scripts/provider-events.py           # regenerate (timestamps = now)

Samples of schemes with a timestamp window (Stripe, Slack, Bettermode, Zoom, Linear, SendGrid,
Standard Webhooks) are only accepted within 5 minutes (Linear: 1 minute) of generation:
regenerate them right before `cargo lambda invoke receiver --data-file events/providers/…`.
Older, they are answered 401 `timestamp_out_of_range`, which still shows their signature is
genuine (the signature is checked before the window). `sources.json` holds the `POST /v1/sources`
bodies that create the matching sources; `expected.json` what each sample should produce.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.parse

HOST = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
PUBLIC_URL = f"https://{HOST}"
OUT = os.path.join(os.path.dirname(__file__), "..", "events", "providers")

# The private half of the sendgrid example key (the RFC 6979 P-256 test key).
SENDGRID_KEY_HEX = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"


def hmac_digest(secret: bytes, message: bytes, algorithm=hashlib.sha256) -> bytes:
    return hmac.new(secret, message, algorithm).digest()


def hex_sig(secret: str, message: bytes, algorithm=hashlib.sha256) -> str:
    return hmac_digest(secret.encode(), message, algorithm).hex()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sendgrid_signature(message: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(int(SENDGRID_KEY_HEX, 16), ec.SECP256R1())
    return b64(key.sign(message, ec.ECDSA(hashes.SHA256())))


def api_event(source, method, headers, body="", query=""):
    now = time.time()
    headers = {k.lower(): v for k, v in headers.items()}
    headers.setdefault("host", HOST)
    headers.setdefault("x-forwarded-proto", "https")
    headers.setdefault("x-forwarded-port", "443")
    headers.setdefault("x-forwarded-for", "203.0.113.7")
    if body:
        headers["content-length"] = str(len(body.encode()))
    path = f"/webhooks/{source}"
    return {
        "version": "2.0",
        "routeKey": f"{method} /webhooks/{{source}}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        **({"queryStringParameters": dict(urllib.parse.parse_qsl(query))} if query else {}),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": HOST.split(".")[0],
            "domainName": HOST,
            "domainPrefix": HOST.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": headers.get("user-agent", "provider"),
            },
            "requestId": "sample-" + source,
            "routeKey": f"{method} /webhooks/{{source}}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": {"source": source},
        "body": body,
        "isBase64Encoded": False,
    }


def samples():
    ts = int(time.time())
    ms = int(time.time() * 1000)
    out = []

    def add(name, source, config, event, expect, windowed=False):
        out.append((name, source, config, event, {**expect, "windowed": windowed}))

    body = json.dumps({"action": "opened", "issue": {"number": 1347, "title": "Found a bug"}})
    add("github", "github", {"scheme": "github", "secret": "gh-webhook-secret"},
        api_event("github", "POST", {
            "content-type": "application/json", "user-agent": "GitHub-Hookshot/7e4a5b1",
            "x-github-event": "issues", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "x-hub-signature-256": "sha256=" + hex_sig("gh-webhook-secret", body.encode())}, body),
        {"status": 200, "event_type": "issues.opened"})

    body = json.dumps({"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event",
                       "type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_3NG8", "amount": 2000}}})
    secret = "whsec_stripe-endpoint-secret"
    add("stripe", "stripe", {"scheme": "stripe", "secret": secret},
        api_event("stripe", "POST", {
            "content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0",
            "stripe-signature": f"t={ts},v1=" + hex_sig(secret, f"{ts}.{body}".encode())}, body),
        {"status": 200, "event_type": "payment_intent.succeeded"}, windowed=True)

    slack_secret = "slack-signing-secret"

    def slack(name, body, expect):
        add(name, "slack", {"scheme": "slack", "secret": slack_secret},
            api_event("slack", "POST", {
                "content-type": "application/json", "user-agent": "Slackbot 1.0",
                "x-slack-request-timestamp": str(ts),
                "x-slack-signature": "v0=" + hex_sig(slack_secret, f"v0:{ts}:{body}".encode())},
                body), expect, windowed=True)

    slack("slack", json.dumps({"type": "event_callback", "event_id": "Ev08MFMKH6",
                               "event": {"type": "app_mention", "text": "<@U0LAN0Z89> hi"}}),
          {"status": 200, "event_type": "app_mention"})
    slack("slack-url-verification", json.dumps({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "url_verification",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}),
        {"status": 200, "handshake": True})

    body = json.dumps({"id": 820982911946154508, "email": "jon@example.com", "total_price": "10.00"})
    add("shopify", "shopify", {"scheme": "shopify", "secret": "shopify-client-secret"},
        api_event("shopify", "POST", {
            "content-type": "application/json", "x-shopify-topic": "orders/create",
            "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "x-shopify-shop-domain": "example.myshopify.com",
            "x-shopify-hmac-sha256": b64(hmac_digest(b"shopify-client-secret", body.encode()))},
            body),
        {"status": 200, "event_type": "orders/create"})

    bm_secret = "bettermode-signing-secret"

    def bettermode(name, body, expect):
        add(name, "bettermode", {"scheme": "bettermode", "secret": bm_secret},
            api_event("bettermode", "POST", {
                "content-type": "application/json", "x-tribe-request-timestamp": str(ms),
                "x-tribe-signature": hex_sig(bm_secret, f"{ms}:{body}".encode())}, body),
            expect, windowed=True)

    bettermode("bettermode", json.dumps({
        "networkId": "net1", "context": "NETWORK", "type": "SUBSCRIPTION", "id": "wh_1",
        "data": {"id": "evt-77", "name": "space.created", "object": {"id": "sp1"}}}),
        {"status": 200, "event_type": "space.created"})
    bettermode("bettermode-test", json.dumps({
        "networkId": "net1", "context": "NETWORK", "type": "TEST",
        "data": {"challenge": "c-123"}}), {"status": 200, "handshake": True})

    body = json.dumps({"type": "notification_event", "topic": "conversation.user.created",
                       "id": "notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3", "data": {"item": {}}})
    add("intercom", "intercom", {"scheme": "intercom", "secret": "intercom-client-secret"},
        api_event("intercom", "POST", {
            "content-type": "application/json", "user-agent": "Intercom-Webhook",
            "x-hub-signature": "sha1=" + hex_sig("intercom-client-secret", body.encode(), hashlib.sha1)},
            body),
        {"status": 200, "event_type": "conversation.user.created"})

    params = {"AccountSid": "AC1234567890abcdef", "From": "+15005550006", "To": "+15005550001",
              "MessageSid": "SM1234567890abcdef", "MessageStatus": "delivered"}
    body = urllib.parse.urlencode(params)
    signed = PUBLIC_URL + "/webhooks/twilio" + "".join(k + params[k] for k in sorted(params))
    add("twilio", "twilio", {"scheme": "twilio", "secret": "twilio-auth-token"},
        api_event("twilio", "POST", {
            "content-type": "application/x-www-form-urlencoded",
            "i-twilio-idempotency-token": "0f6b9d2f-5d8e-4a7b-9a1c-2b3c4d5e6f70",
            "x-twilio-signature": b64(hmac_digest(b"twilio-auth-token", signed.encode(), hashlib.sha1))},
            body),
        {"status": 200, "event_type": "message.delivered"})

    zoom_secret = "zoom-secret-token"

    def zoom(name, body, expect):
        add(name, "zoom", {"scheme": "zoom", "secret": zoom_secret},
            api_event("zoom", "POST", {
                "content-type": "application/json", "x-zm-request-timestamp": str(ts),
                "x-zm-signature": "v0=" + hex_sig(zoom_secret, f"v0:{ts}:{body}".encode())},
                body), expect, windowed=True)

    zoom("zoom", json.dumps({"event": "meeting.started", "event_ts": ms,
                             "payload": {"account_id": "acc1", "object": {"id": "1234567890"}}}),
         {"status": 200, "event_type": "meeting.started"})
    zoom("zoom-url-validation", json.dumps({"event": "endpoint.url_validation", "event_ts": ms,
                                            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}),
         {"status": 200, "handshake": True})

    body = json.dumps({"action": "create", "type": "Issue", "webhookTimestamp": ms,
                       "data": {"id": "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9", "title": "Bug"}})
    add("linear", "linear", {"scheme": "linear", "secret": "lin_wh_signing_secret"},
        api_event("linear", "POST", {
            "content-type": "application/json; charset=utf-8", "user-agent": "Linear-Webhook",
            "linear-delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72", "linear-event": "Issue",
            "linear-signature": hex_sig("lin_wh_signing_secret", body.encode())}, body),
        {"status": 200, "event_type": "Issue.create"}, windowed=True)

    body = json.dumps([{"email": "a@example.com", "event": "delivered", "timestamp": ts,
                        "sg_event_id": "ZGVsaXZlcmVk", "sg_message_id": "14c5d75ce93.dfd.64b469"}]) + "\r\n"
    add("sendgrid", "sendgrid", {"scheme": "sendgrid", "public_key": (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==")},
        api_event("sendgrid", "POST", {
            "content-type": "application/json", "user-agent": "SendGrid Event API",
            "x-twilio-email-event-webhook-timestamp": str(ts),
            "x-twilio-email-event-webhook-signature": sendgrid_signature(f"{ts}{body}".encode())},
            body),
        {"status": 200, "event_type": "delivered"}, windowed=True)

    meta_config = {"scheme": "meta", "secret": "meta-app-secret", "verify_token": "meta-verify-token"}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
                       "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp"}}]}]})
    add("meta", "meta", meta_config,
        api_event("meta", "POST", {
            "content-type": "application/json", "user-agent": "facebookexternalua",
            "x-hub-signature-256": "sha256=" + hex_sig("meta-app-secret", body.encode())}, body),
        {"status": 200, "event_type": "whatsapp_business_account.messages"})
    add("meta-verify", "meta", meta_config,
        api_event("meta", "GET", {"user-agent": "facebookplatform/1.0"},
                  query="hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-verify-token"),
        {"status": 200, "handshake": True})

    body = json.dumps({"list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},
                       "delta": {"users": [12345678]}})
    dropbox_config = {"scheme": "dropbox", "secret": "dropbox-app-secret"}
    add("dropbox", "dropbox", dropbox_config,
        api_event("dropbox", "POST", {
            "content-type": "application/json", "user-agent": "DropboxWebhooks/1.0",
            "x-dropbox-signature": hex_sig("dropbox-app-secret", body.encode())}, body),
        {"status": 200, "event_type": "list_folder"})
    add("dropbox-challenge", "dropbox", dropbox_config,
        api_event("dropbox", "GET", {"user-agent": "DropboxWebhooks/1.0"},
                  query="challenge=Zx3YwN0k1jZf"),
        {"status": 200, "handshake": True})

    body = json.dumps({"type": "message.created", "message": {"id": 42, "body": {"text": "hi"}}})
    add("spika", "spika", {"scheme": "spika", "value": "spika-verification-signature"},
        api_event("spika", "POST", {"content-type": "application/json",
                                    "verification-signature": "spika-verification-signature"}, body),
        {"status": 200, "event_type": "message.created"})

    body = json.dumps({"type": "post", "action": "created", "data": {"id": "p1", "title": "Hello"}})
    add("outverse", "outverse", {"scheme": "outverse", "auth": {
        "scheme": "token", "header": "X-Outverse-Token", "value": "outverse-token"}},
        api_event("outverse", "POST", {"content-type": "application/json",
                                       "x-outverse-token": "outverse-token"}, body),
        {"status": 200, "event_type": "post.created"})

    body = json.dumps({"type": "postCompleted", "data": {"post": {"id": 9, "title": "Dark mode"}}})
    add("featureos", "featureos", {"scheme": "featureos", "auth": {
        "scheme": "basic", "username": "featureos", "password": "featureos-password"}},
        api_event("featureos", "POST", {
            "content-type": "application/json",
            "authorization": "Basic " + b64(b"featureos:featureos-password")}, body),
        {"status": 200, "event_type": "postCompleted"})

    sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "amount": 4200}})
    msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    key = base64.b64decode(sw_secret.removeprefix("whsec_"))
    sig = b64(hmac_digest(key, f"{msg_id}.{ts}.{body}".encode()))
    add("standard-webhooks", "standard-webhooks", {"scheme": "standard-webhooks", "secret": sw_secret},
        api_event("standard-webhooks", "POST", {
            "content-type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}"}, body),
        {"status": 200, "event_type": "invoice.paid"}, windowed=True)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    sources, expected = {}, {}
    for name, source, config, event, expect in samples():
        sources[source] = {"id": source, "verify": config}
        expected[name] = expect
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(event, f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(OUT, "sources.json"), "w") as f:
        json.dump(list(sources.values()), f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(expected)} samples to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
