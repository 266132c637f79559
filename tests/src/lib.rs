//! Test harness: real HTTP subscriber sinks on 127.0.0.1, a dev server that can be crashed and
//! restarted on the same data dir, and a small admin API client.

pub mod moto;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hookhub::decision::HealthPolicy;
use hookhub::delivery::DeliveryOptions;
use hookhub::dispatch::DispatcherConfig;
use hookhub::ingest::ReceiverConfig;
use hookhub::local::{LocalConfig, LocalServer};
use hookhub::ports::Backend;
use hookhub::retry::RetryPolicy;
use hookhub::server::ServerOptions;
use hookhub::sqlite::SqliteBackend;
use hookhub::worker::WorkerOptions;
use serde_json::Value;

pub mod capacity;
pub mod cost_model;
pub mod faults;
pub mod proxy;
pub mod raw;
pub mod recorder;
pub mod routes;
pub mod throttle;

/// An HTTP client for tests. reqwest is built without a crypto provider (`rustls-no-provider`,
/// so no aws-lc-rs is linked into the functions when a build unifies features); this installs
/// ring, the provider the product itself installs.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub const ADMIN_KEY: &str = "hh_test_admin_key";

/// One request a sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Checks the Standard Webhooks signature with the subscription's secret, as a subscriber
    /// would.
    pub fn signature_valid(&self, secret: &str) -> bool {
        let key = hookhub::signing::decode_secret(secret).expect("whsec secret");
        let ts: i64 = self.header("webhook-timestamp").parse().expect("timestamp");
        hookhub::signing::signature_matches(
            &key,
            self.header("webhook-id"),
            ts,
            &self.body,
            self.header("webhook-signature"),
        )
    }
}

#[derive(Default)]
struct SinkState {
    received: Vec<Received>,
    /// Statuses to answer, in order; 200 once empty.
    script: VecDeque<(u16, Vec<(String, String)>)>,
    delay: Duration,
    /// Answer 503 to everything (an outage), whatever the script says.
    down: bool,
}

