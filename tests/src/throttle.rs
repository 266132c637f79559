//! A fault-injecting [`Relay`]: an HTTP proxy between Hookhub's SDK clients and moto that answers
//! a share of the DynamoDB and SQS calls with the throttling errors AWS sends, shaped so the AWS
//! SDK classifies them as throttling (and retries them under its retry config), and forwards the
//! rest unchanged.
//!
//! - DynamoDB (JSON 1.0): HTTP 400, `__type` `ProvisionedThroughputExceededException` or
//!   `ThrottlingException` (alternating).
//! - SQS, JSON protocol (today's SDK): HTTP 400, `__type` `RequestThrottled` and the
//!   `x-amzn-query-error: RequestThrottled;Sender` header the query-compatible SDK reads its
//!   error code from.
//! - SQS, query protocol (older SDKs, form-encoded): HTTP 400 with the XML `ErrorResponse`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;

use crate::proxy::{Counters, Relay};

/// Which AWS API a request calls, from its headers (and body, for the query protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    SqsJson,
    SqsQuery,
    /// Anything else (never throttled).
    Other,
}

impl Service {
    pub fn of(headers: &HeaderMap, body: &[u8]) -> Service {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if target.starts_with("DynamoDB_") {
            Service::DynamoDb
        } else if target.starts_with("AmazonSQS.") {
            Service::SqsJson
        } else if body.starts_with(b"Action=") || contains_action(body) {
            Service::SqsQuery
        } else {
            Service::Other
        }
    }
}

fn contains_action(body: &[u8]) -> bool {
    body.windows(8).any(|w| w == b"&Action=")
}

/// The throttling answer AWS gives for `service`; `nth` picks DynamoDB's error (both occur).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub code: &'static str,
    pub body: String,
}

pub fn throttle_answer(service: Service, nth: u64) -> Option<Answer> {
    const JSON: &str = "application/x-amz-json-1.0";
    match service {
        Service::DynamoDb => {
            let code = if nth.is_multiple_of(2) {
                "ProvisionedThroughputExceededException"
            } else {
                "ThrottlingException"
            };
            Some(Answer {
                status: 400,
                content_type: JSON,
                headers: vec![],
                code,
                body: format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"Rate of requests exceeds the allowed throughput (injected)"}}"#
                ),
            })
        }
        Service::SqsJson => Some(Answer {
            status: 400,
            content_type: JSON,
            headers: vec![("x-amzn-query-error", "RequestThrottled;Sender")],
            code: "RequestThrottled",
            body: r#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled (injected)"}"#.into(),
        }),
        Service::SqsQuery => Some(Answer {
            status: 400,
            content_type: "text/xml",
            headers: vec![],
            code: "RequestThrottled",
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>RequestThrottled</Code>\
                   <Message>Request is throttled (injected)</Message></Error>\
                   <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                .into(),
        }),
        Service::Other => None,
    }
}

/// Counts of what the proxy saw, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    pub dynamodb_calls: u64,
    pub dynamodb_throttled: u64,
    pub sqs_calls: u64,
    pub sqs_throttled: u64,
}

/// The relay: throttles `share` percent of DynamoDB and SQS calls (0 until [`Throttle::set_share`]),
/// picked by a seeded generator so a run is reproducible in its proportions.
pub struct Throttle {
    percent: AtomicU32,
    rng: Mutex<StdRng>,
    http: reqwest::Client,
    dynamodb_calls: AtomicU64,
    dynamodb_throttled: AtomicU64,
    sqs_calls: AtomicU64,
    sqs_throttled: AtomicU64,
}

