//! A recording HTTP proxy between Hookhub's AWS SDK clients and moto: every DynamoDB and SQS
//! call (its `X-Amz-Target`, request and response bodies, status) is kept in order, so tests
//! and the cost benchmark can count calls and price them ([`crate::capacity`]).
//!
//! Point the SDK at [`Recorder::endpoint`] instead of moto's. Only the JSON protocols are
//! understood (DynamoDB, and SQS as the current SDK speaks it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::capacity::{Accountant, Units};

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`…
    pub target: String,
    pub request: Value,
    pub response: Value,
    pub ok: bool,
}

impl Call {
    /// The operation name (`PutItem`).
    pub fn operation(&self) -> &str {
        self.target.rsplit('.').next().unwrap_or(&self.target)
    }

    /// The table a DynamoDB call names (the first one for batches), or "".
    pub fn table(&self) -> String {
        if let Some(t) = self.request["TableName"].as_str() {
            return t.to_string();
        }
        let first_key = |v: &Value| v.as_object().and_then(|o| o.keys().next().cloned());
        if let Some(t) = first_key(&self.request["RequestItems"]) {
            return t;
        }
        self.request["TransactItems"][0]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|op| op["TableName"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The index a `Query` or `Scan` reads, if any.
    pub fn index(&self) -> Option<&str> {
        self.request["IndexName"].as_str()
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// A running recorder; stops with the runtime it was started on.
pub struct Recorder {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    /// Listens on 127.0.0.1 and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> std::io::Result<Recorder> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: relay_client(),
            calls: calls.clone(),
        };
        let app = axum::Router::new().fallback(relay).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Recorder { addr, calls })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, in the order they were answered.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("recorder lock").clone()
    }

    /// How many calls were recorded so far (a mark for [`Recorder::calls_since`]).
    pub fn mark(&self) -> usize {
        self.calls.lock().expect("recorder lock").len()
    }

    pub fn calls_since(&self, mark: usize) -> Vec<Call> {
        self.calls.lock().expect("recorder lock")[mark..].to_vec()
    }
}

/// Prices the calls after `mark` of a recording, replaying all of it so items written
/// before the mark are known: the units of each call after the mark, in order.
pub fn price(calls: &[Call], mark: usize) -> Vec<(Call, Units)> {
    let mut accountant = Accountant::new();
    let mut priced = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let units = accountant.call(&call.target, &call.request, &call.response, call.ok);
        if i >= mark {
            priced.push((call.clone(), units));
        }
    }
    priced
}

/// A client that opens a connection per call: after a burst, moto closes the idle keep-alive
/// connections of a pool, and a call relayed on one of them would fail (each of the SDK's
/// retries picking another stale one).
fn relay_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("relay client")
}

async fn relay(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body.clone());
    for (name, value) in &headers {
        // Hop-by-hop and length headers are the relay's own business.
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding" | "expect"
        ) {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            out_headers.insert(name.clone(), value.clone());
        }
    }
    let answer_body = answer.bytes().await.unwrap_or_default();
    if !target.is_empty() {
        let parse = |b: &[u8]| serde_json::from_slice(b).unwrap_or(Value::Null);
        let call = Call {
            target,
            request: parse(&body),
            response: parse(&answer_body),
            ok: status.is_success(),
        };
        shared.calls.lock().expect("recorder lock").push(call);
    }
    (status, out_headers, answer_body).into_response()
}