/// A subscriber endpoint: a real HTTP server recording every request.
#[derive(Clone)]
pub struct Sink {
    pub url: String,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    pub async fn start() -> Sink {
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move {
                let (delay, answer) = {
                    let mut s = shared.lock().unwrap();
                    s.received.push(Received { headers, body });
                    let answer = if s.down {
                        Some((503, Vec::new()))
                    } else {
                        s.script.pop_front()
                    };
                    (s.delay, answer)
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let (status, headers) = answer.unwrap_or((200, Vec::new()));
                let mut response = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
                for (k, v) in headers {
                    response.headers_mut().insert(
                        axum::http::HeaderName::try_from(k).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sink {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    /// Answers these statuses to the next requests, then 200.
    pub fn script(&self, statuses: &[u16]) {
        let mut s = self.state.lock().unwrap();
        s.script
            .extend(statuses.iter().map(|status| (*status, Vec::new())));
    }

    pub fn script_with_headers(&self, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state
            .lock()
            .unwrap()
            .script
            .push_back((status, headers));
    }

    /// An outage: every request gets 503 until `set_down(false)` (requests are still recorded).
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx so far are not tracked separately: scripts make that explicit.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Asserts that no request beyond the first `n` arrives within `period`.
    pub async fn assert_no_more_than(&self, n: usize, period: Duration) {
        holds_for(period, || self.count() <= n)
            .await
            .unwrap_or_else(|_| panic!("sink got {} requests, expected at most {n}", self.count()));
    }

    /// Waits until at least `n` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        wait_until(timeout, || self.count() >= n)
            .await
            .unwrap_or_else(|_| panic!("sink got {} requests, expected {n}", self.count()));
        self.received()
    }
}

/// Polls `check` every 20 ms until `period` has passed: `Err` as soon as it fails. For what must
/// NOT happen ("nothing more happens"), so the wait has a deadline and still fails fast.
pub async fn holds_for(period: Duration, mut check: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + period;
    loop {
        if !check() {
            return Err(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if check() {
        Ok(())
    } else {
        Err(())
    }
}

/// [`wait_until`] for a check that has to await (a store read).
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut check: F) -> Result<(), ()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if check().await {
        Ok(())
    } else {
        Err(())
    }
}

/// A dev server (SQLite) running on its own runtime, so a test can kill it abruptly — every
/// task dropped mid-flight, as in a crash — and start another on the same data dir.
pub struct DevServer {
    pub base: String,
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone)]
pub struct DevOptions {
    pub retry_schedule: Vec<Duration>,
    pub max_body_bytes: usize,
    pub visibility_timeout: Duration,
    /// How old an unenqueued event must be before the sweep enqueues it.
    pub sweep_grace: Duration,
    /// SSRF guard off (the default, so sinks on 127.0.0.1 work); false turns it on for both the
    /// deliveries and the admin API's check of subscription URLs.
    pub allow_private_targets: bool,
    /// HTTP timeouts and connection limit.
    pub server: ServerOptions,
    /// Circuit breaker and auto-disable (the product's defaults unless a test compresses them).
    pub health: HealthPolicy,
    /// How far ahead a rate-limited delivery waits in-process for its slot before it is parked
    /// instead (the product's default unless a test compresses it).
    pub rate_limit_max_wait: Duration,
    /// `GET /metrics` without the admin key (`--metrics-public`).
    pub metrics_public: bool,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            // Compressed schedule: the retry path runs in well under a second.
            retry_schedule: vec![Duration::from_millis(200); 3],
            max_body_bytes: 256 * 1024,
            visibility_timeout: Duration::from_secs(30),
            sweep_grace: Duration::from_secs(1),
            allow_private_targets: true,
            server: ServerOptions::default(),
            health: HealthPolicy::default(),
            rate_limit_max_wait: DispatcherConfig::default().rate_limit_max_wait,
            metrics_public: false,
        }
    }
}

impl DevOptions {
    /// A subscription failing for `after` is disabled (`failing`); no breaker, and enough quick
    /// retries to keep failing that long.
    pub fn disabling_after(after: Duration) -> Self {
        Self {
            retry_schedule: vec![Duration::from_millis(200); 50],
            health: HealthPolicy {
                breaker_threshold: 0,
                disable_after: Some(after),
                ..HealthPolicy::default()
            },
            ..Self::default()
        }
    }
}

impl DevServer {
    pub async fn start(data_dir: &Path, options: DevOptions) -> DevServer {
        Self::start_wrapped(data_dir, options, |backend| backend).await
    }

    /// Starts with the backend passed through `wrap` first (fault injection).
    pub async fn start_wrapped(
        data_dir: &Path,
        options: DevOptions,
        wrap: impl FnOnce(Backend) -> Backend + Send + 'static,
    ) -> DevServer {
        let db = data_dir.join("hookhub.db");
        Self::start_on(options, async move {
            let sqlite = SqliteBackend::open(&db).expect("open sqlite");
            sqlite
                .release_inflight()
                .await
                .expect("release in-flight tasks");
            let wake = sqlite.notifier();
            (wrap(sqlite.into_backend()), Some(wake))
        })
        .await
    }

    /// Starts on whatever backend `make_backend` builds (run on the server's own runtime, so
    /// its clients die with it).
    pub async fn start_on(
        options: DevOptions,
        make_backend: impl std::future::Future<Output = (Backend, Option<Arc<tokio::sync::Notify>>)>
            + Send
            + 'static,
    ) -> DevServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let (backend, wake) = make_backend.await;
            let mut retry = RetryPolicy::with_schedule(options.retry_schedule);
            retry.jitter = 0.0;
            let config = LocalConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                admin_key: ADMIN_KEY.to_string(),
                receiver: ReceiverConfig {
                    max_body_bytes: options.max_body_bytes,
                    ..ReceiverConfig::default()
                },
                dispatcher: DispatcherConfig {
                    health: options.health,
                    retry,
                    rate_limit_max_wait: options.rate_limit_max_wait,
                    ..DispatcherConfig::default()
                },
                worker: WorkerOptions {
                    visibility_timeout: options.visibility_timeout,
                    idle_poll: Duration::from_millis(50),
                    sweep_every: Duration::from_millis(500),
                    sweep_grace: options.sweep_grace,
                    ..WorkerOptions::default()
                },
                delivery: DeliveryOptions {
                    allow_private_targets: options.allow_private_targets,
                    ..DeliveryOptions::default()
                },
                server: options.server,
            };
            let metrics = hookhub::local::LocalMetrics {
                public: options.metrics_public,
                queue: None,
            };
            let server = LocalServer::start_observed(backend, wake, config, metrics)
                .await
                .expect("start dev server");
            let _ = tx.send(server.addr);
            // Keep the handle alive for the runtime's lifetime.
            std::future::pending::<()>().await;
            drop(server);
        });
        let addr = rx.await.expect("dev server started");
        DevServer {
            base: format!("http://{addr}"),
            addr,
            runtime: Some(runtime),
        }
    }

    /// Kills everything at once: no graceful shutdown, requests and deliveries cut mid-flight.
    pub fn crash(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    pub fn admin(&self) -> Admin {
        Admin {
            base: self.base.clone(),
            http: http_client(),
        }
    }

    pub fn ingest_url(&self, source: &str) -> String {
        format!("{}/webhooks/{source}", self.base)
    }

    /// Creates a source `id` that accepts any request (`"scheme": "none"`, no dedup).
    pub async fn open_source(&self, id: &str) {
        self.admin()
            .post(
                "/v1/sources",
                serde_json::json!({"id": id, "verify": {"scheme": "none"}}),
            )
            .await;
    }

    /// Posts a JSON webhook to `source` (one that accepts it unsigned); returns the event id.
    pub async fn post_event(&self, source: &str, body: &str) -> String {
        let response = http_client()
            .post(self.ingest_url(source))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("webhook request");
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "POST /webhooks/{source}: {status} {answer}"
        );
        answer["id"].as_str().expect("event id").to_owned()
    }

    /// An event's attempt log, through the admin API.
    pub async fn attempts(&self, event_id: &str) -> Vec<Value> {
        self.admin()
            .get(&format!("/v1/events/{event_id}/attempts"))
            .await["data"]
            .as_array()
            .expect("attempts list")
            .clone()
    }

    /// Polls an event's attempt log until `done` holds (20 s at most); returns the log.
    pub async fn wait_for_attempts(
        &self,
        event_id: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.attempts(event_id).await;
            if done(&log) {
                return log;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "attempt log never reached the expected state: {log:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A minimal admin API client.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Admin {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {value}"
        );
        value
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    /// `GET` of a listing: its `data` array.
    pub async fn list(&self, path: &str) -> Vec<Value> {
        match self.get(path).await {
            Value::Object(mut body) => match body.remove("data") {
                Some(Value::Array(items)) => items,
                other => panic!("GET {path}: no data array but {other:?}"),
            },
            other => panic!("GET {path}: {other}"),
        }
    }
}

