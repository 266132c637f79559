//! Ingest throughput: signed 1 KiB webhooks from N concurrent clients to `hookhub dev` on
//! SQLite and on moto, beside a bare axum handler on the same machine (the loop-back ceiling).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::load::{self, github_webhook, ms, LoadResult};
use crate::procs::{cpu_time, Server};
use crate::{f1, f2, table, Common};

pub const ADMIN_KEY: &str = "hh_bench_admin_key";
const BODY: usize = 1024;

/// A started `hookhub dev` with a `bench` source (GitHub scheme) and its temp data dir.
pub struct Dev {
    pub server: Server,
    _dir: tempfile::TempDir,
    _moto: Option<hookhub_tests::moto::MotoServer>,
}

impl Dev {
    pub async fn sqlite(common: &Common) -> anyhow::Result<Dev> {
        Self::start(common, None).await
    }

    pub async fn moto(common: &Common) -> anyhow::Result<Dev> {
        let moto = hookhub_tests::moto::MotoServer::start()?;
        Self::start(common, Some(moto)).await
    }

    async fn start(
        common: &Common,
        moto: Option<hookhub_tests::moto::MotoServer>,
    ) -> anyhow::Result<Dev> {
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(common.bin("hookhub")?);
        command
            .args(["dev", "--listen", "127.0.0.1:0", "--admin-key", ADMIN_KEY])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("HOOKHUB_BACKEND");
        if let Some(moto) = &moto {
            command
                .args(["--backend", "aws"])
                .env("AWS_ENDPOINT_URL", moto.endpoint())
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("HOOKHUB_TABLE_PREFIX", "bench-")
                .env("HOOKHUB_QUEUE_NAME", "bench-tasks");
        }
        let server = Server::start(command, &dir.path().join("server.log"))?;
        let dev = Dev {
            server,
            _dir: dir,
            _moto: moto,
        };
        dev.admin(
            "/v1/sources",
            json!({"id": "bench", "verify": {"scheme": "github", "secret": load::SOURCE_SECRET}}),
        )
        .await?;
        Ok(dev)
    }

    /// POSTs to the admin API and returns the answer.
    pub async fn admin(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = crate::http_client()
            .post(format!("{}{path}", self.server.base()))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {value}");
        Ok(value)
    }
}

/// One target's run: warm-up (not counted), then `n` requests; also the server's CPU time.
async fn measure(
    server: &Server,
    label: &str,
    n: usize,
    concurrency: usize,
    limit: Duration,
) -> anyhow::Result<(LoadResult, Option<Duration>)> {
    let warm: Vec<_> = (0..(n / 20).clamp(10, 500))
        .map(|i| github_webhook("bench", &format!("{label}-warm"), i, BODY))
        .collect();
    load::run(server.addr, Arc::new(warm), concurrency, limit).await?;
    let requests: Vec<_> = (0..n)
        .map(|i| github_webhook("bench", label, i, BODY))
        .collect();
    let cpu_before = cpu_time(server.pid());
    let result = load::run(server.addr, Arc::new(requests), concurrency, limit).await?;
    let cpu = cpu_time(server.pid()).zip(cpu_before).map(|(a, b)| a - b);
    Ok((result, cpu))
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    let (n, concurrency, limit) = if common.smoke {
        (200, 8, Duration::from_secs(10))
    } else {
        (
            common.requests,
            common.concurrency,
            Duration::from_secs(120),
        )
    };
    let mut results: Vec<(String, LoadResult, Option<Duration>)> = Vec::new();

    let exe = std::env::current_exe()?;
    let log_dir = tempfile::tempdir()?;
    let mut baseline = Command::new(exe);
    baseline.arg("serve-baseline");
    let ceiling = Server::start(baseline, &log_dir.path().join("baseline.log"))?;
    let (r, cpu) = measure(&ceiling, "ceiling", n, concurrency, limit).await?;
    results.push(("axum 200 (ceiling)".into(), r, cpu));
    drop(ceiling);

    let dev = Dev::sqlite(common).await?;
    let (r, cpu) = measure(&dev.server, "sqlite", n, concurrency, limit).await?;
    results.push(("hookhub dev (sqlite)".into(), r, cpu));
    drop(dev);

    if !common.no_moto {
        // moto is one Python process serving four AWS calls per webhook: past a few clients
        // it times out (the SDK's 10 s attempts), so it gets fewer requests and clients.
        let n_moto = if common.smoke { 20 } else { (n / 40).max(100) };
        let dev = Dev::moto(common).await?;
        let (r, cpu) = measure(&dev.server, "moto", n_moto, concurrency.min(8), limit).await?;
        results.push(("hookhub dev --backend aws (moto)".into(), r, cpu));
    }

    let ceiling_rps = results[0].1.rps();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (name, r, cpu) in &results {
        let clients = if name.contains("moto") {
            concurrency.min(8)
        } else {
            concurrency
        };
        let ratio = r.rps() / ceiling_rps;
        let cpu_per_req = cpu.map(|c| ms(c) * 1000.0 / r.sent.max(1) as f64);
        rows.push(vec![
            name.clone(),
            r.sent.to_string(),
            clients.to_string(),
            f1(r.rps()),
            f2(ms(r.percentile(0.5))),
            f2(ms(r.percentile(0.99))),
            f2(ms(r.max())),
            r.errors.to_string(),
            f2(ratio),
            cpu_per_req.map(f1).unwrap_or_else(|| "-".into()),
        ]);
        let mut entry = r.json();
        entry["target"] = json!(name);
        entry["concurrency"] = json!(clients);
        entry["ratio_to_ceiling"] = json!(ratio);
        entry["server_cpu_us_per_request"] = json!(cpu_per_req);
        targets.push(entry);
    }
    table(
        &format!("ingest: signed {BODY} B webhooks, 127.0.0.1"),
        &[
            "target",
            "requests",
            "clients",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "x ceiling",
            "server CPU µs/req",
        ],
        &rows,
    );
    Ok(json!({"body_bytes": BODY, "targets": targets}))
}
