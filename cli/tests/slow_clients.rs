//! A real `hookhub dev` process under a stall of slow uploads from 127.0.0.1: its memory
//! (RSS) before, during and after, and the server closing every stalled connection.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookhub_tests::raw::{head, read_response, wait_closed};
use hookhub_tests::wait_until;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(60);
/// Stalled uploads: each sends its head and most of a 250 KB body, then nothing more.
const STALLED: usize = 400;
const DECLARED: usize = 250_000;
const SENT: usize = 240_000;
const MIB: u64 = 1024 * 1024;
/// RSS after the stall may exceed the baseline by this much: a tenth of what the stall held
/// (~92 MiB of bodies), well above what the allocator keeps for reuse, far below a leak
/// of the stalled buffers.
const AFTER_STALL_SLACK: u64 = 12 * MIB;

struct DevProcess {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl DevProcess {
    fn start(flags: &[&str]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookhub"))
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--admin-key",
                "k",
                "--data-dir",
            ])
            .arg(data.path())
            .args(flags)
            .env("RUST_LOG", "warn")
            .env_remove("HOOKHUB_BACKEND")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hookhub dev");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let addr = first
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            _data: data,
        }
    }

    /// Resident set size, from /proc.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kib * 1024
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upload_head() -> Vec<u8> {
    head(
        "POST",
        "/webhooks/nowhere",
        &[("content-length", DECLARED.to_string())],
    )
}

/// A whole request: read, answered (404: no such source) and forgotten.
async fn complete_upload(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&upload_head()).await.unwrap();
    stream.write_all(&vec![b'x'; DECLARED]).await.unwrap();
    let response = read_response(&mut stream, WAIT).await.unwrap();
    assert_eq!(response.status, 404);
}

/// Sends the head and `SENT` bytes of body, stalls, and returns the status the server
/// answered before closing the connection.
async fn stalled_upload(addr: SocketAddr) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&upload_head()).await.unwrap();
    stream.write_all(&vec![b'x'; SENT]).await.unwrap();
    let response = read_response(&mut stream, WAIT).await.unwrap();
    assert!(
        wait_closed(&mut stream, WAIT).await.is_ok(),
        "the server closes a stalled upload"
    );
    response.status
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_cut_off_and_their_memory_returned() {
    let server = DevProcess::start(&[
        "--header-read-timeout",
        "2s",
        "--body-read-timeout",
        "4s",
        "--idle-timeout",
        "2s",
    ]);
    let addr = server.addr;

    // Warm up (runtime threads, buffers, the database) with ordinary uploads.
    for _ in 0..3 {
        let uploads: Vec<_> = (0..20)
            .map(|_| tokio::spawn(complete_upload(addr)))
            .collect();
        for upload in uploads {
            upload.await.unwrap();
        }
    }
    let baseline = server.rss();

    // The stall, plus one client trickling its headers.
    let started = Instant::now();
    let uploads: Vec<_> = (0..STALLED)
        .map(|_| tokio::spawn(stalled_upload(addr)))
        .collect();
    let header_trickle = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = upload_head();
        for byte in &request[..request.len() - 2] {
            if stream.write_all(&[*byte]).await.is_err() {
                break; // closed by the server
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_closed(&mut stream, WAIT).await
    });
    let mut peak = baseline;
    wait_until(WAIT, || {
        peak = peak.max(server.rss());
        uploads.iter().all(|u| u.is_finished())
    })
    .await
    .expect("every stalled upload ends");
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), 408, "a stalled body is answered 408");
    }
    assert!(
        header_trickle.await.unwrap().is_ok(),
        "a header trickle is cut off"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));

    // Memory held for the stall is given back once it ends.
    let mut after = server.rss();
    let settled = wait_until(Duration::from_secs(20), || {
        after = server.rss();
        after <= baseline + AFTER_STALL_SLACK
    })
    .await;
    eprintln!(
        "RSS: baseline {}, peak during the stall {}, after {}",
        mib(baseline),
        mib(peak),
        mib(after)
    );
    assert!(
        peak >= baseline + (STALLED * SENT / 4) as u64,
        "the stall did hold memory (peak {}), so the test measures something",
        mib(peak)
    );
    assert!(
        settled.is_ok(),
        "RSS after the stall {} > baseline {} + {}",
        mib(after),
        mib(baseline),
        mib(AFTER_STALL_SLACK)
    );
}
