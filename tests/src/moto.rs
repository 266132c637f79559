//! AWS emulation for tests: a `moto_server` process (PyPI `moto[server]`) on 127.0.0.1.
//!
//! One server is shared by every test of a test binary ([`shared_moto`]); each test gets its own
//! tables and queues under a unique name prefix ([`fresh_aws`]), so tests stay independent and
//! run in parallel. Every test builds its own SDK clients: a client's connection pool belongs
//! to the runtime it first ran on, and each `#[tokio::test]` has its own runtime.
//!
//! The server runs under a small `sh` watchdog that reads the pipe on its stdin: when the test
//! process exits in any way (the shared server lives in a static, which is never dropped) or a
//! [`MotoServer`] is dropped, the pipe closes and the watchdog kills the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hookhub::aws::aws_config::{ConfigLoader, Region, SdkConfig};
use hookhub::aws::aws_sdk_dynamodb::config::Credentials;
use hookhub::aws::{Aws, AwsSettings};
use hookhub::ports::Backend;

/// The region every test resource lives in.
pub const REGION: &str = "us-east-1";
/// How long the server may take to answer after starting (Python imports are slow on CI).
const STARTUP: Duration = Duration::from_secs(60);

/// Starts moto and kills the whole process group when stdin reaches EOF (removing the log) or
/// when moto exits by itself (keeping the log, to diagnose). `$0` is the moto_server program.
const WATCHDOG: &str = r#"
exec 3<&0
"$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 </dev/null 3<&- &
moto=$!
{ cat >/dev/null <&3; rm -f "$2"; kill 0; } &
wait "$moto"
kill 0
"#;

/// A running `moto_server`; killed on drop.
pub struct MotoServer {
    endpoint: String,
    log: PathBuf,
    child: Child,
    /// Closing this pipe tells the watchdog to kill the server.
    stdin: Option<ChildStdin>,
}

impl MotoServer {
    /// Starts a server on a free port and waits until it answers HTTP. The program is
    /// `$MOTO_SERVER`, else `tests/moto_server.py` (moto_server with DynamoDB transactions
    /// isolated, see that file).
    pub fn start() -> std::io::Result<Self> {
        let mut last_error = None;
        // Another process may grab the port between our probe and moto's bind: try again.
        for _ in 0..3 {
            match Self::start_once() {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one try"))
    }

    fn start_once() -> std::io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let program = std::env::var("MOTO_SERVER")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py").into());
        let log =
            std::env::temp_dir().join(format!("hookhub-moto-{}-{port}.log", std::process::id()));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&program)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so `kill 0` reaches moto and the watchdog only.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        let mut server = MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            child,
            stdin,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if answers_http(port) {
                return Ok(server);
            }
            if server.child.try_wait()?.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                return Err(std::io::Error::other(format!(
                    "{program} did not answer on port {port} (is `moto[server]` installed? \
                     pip install 'moto[server]'); log tail, newest first:\n{tail}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The endpoint URL for the SDK, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's output (request log, tracebacks).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The watchdog did not react: end its process group (its id is the watchdog's pid).
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// The server shared by all tests of this binary, started on first use.
pub fn shared_moto() -> &'static MotoServer {
    static SHARED: OnceLock<MotoServer> = OnceLock::new();
    SHARED.get_or_init(|| MotoServer::start().unwrap_or_else(|e| panic!("starting moto: {e}")))
}

/// An SDK config for `endpoint` with dummy credentials and a fixed region, set explicitly so
/// nothing depends on (or changes) the process environment.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    sdk_config_loader_for(endpoint).load().await
}

/// The loader behind [`sdk_config_for`], for a test that adjusts more (e.g. the retry backoff).
pub fn sdk_config_loader_for(endpoint: &str) -> ConfigLoader {
    hookhub::aws::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
}

/// An SDK config for the shared server.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_for(shared_moto().endpoint()).await
}

/// A name prefix no other test of this binary uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("hh{}-", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Fresh, empty tables and queues on the shared server, with clients for them.
pub async fn fresh_aws() -> Aws {
    let aws = Aws::new(
        &sdk_config().await,
        AwsSettings::with_prefix(&unique_prefix()),
    );
    aws.ensure_resources()
        .await
        .unwrap_or_else(|e| panic!("creating test resources on moto: {e}"));
    aws
}

/// Every item of a (small, test-sized) table, read consistently: what the code wrote, keys
/// and all.
pub async fn scan_items(
    aws: &Aws,
    table: &str,
) -> Vec<std::collections::HashMap<String, hookhub::aws::aws_sdk_dynamodb::types::AttributeValue>> {
    aws.dynamodb()
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .expect("Scan")
        .items
        .unwrap_or_default()
}

/// A backend on fresh resources: the contract suite's constructor.
pub async fn aws_backend() -> Backend {
    fresh_aws()
        .await
        .backend()
        .await
        .unwrap_or_else(|e| panic!("AWS backend on moto: {e}"))
}

/// An item of the events table by id, read consistently under the layout's key
/// ([`Aws::events_table_key`]): what the code wrote, keys and all.
pub async fn events_item(
    aws: &Aws,
    id: &str,
) -> Option<std::collections::HashMap<String, hookhub::aws::aws_sdk_dynamodb::types::AttributeValue>>
{
    aws.dynamodb()
        .get_item()
        .table_name(&aws.settings().events_table)
        .set_key(Some(aws.events_table_key(id)))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
}

/// Creates `table` (on demand) keyed by `hash` and `range`, all strings: a table of another
/// layout than the one `ensure_resources` would make, for the tests that it is refused.
pub async fn create_table_keyed(aws: &Aws, table: &str, hash: &str, range: Option<&str>) {
    use hookhub::aws::aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut request = aws
        .dynamodb()
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [(Some(hash), KeyType::Hash), (range, KeyType::Range)] {
        let Some(name) = name else { continue };
        request = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .expect("key schema"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attribute"),
            );
    }
    request.send().await.expect("CreateTable");
}