impl Throttle {
    pub fn new(seed: u64) -> Throttle {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Throttle {
            percent: AtomicU32::new(0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            dynamodb_calls: AtomicU64::new(0),
            dynamodb_throttled: AtomicU64::new(0),
            sqs_calls: AtomicU64::new(0),
            sqs_throttled: AtomicU64::new(0),
        }
    }

    /// Throttles `percent` (0–100) of the DynamoDB and SQS calls from now on.
    pub fn set_share(&self, percent: u32) {
        self.percent.store(percent.min(100), Ordering::SeqCst);
    }

    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            dynamodb_calls: self.dynamodb_calls.load(Ordering::SeqCst),
            dynamodb_throttled: self.dynamodb_throttled.load(Ordering::SeqCst),
            sqs_calls: self.sqs_calls.load(Ordering::SeqCst),
            sqs_throttled: self.sqs_throttled.load(Ordering::SeqCst),
        }
    }

    /// Whether this call is throttled, counting it; the answer if so.
    fn decide(&self, service: Service) -> Option<Answer> {
        let (calls, throttled) = match service {
            Service::DynamoDb => (&self.dynamodb_calls, &self.dynamodb_throttled),
            Service::SqsJson | Service::SqsQuery => (&self.sqs_calls, &self.sqs_throttled),
            Service::Other => return None,
        };
        calls.fetch_add(1, Ordering::SeqCst);
        let percent = self.percent.load(Ordering::SeqCst);
        let hit = percent > 0
            && self
                .rng
                .lock()
                .expect("throttle rng")
                .random_range(0..100u32)
                < percent;
        if !hit {
            return None;
        }
        let nth = throttled.fetch_add(1, Ordering::SeqCst);
        throttle_answer(service, nth)
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        upstream: SocketAddr,
        counters: &Counters,
    ) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable request body"),
        };
        counters.add_to_upstream(body.len());
        if let Some(answer) = self.decide(Service::of(&parts.headers, &body)) {
            let mut response = Response::new(Full::new(Bytes::from(answer.body)));
            *response.status_mut() = StatusCode::from_u16(answer.status).expect("status");
            let headers = response.headers_mut();
            headers.insert(
                "content-type",
                HeaderValue::from_static(answer.content_type),
            );
            for (name, value) in answer.headers {
                headers.insert(name, HeaderValue::from_static(value));
            }
            return response;
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut headers = parts.headers.clone();
        for hop in ["host", "content-length", "connection", "transfer-encoding"] {
            headers.remove(hop);
        }
        let forwarded = self
            .http
            .request(parts.method, format!("http://{upstream}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await;
        let Ok(answer) = forwarded else {
            return plain(StatusCode::BAD_GATEWAY, "upstream unreachable");
        };
        let status = answer.status();
        let mut headers = answer.headers().clone();
        for hop in ["content-length", "connection", "transfer-encoding"] {
            headers.remove(hop);
        }
        let Ok(bytes) = answer.bytes().await else {
            return plain(StatusCode::BAD_GATEWAY, "upstream answer cut");
        };
        counters.add_from_upstream(bytes.len());
        let mut response = Response::new(Full::new(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

fn plain(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response
}

#[async_trait]
impl Relay for Throttle {
    async fn relay(
        &self,
        client: TcpStream,
        upstream: SocketAddr,
        counters: &Counters,
    ) -> io::Result<()> {
        let service = hyper::service::service_fn(|request| async move {
            Ok::<_, Infallible>(self.handle(request, upstream, counters).await)
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(client), service)
            .await
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(target: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(t) = target {
            map.insert("x-amz-target", HeaderValue::from_str(t).unwrap());
        }
        map
    }

    #[test]
    fn services_are_told_apart() {
        let cases: [(Option<&str>, &[u8], Service); 5] = [
            (Some("DynamoDB_20120810.PutItem"), b"{}", Service::DynamoDb),
            (Some("AmazonSQS.SendMessage"), b"{}", Service::SqsJson),
            (None, b"Action=SendMessage&QueueUrl=x", Service::SqsQuery),
            (None, b"QueueUrl=x&Action=DeleteMessage", Service::SqsQuery),
            (None, b"", Service::Other),
        ];
        for (target, body, expected) in cases {
            assert_eq!(Service::of(&headers(target), body), expected, "{target:?}");
        }
    }

    #[test]
    fn answers_carry_the_codes_the_sdk_retries_as_throttling() {
        let cases = [
            (
                Service::DynamoDb,
                0,
                "ProvisionedThroughputExceededException",
            ),
            (Service::DynamoDb, 1, "ThrottlingException"),
            (Service::SqsJson, 0, "RequestThrottled"),
            (Service::SqsQuery, 0, "RequestThrottled"),
        ];
        for (service, nth, code) in cases {
            let answer = throttle_answer(service, nth).expect("an answer");
            assert_eq!((answer.status, answer.code), (400, code), "{service:?}");
            assert!(answer.body.contains(code), "{service:?}: {}", answer.body);
        }
        let sqs = throttle_answer(Service::SqsJson, 0).unwrap();
        assert_eq!(
            sqs.headers,
            vec![("x-amzn-query-error", "RequestThrottled;Sender")]
        );
        assert_eq!(throttle_answer(Service::Other, 0), None);
    }
}
