//! The local server's limits against real sockets: oversized headers (431), oversized bodies
//! that the client still reads the 413 of, stalled and idle connections, the connection cap,
//! graceful shutdown.

use std::time::{Duration, Instant};

use hookhub::delivery::DeliveryOptions;
use hookhub::local::{LocalConfig, LocalServer};
use hookhub::server::ServerOptions;
use hookhub::sqlite::SqliteBackend;
use hookhub_tests::raw::{chunked, exchange, head, read_response, wait_closed};
use hookhub_tests::{temp_dir, wait_until, DevOptions, DevServer, ADMIN_KEY};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

/// A source that accepts anything: whatever is refused here is refused for its size alone.
async fn open_source(base: &str) {
    let (status, body) = hookhub_tests::Admin {
        base: base.to_string(),
        http: hookhub_tests::http_client(),
    }
    .call(
        reqwest::Method::POST,
        "/v1/sources",
        Some(json!({"id": "open", "verify": {"scheme": "none"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn stored_events(server: &DevServer) -> usize {
    server.admin().get("/v1/events?limit=100").await["data"]
        .as_array()
        .unwrap()
        .len()
}

/// `count` headers `x-pad-{i}` of 10,000 bytes each.
fn padding(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-pad-{i}"), "a".repeat(10_000)))
        .collect()
}

fn with_padding(
    mut headers: Vec<(&str, String)>,
    pad: &[(String, String)],
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> =
        headers.drain(..).map(|(n, v)| (n.to_string(), v)).collect();
    all.extend_from_slice(pad);
    all
}

fn raw_head(method: &str, path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let borrowed: Vec<(&str, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    head(method, path, &borrowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_a_json_431_and_nothing_is_stored() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    open_source(&server.base).await;
    let request = |pad: usize, body: &[u8]| {
        let headers = with_padding(
            vec![("content-length", body.len().to_string())],
            &padding(pad),
        );
        let mut bytes = raw_head("POST", "/webhooks/open", &headers);
        bytes.extend_from_slice(body);
        bytes
    };

    // 50 KB of headers: under the 64 KiB default, stored with the event.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let accepted = exchange(&mut stream, &request(5, b"{}\n"), WAIT)
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.head);
    assert_eq!(stored_events(&server).await, 1);

    // 70 KB: over the limit. The JSON 431, on a 3-byte body as in the report and on a 2 MiB
    // one (read off the socket so the client gets the answer; the connection stays usable).
    for body in [b"{}\n".to_vec(), vec![b'x'; 2 * 1024 * 1024]] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let refused = exchange(&mut stream, &request(7, &body), WAIT)
            .await
            .unwrap();
        refused.assert_json_error(431, "headers_too_large");
        assert_eq!(refused.header("connection"), None);
        let health = exchange(&mut stream, &head("GET", "/healthz", &[]), WAIT)
            .await
            .unwrap();
        assert_eq!(health.status, 200);
    }

    // 350 KB (the report's case) is past hyper's head limit (64 KiB + 16 KiB here): hyper
    // answers a bare 431 and closes, possibly before the client reads it (documented).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    match exchange(&mut stream, &request(35, b"{}\n"), WAIT).await {
        Ok(response) => assert_eq!(response.status, 431, "{}", response.head),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        ),
    }

    assert_eq!(stored_events(&server).await, 1, "nothing more stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_whole_oversized_body_reads_the_413() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    open_source(&server.base).await;
    let body = vec![b'x'; 2 * 1024 * 1024];
    let declared = {
        let mut r = head(
            "POST",
            "/webhooks/open",
            &[("content-length", body.len().to_string())],
        );
        r.extend_from_slice(&body);
        r
    };
    let streamed = {
        let mut r = head(
            "POST",
            "/webhooks/open",
            &[("transfer-encoding", "chunked".to_string())],
        );
        r.extend_from_slice(&chunked(&body, 16 * 1024));
        r
    };
    // Answering while the client still sends makes the 413 a reset about half the time:
    // several rounds each.
    for round in 0..5 {
        for (name, request) in [("content-length", &declared), ("chunked", &streamed)] {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            let response = exchange(&mut stream, request, WAIT)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {name}: {e}"));
            response.assert_json_error(413, "payload_too_large");
            // Read to its end: the connection is still good for the next request.
            let health = exchange(&mut stream, &head("GET", "/healthz", &[]), WAIT)
                .await
                .unwrap();
            assert_eq!(health.status, 200, "round {round}, {name}");
        }
    }
    assert_eq!(stored_events(&server).await, 0);
}

fn short_timeouts() -> DevOptions {
    DevOptions {
        server: ServerOptions {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(1),
            ..ServerOptions::default()
        },
        ..DevOptions::default()
    }
}

/// Writes `bytes` one at a time, every 100 ms, until the server closes the connection.
fn trickle(mut stream: tokio::net::tcp::OwnedWriteHalf, bytes: &'static [u8]) {
    tokio::spawn(async move {
        for byte in bytes.iter().cycle() {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_disconnected() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), short_timeouts()).await;
    open_source(&server.base).await;

    // Headers a byte at a time: closed once the header read timeout passes.
    let started = Instant::now();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(b"POST /webhooks/open HTTP/1.1\r\n")
        .await
        .unwrap();
    trickle(write, b"x-slow: 1\r\n");
    assert!(
        wait_closed(&mut read, WAIT).await.is_ok(),
        "a header trickle must be cut off"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    // A body a byte at a time: each byte is on time, the whole is not. 408, then closed.
    let started = Instant::now();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(&head(
            "POST",
            "/webhooks/open",
            &[("content-length", "1000".to_string())],
        ))
        .await
        .unwrap();
    trickle(write, b"x");
    let response = read_response(&mut read, WAIT).await.unwrap();
    response.assert_json_error(408, "body_timeout");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Kept alive after a request, then silent: closed after the idle timeout.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let health = exchange(&mut stream, &head("GET", "/healthz", &[]), WAIT)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    assert!(wait_closed(&mut stream, WAIT).await.is_ok());

    assert_eq!(stored_events(&server).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let dir = temp_dir();
    let options = DevOptions {
        server: ServerOptions {
            max_connections: 2,
            ..ServerOptions::default()
        },
        ..DevOptions::default()
    };
    let server = DevServer::start(dir.path(), options).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let health = exchange(&mut stream, &head("GET", "/healthz", &[]), WAIT)
            .await
            .unwrap();
        assert_eq!(health.status, 200);
        held.push(stream); // kept alive: both slots taken
    }
    // A third connection is queued, not refused, and not served...
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third
        .write_all(&head("GET", "/healthz", &[]))
        .await
        .unwrap();
    let early = read_response(&mut third, Duration::from_millis(500)).await;
    assert_eq!(
        early.map(|r| r.status).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "served beyond the limit"
    );
    // ...until a slot frees.
    drop(held.pop());
    let served = read_response(&mut third, WAIT).await.unwrap();
    assert_eq!(served.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_accepts_no_more() {
    let sqlite = SqliteBackend::open_in_memory().unwrap();
    let wake = sqlite.notifier();
    let config = LocalConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_key: ADMIN_KEY.to_string(),
        receiver: Default::default(),
        dispatcher: Default::default(),
        worker: Default::default(),
        delivery: DeliveryOptions {
            allow_private_targets: true,
            ..DeliveryOptions::default()
        },
        server: ServerOptions::default(),
    };
    let server = LocalServer::start(sqlite.into_backend(), Some(wake), config)
        .await
        .unwrap();
    let addr = server.addr;
    open_source(&format!("http://{addr}")).await;

    // A request whose handler is reading its body: `100 Continue` says the server started
    // reading it.
    let body = br#"{"type":"late"}"#;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let interim = exchange(
        &mut stream,
        &head(
            "POST",
            "/webhooks/open",
            &[
                ("content-length", body.len().to_string()),
                ("expect", "100-continue".to_string()),
            ],
        ),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(interim.status, 100);

    let stopping = tokio::spawn(server.shutdown());
    wait_until(WAIT, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    })
    .await
    .expect("no new connections once shutting down");
    assert!(!stopping.is_finished(), "a request is still in flight");

    let response = exchange(&mut stream, body, WAIT).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(response.json()["id"].as_str().unwrap().starts_with("evt_"));
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown returns once the request is done")
        .unwrap();
}
