//! Micro benchmarks of the per-request hot paths, each beside a baseline measured in the same
//! run: inbound verification per scheme, outbound signing, event-type and dedup-key extraction,
//! subscription filter matching, and the stored event payload's compression.
//!
//! `cargo bench -p hookhub-shared --bench micro`; `hookhub-bench micro-report` turns the
//! results under `target/criterion` into a table with the ratio to the raw MAC.

use std::hint::black_box;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use hookhub::domain::{Event, Secret, Subscription};
use hookhub::verify::{InboundRequest, VerifyConfig};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];
const SECRET: &str = "bench-signing-secret";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TWILIO_URL: &str = "https://hooks.example.com/webhooks/twilio";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

/// A JSON event of exactly `size` bytes, padded with a string field. `extra` goes first (e.g.
/// Linear's signed timestamp).
fn json_body(size: usize, extra: &str) -> Vec<u8> {
    let head =
        format!(r#"{{{extra}"type":"invoice.paid","action":"opened","id":"evt_0001","pad":""#);
    let tail = r#""}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(tail.as_bytes());
    body
}

/// A form body of about `size` bytes (Twilio's callbacks).
fn form_body(size: usize) -> Vec<u8> {
    let mut body = String::from("MessageStatus=delivered&MessageSid=SM0001&AccountSid=AC0001");
    let mut i = 0;
    while body.len() < size {
        body.push_str(&format!("&Field{i:04}=value-{i:04}-padding-padding"));
        i += 1;
    }
    body.into_bytes()
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// One scheme's config and a request it accepts.
struct Case {
    name: &'static str,
    config: VerifyConfig,
    headers: HeaderMap,
    body: Vec<u8>,
    public_url: Option<String>,
}

impl Case {
    fn req(&self) -> InboundRequest<'_> {
        InboundRequest {
            method: &Method::POST,
            headers: &self.headers,
            query: None,
            body: &self.body,
            public_url: self.public_url.as_deref(),
            now: now(),
        }
    }
}

fn config(json: &str) -> VerifyConfig {
    let config: VerifyConfig = serde_json::from_str(json).unwrap();
    config.validate().unwrap();
    config
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map.insert("content-type", HeaderValue::from_static("application/json"));
    map
}

/// Every scheme of the catalog with a request signed the provider's way (independently of the
/// code under test), for a body of `size` bytes.
fn cases(size: usize) -> Vec<Case> {
    let k = SECRET.as_bytes();
    let ts = now().timestamp();
    let ts_text = ts.to_string();
    let body = json_body(size, "");
    let sig_hex = hex::encode(hmac256(k, &[&body]));
    let mut cases = Vec::new();
    let mut add = |name, config: VerifyConfig, headers, body: Vec<u8>| {
        cases.push(Case {
            name,
            config,
            headers,
            body,
            public_url: None,
        })
    };
    add(
        "github",
        config(&format!(r#"{{"scheme":"github","secret":"{SECRET}"}}"#)),
        headers(&[
            ("X-Hub-Signature-256", format!("sha256={sig_hex}")),
            ("X-GitHub-Event", "issues".into()),
            ("X-GitHub-Delivery", "d-1".into()),
        ]),
        body.clone(),
    );
    let stripe_secret = "whsec_stripe-endpoint-secret";
    add(
        "stripe",
        config(&format!(
            r#"{{"scheme":"stripe","secret":"{stripe_secret}"}}"#
        )),
        headers(&[(
            "Stripe-Signature",
            format!(
                "t={ts},v1={}",
                hex::encode(hmac256(
                    stripe_secret.as_bytes(),
                    &[ts_text.as_bytes(), b".", &body]
                ))
            ),
        )]),
        body.clone(),
    );
    let v0 = |k: &[u8]| hex::encode(hmac256(k, &[b"v0:", ts_text.as_bytes(), b":", &body]));
    add(
        "slack",
        config(&format!(r#"{{"scheme":"slack","secret":"{SECRET}"}}"#)),
        headers(&[
            ("X-Slack-Signature", format!("v0={}", v0(k))),
            ("X-Slack-Request-Timestamp", ts_text.clone()),
        ]),
        body.clone(),
    );
    add(
        "shopify",
        config(&format!(r#"{{"scheme":"shopify","secret":"{SECRET}"}}"#)),
        headers(&[
            ("X-Shopify-Hmac-Sha256", B64.encode(hmac256(k, &[&body]))),
            ("X-Shopify-Topic", "orders/create".into()),
        ]),
        body.clone(),
    );
    let ts_ms = (ts * 1000).to_string();
    add(
        "bettermode",
        config(&format!(r#"{{"scheme":"bettermode","secret":"{SECRET}"}}"#)),
        headers(&[
            (
                "X-Bettermode-Signature",
                hex::encode(hmac256(k, &[ts_ms.as_bytes(), b":", &body])),
            ),
            ("X-Bettermode-Request-Timestamp", ts_ms.clone()),
        ]),
        body.clone(),
    );
    add(
        "intercom",
        config(&format!(r#"{{"scheme":"intercom","secret":"{SECRET}"}}"#)),
        headers(&[(
            "X-Hub-Signature",
            format!("sha1={}", hex::encode(hmac1(k, &[&body]))),
        )]),
        body.clone(),
    );
    add(
        "zoom",
        config(&format!(r#"{{"scheme":"zoom","secret":"{SECRET}"}}"#)),
        headers(&[
            ("x-zm-signature", format!("v0={}", v0(k))),
            ("x-zm-request-timestamp", ts_text.clone()),
        ]),
        body.clone(),
    );
    let linear_body = json_body(size, &format!(r#""webhookTimestamp":{},"#, ts * 1000));
    add(
        "linear",
        config(&format!(r#"{{"scheme":"linear","secret":"{SECRET}"}}"#)),
        headers(&[
            ("Linear-Signature", hex::encode(hmac256(k, &[&linear_body]))),
            ("Linear-Delivery", "d-1".into()),
        ]),
        linear_body.clone(),
    );
    {
        use p256::ecdsa::signature::Signer;
        use p256::ecdsa::{Signature, SigningKey};
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        // SPKI header for an uncompressed P-256 point, as SendGrid shows its key.
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        let public = B64.encode(der);
        let mut signed = ts_text.clone().into_bytes();
        signed.extend_from_slice(&body);
        let signature: Signature = key.sign(&signed);
        add(
            "sendgrid",
            config(&format!(
                r#"{{"scheme":"sendgrid","public_key":"{public}"}}"#
            )),
            headers(&[
                (
                    "X-Twilio-Email-Event-Webhook-Signature",
                    B64.encode(signature.to_der().as_bytes()),
                ),
                ("X-Twilio-Email-Event-Webhook-Timestamp", ts_text.clone()),
            ]),
            body.clone(),
        );
    }
    add(
        "meta",
        config(&format!(
            r#"{{"scheme":"meta","secret":"{SECRET}","verify_token":"t"}}"#
        )),
        headers(&[("X-Hub-Signature-256", format!("sha256={sig_hex}"))]),
        body.clone(),
    );
    add(
        "dropbox",
        config(&format!(r#"{{"scheme":"dropbox","secret":"{SECRET}"}}"#)),
        headers(&[("X-Dropbox-Signature", sig_hex.clone())]),
        body.clone(),
    );
    add(
        "spika",
        config(r#"{"scheme":"spika","value":"spika-token"}"#),
        headers(&[("Verification-Signature", "spika-token".into())]),
        body.clone(),
    );
    add(
        "outverse",
        config(&format!(
            r#"{{"scheme":"outverse","auth":{{"scheme":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","secret":"{SECRET}"}}}}"#
        )),
        headers(&[("X-Sig", sig_hex.clone())]),
        body.clone(),
    );
    add(
        "featureos",
        config(r#"{"scheme":"featureos","auth":{"scheme":"token","header":"X-T","value":"tok"}}"#),
        headers(&[("X-T", "tok".into())]),
        body.clone(),
    );
    let key = hookhub::signing::decode_secret(WHSEC).unwrap();
    add(
        "standard-webhooks",
        config(&format!(
            r#"{{"scheme":"standard-webhooks","secret":"{WHSEC}"}}"#
        )),
        headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", ts_text.clone()),
            (
                "webhook-signature",
                format!(
                    "v1,{}",
                    hookhub::signing::sign_with_key(&key, "msg_1", ts, &body)
                ),
            ),
        ]),
        body.clone(),
    );
    add(
        "hmac",
        config(&format!(
            r#"{{"scheme":"hmac","header":"X-Signature","algorithm":"sha256","encoding":"hex","prefix":"sha256=","secret":"{SECRET}","timestamp_header":"X-Timestamp"}}"#
        )),
        headers(&[
            (
                "X-Signature",
                format!(
                    "sha256={}",
                    hex::encode(hmac256(k, &[ts_text.as_bytes(), b".", &body]))
                ),
            ),
            ("X-Timestamp", ts_text.clone()),
        ]),
        body.clone(),
    );
    add(
        "token",
        config(r#"{"scheme":"token","header":"X-Webhook-Token","value":"shared-token"}"#),
        headers(&[("X-Webhook-Token", "shared-token".into())]),
        body.clone(),
    );
    add(
        "basic",
        config(r#"{"scheme":"basic","username":"hookhub","password":"pw"}"#),
        headers(&[(
            "Authorization",
            format!("Basic {}", B64.encode("hookhub:pw")),
        )]),
        body.clone(),
    );
    add(
        "none",
        config(r#"{"scheme":"none"}"#),
        headers(&[]),
        body.clone(),
    );
    // Twilio signs the URL and the sorted form fields with HMAC-SHA1.
    let form = form_body(size);
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(&form)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let mut signed = TWILIO_URL.to_owned();
    for (k, v) in pairs {
        signed.push_str(&k);
        signed.push_str(&v);
    }
    let mut twilio_headers = headers(&[(
        "X-Twilio-Signature",
        B64.encode(hmac1(k, &[signed.as_bytes()])),
    )]);
    twilio_headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    cases.push(Case {
        name: "twilio",
        config: config(&format!(r#"{{"scheme":"twilio","secret":"{SECRET}"}}"#)),
        headers: twilio_headers,
        body: form,
        public_url: Some(TWILIO_URL.to_owned()),
    });
    for case in &cases {
        assert_eq!(case.config.verify(&case.req()), Ok(()), "{}", case.name);
    }
    cases
}

/// Verification per scheme beside raw HMAC-SHA256 and HMAC-SHA1 over the same body.
fn verify(c: &mut Criterion) {
    for (size, label) in SIZES {
        let cases = cases(size);
        let body = json_body(size, "");
        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        let k = SECRET.as_bytes();
        group.bench_function("raw-hmac-sha256", |b| {
            b.iter(|| hmac256(black_box(k), &[black_box(&body)]))
        });
        group.bench_function("raw-hmac-sha1", |b| {
            b.iter(|| hmac1(black_box(k), &[black_box(&body)]))
        });
        for case in &cases {
            let req = case.req();
            group.bench_function(case.name, |b| {
                b.iter(|| black_box(&case.config).verify(black_box(&req)))
            });
        }
        group.finish();
    }
}

/// Outbound Standard Webhooks signing beside the raw MAC of the same content.
fn sign(c: &mut Criterion) {
    let secret = Secret::new(WHSEC);
    let key = hookhub::signing::decode_secret(WHSEC).unwrap();
    let ts = now().timestamp();
    for (size, label) in SIZES {
        let body = json_body(size, "");
        let mut group = c.benchmark_group(format!("sign/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("raw-hmac-sha256", |b| {
            b.iter(|| {
                hmac256(
                    black_box(&key),
                    &[b"evt_1.", b"1772452800.", black_box(&body)],
                )
            })
        });
        group.bench_function("signature_header", |b| {
            b.iter(|| {
                hookhub::signing::signature_header(
                    black_box(&secret),
                    "evt_01J0000000000000000000000",
                    ts,
                    black_box(&body),
                )
            })
        });
        let event = Event {
            id: "evt_01J0000000000000000000000".into(),
            source_id: "github".into(),
            event_type: "issues.opened".into(),
            received_at: now(),
            content_type: Some("application/json".into()),
            dedup_key: "id:d-1".into(),
            headers: Default::default(),
            body: body.clone().into(),
            enqueued: true,
        };
        let subscription = subscription(0, vec![], vec![]);
        group.bench_function("signed_headers", |b| {
            b.iter(|| hookhub::dispatch::signed_headers(&event, black_box(&subscription), ts))
        });
        group.finish();
    }
}

/// What the receiver computes after verification: the body as JSON, the event type and
/// delivery id (`describe`), and the SHA-256 dedup key when the provider sends no id.
fn extract(c: &mut Criterion) {
    for (size, label) in SIZES {
        let cases = cases(size);
        let body = json_body(size, "");
        let mut group = c.benchmark_group(format!("extract/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("raw-sha256", |b| {
            b.iter(|| Sha256::digest(black_box(&body)))
        });
        group.bench_function("dedup-key-sha256", |b| {
            b.iter(|| format!("sha256:{}", hex::encode(Sha256::digest(black_box(&body)))))
        });
        group.bench_function("raw-json-parse", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok())
        });
        for name in ["github", "stripe", "slack", "standard-webhooks", "twilio"] {
            let case = cases.iter().find(|c| c.name == name).unwrap();
            let req = case.req();
            group.bench_function(BenchmarkId::new("json_for_typing+describe", name), |b| {
                b.iter(|| {
                    let json = case.config.json_for_typing(black_box(&req));
                    case.config.describe(&req, json.as_ref())
                })
            });
        }
        group.finish();
    }
}

fn subscription(i: usize, sources: Vec<String>, event_types: Vec<String>) -> Subscription {
    Subscription {
        sources,
        event_types,
        ..Subscription::new(
            format!("sub_{i:08}"),
            format!("https://example.com/hooks/{i}"),
            Secret::new(WHSEC),
            now(),
        )
    }
}

/// The dispatcher's fan-out filter over 1, 100 and 10 000 subscriptions with a mix of source
/// lists, exact types and `prefix.*` wildcards.
fn filter(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter");
    for n in [1usize, 100, 10_000] {
        let subs: Vec<Subscription> = (0..n)
            .map(|i| {
                let sources = match i % 3 {
                    0 => vec![],
                    1 => vec!["github".into()],
                    _ => vec![format!("source-{i}"), "stripe".into()],
                };
                let types = match i % 4 {
                    0 => vec![],
                    1 => vec!["issues.*".into(), "push".into()],
                    2 => vec![format!("custom.{i}"), "pull_request.*".into()],
                    _ => vec!["*".into()],
                };
                subscription(i, sources, types)
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("matches", n), &subs, |b, subs| {
            b.iter(|| {
                subs.iter()
                    .filter(|s| s.matches(black_box("github"), black_box("issues.opened")))
                    .count()
            })
        });
    }
    group.finish();
}

/// A subscription's jq filter and transform per delivery at 1 KiB, beside the signing they come
/// with (`signed_headers`, the baseline: read the others as a ratio to it). `event_input` builds
/// the program input (body parsed); `filter`/`transform` add one run of the program on the
/// current thread; `prepare` is what the dispatcher does per delivery: both programs, each run
/// on a guarded evaluator thread (so it includes two thread hand-offs).
fn jq(c: &mut Criterion) {
    use hookhub::jq::{compile, event_input, prepare, Limits, Mode};
    let body = json_body(1024, "");
    let event = Event {
        id: "evt_01J0000000000000000000000".into(),
        source_id: "billing".into(),
        event_type: "invoice.paid".into(),
        received_at: now(),
        content_type: Some("application/json".into()),
        dedup_key: "id:d-1".into(),
        headers: [("user-agent".to_string(), "Billing/1".to_string())].into(),
        body: body.into(),
        enqueued: true,
    };
    let filter = r#".type == "invoice.paid" and .body.action != "deleted""#;
    let transform = r#"{kind: .type, id: .body.id, action: .body.action, at: .received_at, size: (.body.pad | length)}"#;
    let mut subscription = subscription(0, vec![], vec![]);
    subscription.filter = Some(filter.into());
    subscription.transform = Some(transform.into());
    let ts = now().timestamp();
    let never = || -> Box<dyn FnOnce(hookhub::jq::guard::Exceeded)> {
        Box::new(|e| panic!("benchmark program over budget: {e:?}"))
    };
    let filter = compile(filter).unwrap();
    let transform = compile(transform).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("jq/1KiB");
    group.bench_function("signed_headers", |b| {
        b.iter(|| hookhub::dispatch::signed_headers(&event, black_box(&subscription), ts))
    });
    group.bench_function("event_input", |b| b.iter(|| event_input(black_box(&event))));
    group.bench_function("event_input+filter", |b| {
        b.iter(|| {
            let input = event_input(black_box(&event));
            filter.run_here(input, Mode::Filter, Limits::default(), never())
        })
    });
    group.bench_function("event_input+transform", |b| {
        b.iter(|| {
            let input = event_input(black_box(&event));
            transform.run_here(input, Mode::Transform, Limits::default(), never())
        })
    });
    group.bench_function("event_input+filter+transform", |b| {
        b.iter(|| {
            let input = event_input(black_box(&event));
            let pass = filter.run_here(input.clone(), Mode::Filter, Limits::default(), never());
            (
                pass,
                transform.run_here(input, Mode::Transform, Limits::default(), never()),
            )
        })
    });
    group.bench_function("prepare", |b| {
        b.iter(|| {
            let prepared = runtime.block_on(prepare(black_box(&event), &subscription));
            assert!(matches!(prepared, hookhub::jq::Prepared::Deliver(_)));
        })
    });
    group.finish();
}

/// A GitHub push body of exactly `size` bytes with a push's entropy (as `hookhub-bench`'s
/// `push_body`, which the cost model sends): hex commit ids from a hash chain, each repeated in
/// its URL, commit messages of common words, then JSON whitespace to the byte.
fn push_like_body(size: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "fix", "add", "update", "parser", "queue", "retry", "cache", "index", "test", "docs",
        "config", "handler", "schema", "client", "timeout", "release",
    ];
    let mut digest: [u8; 32] = Sha256::digest(b"push").into();
    let mut body = String::from(
        r#"{"ref":"refs/heads/main","repository":{"full_name":"octo/bench"},"commits":["#,
    );
    loop {
        digest = Sha256::digest(digest).into();
        let id = hex::encode(&digest[..20]);
        let words: Vec<&str> = digest[20..26]
            .iter()
            .map(|b| WORDS[*b as usize % 16])
            .collect();
        let commit = format!(
            r#"{{"id":"{id}","message":"{}","url":"https://github.com/octo/bench/commit/{id}","author":{{"name":"{}","email":"{}@users.noreply.github.com"}}}},"#,
            words[..4].join(" "),
            words[4],
            words[5],
        );
        if body.len() + commit.len() + 3 > size {
            break;
        }
        body.push_str(&commit);
    }
    body.push_str(r#"{}]"#);
    body.extend(std::iter::repeat_n(
        ' ',
        size.saturating_sub(body.len() + 1),
    ));
    body.push('}');
    body.into_bytes()
}

/// The DynamoDB event item's payload (`hookhub::payload`): GitHub headers and a push body,
/// packed (deflate) and unpacked. Numbers quoted in `shared/src/payload.rs`.
fn payload(c: &mut Criterion) {
    let headers: std::collections::BTreeMap<String, String> = [
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-event", "push"),
        ("user-agent", "GitHub-Hookshot/044aadd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut group = c.benchmark_group("payload");
    for (size, label) in SIZES {
        let body = push_like_body(size);
        assert_eq!(body.len(), size);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        let packed = hookhub::payload::pack(&headers, &body).unwrap();
        println!("payload {label}: packed to {} bytes", packed.len());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("pack", label), &body, |b, body| {
            b.iter(|| hookhub::payload::pack(black_box(&headers), black_box(body)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("unpack", label), &packed, |b, packed| {
            b.iter(|| hookhub::payload::unpack(black_box(packed)).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: about 75 benchmarks must fit in a few minutes on a 2-core machine.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(50);
    targets = verify, sign, extract, filter, jq, payload
}
criterion_main!(benches);
