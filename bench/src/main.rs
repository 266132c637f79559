//! `hookhub-bench`: Hookhub's macro benchmarks. Each prints a readable table and adds its numbers
//! to one JSON summary. Every load targets 127.0.0.1 only and is bounded in count and time.
//!
//! ```text
//! hookhub-bench all [--smoke]        # everything below, in one run
//! hookhub-bench ingest | handler | delivery | rate-limit | coldstart | micro-report
//! ```
//!
//! See `bench/README.md` for what each measures and how to read it.

mod coldstart;
mod cost;
mod cost_measure;
mod delivery;
mod handler;
mod ingest;
mod load;
mod micro_report;
mod procs;
mod rate_limit;
mod retention;

/// An HTTP client for the benchmark's own calls: reqwest is built without a crypto provider
/// (`rustls-no-provider`, so no aws-lc-rs is linked into the functions when one build covers
/// them and this crate); this installs ring, as the product does.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "hookhub-bench", about = "Hookhub macro benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest, handler, delivery, retention, cold start and cost, then the micro report when
    /// present.
    All(Common),
    /// N concurrent clients POSTing signed 1 KiB webhooks to `hookhub dev` (SQLite, moto) and
    /// to a bare axum handler (the loop-back ceiling).
    Ingest(Common),
    /// The receiver handler in process on a backend that does no I/O: p50/p99 per request.
    Handler(Common),
    /// A burst of events fanned out to K local sinks, with one slow (2 s) subscriber.
    Delivery(Common),
    /// Each Lambda binary under a local Runtime API stand-in: init, first and warm invocations,
    /// binary size, peak RSS; then the cost per million webhooks.
    Coldstart(Common),
    /// Ingest latency on SQLite while the retention sweep deletes a million expired rows.
    Retention(Common),
    /// A burst to a subscription with a rate limit: the delivered rate as a ratio to the limit.
    RateLimit(Common),
    /// The criterion results under target/criterion as one table with ratios to the raw MAC.
    MicroReport(Common),
    /// The measured cost model: every DynamoDB and SQS call of N webhooks on moto, recorded
    /// and priced, for 1 and 10 subscribers and 1 KiB / 64 KiB bodies.
    Cost(CostArgs),
    /// (internal) The bare axum server used as the loop-back ceiling.
    #[command(hide = true)]
    ServeBaseline,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Seconds-long run with tiny counts: proves the benchmarks still work (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Where `hookhub`, `receiver`, `dispatcher` and `admin` are (default: beside this binary,
    /// i.e. the same cargo profile).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Concurrent clients for the ingest benchmark.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per ingest target (SQLite and the ceiling); moto gets a fortieth, on 8 clients.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Events per delivery burst.
    #[arg(long, default_value_t = 1_000)]
    pub events: usize,
    /// Skip the moto (AWS emulation) parts.
    #[arg(long)]
    pub no_moto: bool,
    /// Write the JSON summary here too.
    #[arg(long, default_value = "target/bench/summary.json")]
    pub out: PathBuf,
    /// Where criterion wrote its results (micro-report).
    #[arg(long, default_value = "target/criterion")]
    pub criterion_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CostArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also write `bench/cost.json` and the generated cost sections of README.md and
    /// bench/README.md under this repository root.
    #[arg(long)]
    pub write_docs: Option<PathBuf>,
    /// Receiver warm duration (ms) to price, as measured by `coldstart`.
    #[arg(long, default_value_t = cost_measure::RECEIVER_WARM_MS)]
    pub receiver_ms: f64,
    /// Dispatcher warm duration per task (ms) to price, as measured by `coldstart`.
    #[arg(long, default_value_t = cost_measure::DISPATCHER_WARM_MS)]
    pub dispatcher_ms: f64,
}

impl Common {
    pub fn bin(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = match &self.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("binary without a directory")?
                .to_path_buf(),
        };
        let path = dir.join(name);
        anyhow::ensure!(
            path.exists(),
            "{} not found: build it first (cargo build --release -p hookhub -p hookhub-receiver \
             -p hookhub-dispatcher -p hookhub-admin) or pass --bin-dir",
            path.display()
        );
        Ok(path)
    }

    /// The build profile the binaries come from, for the summary.
    pub fn profile(&self) -> String {
        self.bin("hookhub")
            .ok()
            .and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::ServeBaseline = cli.command {
        return load::serve_baseline();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let mut summary = serde_json::Map::new();
    let common = match &command {
        Command::All(c)
        | Command::Ingest(c)
        | Command::Handler(c)
        | Command::Delivery(c)
        | Command::Coldstart(c)
        | Command::Retention(c)
        | Command::RateLimit(c)
        | Command::MicroReport(c) => c.clone(),
        Command::Cost(c) => c.common.clone(),
        Command::ServeBaseline => unreachable!("handled in main"),
    };
    summary.insert("machine".into(), machine());
    summary.insert(
        "binaries".into(),
        json!({"profile": common.profile(), "target": std::env::consts::ARCH}),
    );
    summary.insert("smoke".into(), json!(common.smoke));
    let all = matches!(command, Command::All(_));
    if all || matches!(command, Command::Handler(_)) {
        summary.insert("handler".into(), handler::run(&common).await?);
    }
    if all || matches!(command, Command::Ingest(_)) {
        summary.insert("ingest".into(), ingest::run(&common).await?);
    }
    if all || matches!(command, Command::Delivery(_)) {
        summary.insert("delivery".into(), delivery::run(&common).await?);
    }
    if all || matches!(command, Command::Retention(_)) {
        summary.insert("retention".into(), retention::run(&common).await?);
    }
    if all || matches!(command, Command::RateLimit(_)) {
        summary.insert("rate_limit".into(), rate_limit::run(&common).await?);
    }
    if all || matches!(command, Command::Coldstart(_)) {
        let cold = coldstart::run(&common).await?;
        summary.insert("cost".into(), cost::report(&cold)?);
        summary.insert("coldstart".into(), cold);
    }
    if let Command::Cost(args) = &command {
        let measured = cost_measure::run(&common, args.receiver_ms, args.dispatcher_ms).await?;
        if let Some(root) = &args.write_docs {
            cost_measure::write_outputs(root, &measured)?;
        }
        summary.insert("cost_measured".into(), measured);
    }
    if all || matches!(command, Command::MicroReport(_)) {
        match micro_report::run(&common) {
            Ok(report) => {
                summary.insert("micro".into(), report);
            }
            // `all` runs without criterion results too (CI smoke).
            Err(e) if all => println!("\nmicro: skipped ({e})"),
            Err(e) => return Err(e),
        }
    }
    let summary = Value::Object(summary);
    let text = serde_json::to_string_pretty(&summary)?;
    if let Some(dir) = common.out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&common.out, &text)
        .with_context(|| format!("writing {}", common.out.display()))?;
    println!("\n== JSON summary ({}) ==\n{text}", common.out.display());
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// Prints a table: a header row and rows of cells, columns padded to fit.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!("\n== {title} ==");
    println!("{}", line(header.to_vec()));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// `12.3` style number for tables.
pub fn f1(x: f64) -> String {
    format!("{x:.1}")
}

pub fn f2(x: f64) -> String {
    format!("{x:.2}")
}
