//! The scheme catalog: one row per `scheme`, saying what it checks. The admin API and the CLI
//! can list it; `README.md` beside this file is the same table, and a test keeps the two and
//! the example configs in step.
//!
//! Adding a provider: a submodule with its config type and `Scheme` impl, a `VerifyConfig`
//! variant with its two match arms (`scheme`, `scheme_name`), a row here, a row in the README.

use serde::Serialize;

/// What one scheme checks, in words, with a minimal valid config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SchemeInfo {
    /// The `scheme` tag.
    pub scheme: &'static str,
    /// Headers (or query parameters) the scheme reads.
    pub headers: &'static str,
    /// What is signed, and how.
    pub signed: &'static str,
    /// Accepted clock difference, `-` when no timestamp is checked.
    pub window: &'static str,
    /// Config fields besides `scheme`; `?` marks optional ones.
    pub fields: &'static str,
    /// Handshake answered by Hookhub, `-` when none.
    pub handshake: &'static str,
    /// Where the provider's own delivery id comes from, `-` when it sends none. Sources of a
    /// scheme with one deduplicate on it by default (`dedup.key` `delivery_id`), others not.
    pub delivery_id: &'static str,
    /// A `verify` config that validates.
    pub example: &'static str,
}

/// Every scheme `VerifyConfig` accepts, providers first, then the generic ones.
pub const CATALOG: &[SchemeInfo] = &[
    SchemeInfo {
        scheme: "github",
        headers: "X-Hub-Signature-256, X-GitHub-Event, X-GitHub-Delivery",
        signed: "sha256=hex HMAC-SHA256(secret, body); JSON or form `payload=` bodies",
        window: "-",
        fields: "secret | secrets",
        handshake: "-",
        delivery_id: "X-GitHub-Delivery",
        example: r#"{"scheme":"github","secret":"gh-webhook-secret"}"#,
    },
    SchemeInfo {
        scheme: "stripe",
        headers: "Stripe-Signature",
        signed: "t=<unix>,v1=<hex HMAC-SHA256(whsec_ string, \"{t}.{body}\")>; any v1",
        window: "300 s",
        fields: "secret | secrets, tolerance_seconds?",
        handshake: "-",
        delivery_id: "body id",
        example: r#"{"scheme":"stripe","secret":"whsec_stripe-endpoint-secret"}"#,
    },
    SchemeInfo {
        scheme: "slack",
        headers: "X-Slack-Signature, X-Slack-Request-Timestamp",
        signed: "v0=hex HMAC-SHA256(secret, \"v0:{ts}:{body}\")",
        window: "300 s",
        fields: "secret | secrets, tolerance_seconds?",
        handshake: "url_verification -> 200 {\"challenge\"}",
        delivery_id: "body event_id",
        example: r#"{"scheme":"slack","secret":"slack-signing-secret"}"#,
    },
    SchemeInfo {
        scheme: "shopify",
        headers: "X-Shopify-Hmac-Sha256, X-Shopify-Topic, X-Shopify-Webhook-Id",
        signed: "base64 HMAC-SHA256(secret, body)",
        window: "-",
        fields: "secret | secrets",
        handshake: "-",
        delivery_id: "X-Shopify-Webhook-Id",
        example: r#"{"scheme":"shopify","secret":"shopify-client-secret"}"#,
    },
    SchemeInfo {
        scheme: "bettermode",
        headers: "X-Bettermode-Signature, X-Bettermode-Request-Timestamp (ms); or X-Tribe-*",
        signed: "hex HMAC-SHA256(secret, \"{ts}:{body}\")",
        window: "300 s",
        fields: "secret | secrets, tolerance_seconds?",
        handshake: "TEST -> 200 {\"type\":\"TEST\",\"status\":\"SUCCEEDED\",\"data\":{\"challenge\"}}",
        delivery_id: "body data.id, else id",
        example: r#"{"scheme":"bettermode","secret":"bettermode-signing-secret"}"#,
    },
    SchemeInfo {
        scheme: "intercom",
        headers: "X-Hub-Signature",
        signed: "sha1=hex HMAC-SHA1(client secret, body)",
        window: "-",
        fields: "secret | secrets",
        handshake: "- (ping is an event)",
        delivery_id: "body id",
        example: r#"{"scheme":"intercom","secret":"intercom-client-secret"}"#,
    },
    SchemeInfo {
        scheme: "twilio",
        headers: "X-Twilio-Signature, I-Twilio-Idempotency-Token; bodySHA256 query",
        signed: "base64 HMAC-SHA1(auth token, public URL + sorted form params); JSON: URL, then sha256(body) = bodySHA256",
        window: "-",
        fields: "secret | secrets (auth tokens)",
        handshake: "-",
        delivery_id: "I-Twilio-Idempotency-Token",
        example: r#"{"scheme":"twilio","secret":"twilio-auth-token"}"#,
    },
    SchemeInfo {
        scheme: "zoom",
        headers: "x-zm-signature, x-zm-request-timestamp",
        signed: "v0=hex HMAC-SHA256(secret token, \"v0:{ts}:{body}\")",
        window: "300 s",
        fields: "secret | secrets, tolerance_seconds?",
        handshake: "endpoint.url_validation -> 200 {plainToken, encryptedToken}",
        delivery_id: "-",
        example: r#"{"scheme":"zoom","secret":"zoom-secret-token"}"#,
    },
    SchemeInfo {
        scheme: "linear",
        headers: "Linear-Signature, Linear-Delivery",
        signed: "hex HMAC-SHA256(secret, body); body webhookTimestamp (ms)",
        window: "60 s",
        fields: "secret | secrets, tolerance_seconds?",
        handshake: "-",
        delivery_id: "Linear-Delivery",
        example: r#"{"scheme":"linear","secret":"lin_wh_signing_secret"}"#,
    },
    SchemeInfo {
        scheme: "sendgrid",
        headers: "X-Twilio-Email-Event-Webhook-Signature, X-Twilio-Email-Event-Webhook-Timestamp",
        signed: "ECDSA P-256/SHA-256 over \"{ts}{body}\", base64 DER signature",
        window: "300 s",
        fields: "public_key (base64 DER), tolerance_seconds?",
        handshake: "-",
        delivery_id: "sg_event_id of a batch of one",
        example: r#"{"scheme":"sendgrid","public_key":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ=="}"#,
    },
    SchemeInfo {
        scheme: "meta",
        headers: "X-Hub-Signature-256; GET hub.mode, hub.verify_token, hub.challenge",
        signed: "sha256=hex HMAC-SHA256(app secret, body)",
        window: "-",
        fields: "secret | secrets, verify_token",
        handshake: "GET subscribe -> 200 challenge (text) or 403",
        delivery_id: "-",
        example: r#"{"scheme":"meta","secret":"meta-app-secret","verify_token":"meta-verify-token"}"#,
    },
    SchemeInfo {
        scheme: "dropbox",
        headers: "X-Dropbox-Signature; GET challenge",
        signed: "hex HMAC-SHA256(app secret, body)",
        window: "-",
        fields: "secret | secrets",
        handshake: "GET ?challenge -> 200 challenge (text, nosniff)",
        delivery_id: "-",
        example: r#"{"scheme":"dropbox","secret":"dropbox-app-secret"}"#,
    },
    SchemeInfo {
        scheme: "spika",
        headers: "Verification-Signature (or header)",
        signed: "static token, constant-time",
        window: "-",
        fields: "value, header?",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"spika","value":"spika-verification-signature"}"#,
    },
    SchemeInfo {
        scheme: "outverse",
        headers: "per auth",
        signed: "per auth: none | token | basic | hmac",
        window: "-",
        fields: "auth (a generic scheme config, required: none | token | basic | hmac)",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"outverse","auth":{"scheme":"token","header":"X-Outverse-Token","value":"outverse-token"}}"#,
    },
    SchemeInfo {
        scheme: "featureos",
        headers: "per auth",
        signed: "per auth: none | token | basic | hmac",
        window: "-",
        fields: "auth (a generic scheme config, required: none | token | basic | hmac)",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"featureos","auth":{"scheme":"basic","username":"featureos","password":"featureos-password"}}"#,
    },
    SchemeInfo {
        scheme: "standard-webhooks",
        headers: "webhook-id, webhook-timestamp, webhook-signature (or svix-*)",
        signed: "v1,base64 HMAC-SHA256(base64-decoded whsec_, \"{id}.{ts}.{body}\"); any v1",
        window: "300 s",
        fields: "secret | secrets (whsec_...), tolerance_seconds?",
        handshake: "-",
        delivery_id: "webhook-id / svix-id",
        example: r#"{"scheme":"standard-webhooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
    },
    SchemeInfo {
        scheme: "hmac",
        headers: "header (+ timestamp_header?)",
        signed: "prefix + hex|base64 HMAC-SHA256|SHA1|SHA512(secret, template); template default {body}, or {timestamp}.{body}",
        window: "300 s when timestamp_header",
        fields: "header, algorithm, encoding, prefix?, secret | secrets, timestamp_header?, template?, tolerance_seconds?",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"hmac","header":"X-Signature","algorithm":"sha256","encoding":"hex","prefix":"sha256=","secret":"shared-secret"}"#,
    },
    SchemeInfo {
        scheme: "token",
        headers: "header",
        signed: "static token, constant-time",
        window: "-",
        fields: "header, value",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"token","header":"X-Webhook-Token","value":"shared-token"}"#,
    },
    SchemeInfo {
        scheme: "basic",
        headers: "Authorization",
        signed: "Basic base64(username:password), constant-time",
        window: "-",
        fields: "username, password",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"basic","username":"hookhub","password":"basic-password"}"#,
    },
    SchemeInfo {
        scheme: "none",
        headers: "-",
        signed: "nothing (must be chosen explicitly)",
        window: "-",
        fields: "-",
        handshake: "-",
        delivery_id: "-",
        example: r#"{"scheme":"none"}"#,
    },
];

impl SchemeInfo {
    /// Whether the provider sends a delivery id of its own.
    pub fn has_delivery_id(&self) -> bool {
        self.delivery_id != "-"
    }

    /// The `dedup.key` a source of this scheme gets when it sets none.
    pub fn default_dedup_key(&self) -> &'static str {
        if self.has_delivery_id() {
            "delivery_id"
        } else {
            "none"
        }
    }
}

/// The catalog row of a scheme tag.
pub fn scheme_info(scheme: &str) -> Option<&'static SchemeInfo> {
    CATALOG.iter().find(|info| info.scheme == scheme)
}
