//! The load generator (one keep-alive HTTP/1.1 connection per client, requests signed before
//! the clock starts), latency statistics, and the bare axum server used as the ceiling.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The secret of the benchmark's GitHub-style source.
pub const SOURCE_SECRET: &str = "bench-github-secret";

/// One prepared request.
#[derive(Clone)]
pub struct Prepared {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Prepared {
    /// As an in-process request for the router (the handler and retention suites).
    pub fn request(&self) -> anyhow::Result<http::Request<axum::body::Body>> {
        let mut request = http::Request::post(&self.path)
            .header("content-length", self.body.len())
            .body(axum::body::Body::from(self.body.clone()))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(*name, value.parse()?);
        }
        Ok(request)
    }
}

/// A GitHub `push` webhook of exactly `size` bytes, signed with [`SOURCE_SECRET`], with a
/// delivery id unique to (`run`, `i`) so none is a duplicate. The body is [`push_body`]: shaped
/// and valued like a real one, so a store that compresses bodies is measured on realistic bytes.
pub fn github_webhook(source: &str, run: &str, i: usize, size: usize) -> Prepared {
    let body = push_body(i, size);
    // Checked while preparing, before any clock starts.
    assert!(
        body.len() == size || size < 400,
        "push body of {} bytes for {size}",
        body.len()
    );
    assert!(
        serde_json::from_slice::<Value>(&body).is_ok(),
        "push body is not JSON"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SOURCE_SECRET.as_bytes()).expect("any key");
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    Prepared {
        path: format!("/webhooks/{source}"),
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-github-event", "push".into()),
            ("x-github-delivery", format!("{run}-{i}")),
            ("x-hub-signature-256", signature),
        ],
        body: body.into(),
    }
}

/// Words for commit messages and file names.
const WORDS: [&str; 32] = [
    "fix",
    "add",
    "remove",
    "update",
    "refactor",
    "parser",
    "queue",
    "retry",
    "backoff",
    "cache",
    "index",
    "test",
    "docs",
    "config",
    "handler",
    "route",
    "signature",
    "payload",
    "schema",
    "client",
    "server",
    "timeout",
    "limit",
    "error",
    "metrics",
    "build",
    "deploy",
    "release",
    "typo",
    "bump",
    "deps",
    "cleanup",
];

/// A `push` payload of exactly `size` bytes (at least the fixed head's ~200): commits with
/// 40-hex ids, timestamps, authors, URLs and messages of dictionary words, as GitHub sends them,
/// so its entropy (and so what a compressor makes of it) is that of real traffic, not padding.
/// Deterministic in `i`: every run stores the same bytes.
pub fn push_body(i: usize, size: usize) -> Vec<u8> {
    // A hash chain as the deterministic random stream (no RNG dependency for the benchmark).
    let mut state: [u8; 32] = Sha256::digest(format!("push-{i}").as_bytes()).into();
    let mut next = move || -> [u8; 32] {
        state = Sha256::digest(state).into();
        state
    };
    let hex40 = |d: &[u8]| hex::encode(&d[..20]);
    let after = hex40(&next());
    let mut body = format!(
        r#"{{"ref":"refs/heads/main","before":"{}","after":"{after}","repository":{{"id":{},"full_name":"octo/bench","html_url":"https://github.com/octo/bench"}},"pusher":{{"name":"octocat","email":"octocat@github.com"}},"commits":["#,
        hex40(&next()),
        700_000 + i,
    );
    // Room kept for the closing `],"note":""}`.
    let tail = r#"],"note":""}"#;
    let mut first = true;
    loop {
        let d = next();
        let id = hex40(&d);
        let words: Vec<&str> = d[20..28]
            .iter()
            .map(|b| WORDS[*b as usize % WORDS.len()])
            .collect();
        let commit = format!(
            r#"{}{{"id":"{id}","message":"{}","timestamp":"2026-11-{:02}T{:02}:{:02}:{:02}Z","url":"https://github.com/octo/bench/commit/{id}","author":{{"name":"{}","email":"{}@users.noreply.github.com"}},"modified":["src/{}.rs","src/{}/{}.rs"]}}"#,
            if first { "" } else { "," },
            words[..5].join(" "),
            1 + d[28] % 28,
            d[29] % 24,
            d[30] % 60,
            d[31] % 60,
            words[5],
            words[5],
            words[6],
            words[7],
            words[5],
        );
        if body.len() + commit.len() + tail.len() > size {
            break;
        }
        body.push_str(&commit);
        first = false;
    }
    // The remainder: a last string field of words, then spaces (JSON whitespace) to the byte.
    body.push_str(r#"],"note":""#);
    // The closing `"}` takes the last two bytes.
    let limit = size.saturating_sub(2);
    'fill: loop {
        for b in next() {
            let word = WORDS[b as usize % WORDS.len()];
            if body.len() + word.len() + 1 > limit {
                break 'fill;
            }
            body.push_str(word);
            body.push(' ');
        }
    }
    body.push('"');
    let short = size.saturating_sub(body.len() + 1);
    body.extend(std::iter::repeat_n(' ', short));
    body.push('}');
    body.into_bytes()
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub sent: usize,
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Latency of every answered request, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        json!({
            "requests": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "requests_per_s": self.rps(),
            "p50_ms": ms(self.percentile(0.50)),
            "p99_ms": ms(self.percentile(0.99)),
            "max_ms": ms(self.max()),
        })
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Sends every request once from `concurrency` clients, each on its own connection, stopping
/// early at `limit`. A 2xx counts as ok; anything else (or a transport error) as an error.
pub async fn run(
    addr: SocketAddr,
    requests: Arc<Vec<Prepared>>,
    concurrency: usize,
    limit: Duration,
) -> anyhow::Result<LoadResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + limit;
    let mut clients = Vec::new();
    for _ in 0..concurrency.max(1) {
        let requests = requests.clone();
        let next = next.clone();
        clients.push(tokio::spawn(async move {
            client(addr, &requests, &next, deadline).await
        }));
    }
    let mut result = LoadResult {
        sent: 0,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(requests.len()),
    };
    for c in clients {
        let (ok, errors, latencies) = c.await??;
        result.ok += ok;
        result.errors += errors;
        result.latencies.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result.sent = result.ok + result.errors;
    result.latencies.sort_unstable();
    Ok(result)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn client(
    addr: SocketAddr,
    requests: &[Prepared],
    next: &AtomicUsize,
    deadline: Instant,
) -> anyhow::Result<(usize, usize, Vec<Duration>)> {
    let mut sender = connect(addr).await?;
    let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= requests.len() || Instant::now() > deadline {
            break;
        }
        let prepared = &requests[i];
        let mut request = http::Request::post(&prepared.path)
            .header("host", addr.to_string())
            .body(Full::new(prepared.body.clone()))?;
        for (name, value) in &prepared.headers {
            request.headers_mut().insert(*name, value.parse()?);
        }
        let started = Instant::now();
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        match answer {
            Ok(status) => {
                latencies.push(started.elapsed());
                if status.is_success() {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                // The connection may be gone: open another for the next request.
                sender = connect(addr).await?;
            }
        }
    }
    Ok((ok, errors, latencies))
}

/// The loop-back ceiling: an axum server (same runtime shape as `hookhub dev`) that reads the
/// body and answers 200 with a small JSON document. Prints its address like `hookhub dev`.
pub fn serve_baseline() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = axum::Router::new().fallback(|body: Bytes| async move {
            axum::Json(json!({"id": "evt_baseline", "duplicate": false, "len": body.len()}))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("baseline listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