/// The stored operational events (source `hookhub`), newest first, with their JSON bodies.
pub async fn operational_events(backend: &Backend) -> Vec<(hookhub::domain::Event, Value)> {
    let query = hookhub::ports::EventQuery {
        source_id: Some(hookhub::operational::SOURCE_ID.into()),
        before: None,
        limit: 1000,
    };
    let mut events = Vec::new();
    for summary in backend.events.list_events(&query).await.expect("list") {
        let event = backend
            .events
            .get_event(&summary.id)
            .await
            .expect("get")
            .expect("listed, so stored");
        let body = serde_json::from_slice(&event.body).expect("a JSON body");
        events.push((event, body));
    }
    events
}

/// A temp dir kept for the whole test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

/// The backends a dev server runs on, for checks that must hold on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    /// DynamoDB + SQS on the shared moto server, on fresh tables and queues.
    Moto,
}

/// A dev server on `kind`, with the temp dir that holds its data (SQLite) for the test's life.
pub async fn start_dev(kind: BackendKind, options: DevOptions) -> (DevServer, tempfile::TempDir) {
    let (server, dir, _) = start_dev_on(kind, options).await;
    (server, dir)
}

/// Like [`start_dev`], plus a second handle on the server's stores and queue, made on the
/// caller's runtime (a second SQLite connection to the same file; clients on the same moto
/// tables and queues), for tests that put tasks on the queue or read the stores directly.
pub async fn start_dev_with_store(
    kind: BackendKind,
    options: DevOptions,
) -> (DevServer, tempfile::TempDir, Backend) {
    let (server, dir, settings) = start_dev_on(kind, options).await;
    let store = match settings {
        None => SqliteBackend::open(&dir.path().join("hookhub.db"))
            .expect("open sqlite")
            .into_backend(),
        Some(settings) => hookhub::aws::Aws::new(&moto::sdk_config().await, settings)
            .backend()
            .await
            .expect("AWS backend on moto"),
    };
    (server, dir, store)
}

/// The server, its data dir, and its AWS settings on moto.
async fn start_dev_on(
    kind: BackendKind,
    options: DevOptions,
) -> (
    DevServer,
    tempfile::TempDir,
    Option<hookhub::aws::AwsSettings>,
) {
    let dir = temp_dir();
    match kind {
        BackendKind::Sqlite => (DevServer::start(dir.path(), options).await, dir, None),
        BackendKind::Moto => {
            let settings = hookhub::aws::AwsSettings::with_prefix(&moto::unique_prefix());
            let on_server = settings.clone();
            let server = DevServer::start_on(options, async move {
                // Clients are built on the server's runtime so they die with it.
                let aws = hookhub::aws::Aws::new(&moto::sdk_config().await, on_server);
                aws.ensure_resources().await.expect("moto resources");
                (aws.backend().await.expect("AWS backend on moto"), None)
            })
            .await;
            (server, dir, Some(settings))
        }
    }
}

/// Runs an `async fn(BackendKind)` check as one test per backend: `mod sqlite` and `mod moto`.
#[macro_export]
macro_rules! on_both_backends {
    ($($check:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check($crate::BackendKind::Sqlite).await;
                }
            )+
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check($crate::BackendKind::Moto).await;
                }
            )+
        }
    };
}
