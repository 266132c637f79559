//! `hookhub dev`: everything in one process on an embedded SQLite database.

use std::fs::{self, File};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hookhub::decision::HealthPolicy;
use hookhub::delivery::DeliveryOptions;
use hookhub::dispatch::DispatcherConfig;
use hookhub::ingest::ReceiverConfig;
use hookhub::local::{LocalConfig, LocalMetrics, LocalServer};
use hookhub::private_files;
use hookhub::retry::RetryPolicy;
use hookhub::server::ServerOptions;
use hookhub::settings::parse;
use hookhub::sqlite::SqliteBackend;
use hookhub::worker::WorkerOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Embedded SQLite database in the data dir: no AWS at all.
    Sqlite,
    /// DynamoDB + SQS at the endpoints the AWS SDK is configured for (`AWS_ENDPOINT_URL` for
    /// moto or LocalStack); tables and queues are created when missing.
    Aws,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Storage and queue backend.
    #[arg(long, value_enum, default_value = "sqlite", env = "HOOKHUB_BACKEND")]
    backend: BackendKind,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "HOOKHUB_LISTEN")]
    listen: SocketAddr,
    /// Where the database and the generated admin key live.
    #[arg(long, default_value = ".hookhub", env = "HOOKHUB_DATA_DIR")]
    data_dir: PathBuf,
    /// Admin API key; generated and kept in the data dir when not given.
    #[arg(long, env = "HOOKHUB_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Public base URL providers call (for schemes that sign the URL).
    #[arg(long, env = "HOOKHUB_PUBLIC_URL")]
    public_url: Option<String>,
    /// Delays between delivery attempts, e.g. "5s,5m,30m,2h,5h,10h,10h".
    #[arg(long, env = "HOOKHUB_RETRY_SCHEDULE")]
    retry_schedule: Option<String>,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, default_value_t = 256 * 1024, env = "HOOKHUB_MAX_BODY_BYTES", value_parser = |v: &str| parse::bytes("HOOKHUB_MAX_BODY_BYTES", v))]
    max_body_bytes: usize,
    /// Largest accepted webhook request headers (names + values), in bytes; larger get 431.
    #[arg(long, default_value_t = 64 * 1024, env = "HOOKHUB_MAX_HEADER_BYTES", value_parser = |v: &str| parse::bytes("HOOKHUB_MAX_HEADER_BYTES", v))]
    max_header_bytes: usize,
    /// How long a client may take to send a request's headers.
    #[arg(long, default_value = "10s", env = "HOOKHUB_HEADER_READ_TIMEOUT", value_parser = |v: &str| parse::duration("HOOKHUB_HEADER_READ_TIMEOUT", v))]
    header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body (then 408).
    #[arg(long, default_value = "30s", env = "HOOKHUB_BODY_READ_TIMEOUT", value_parser = |v: &str| parse::duration("HOOKHUB_BODY_READ_TIMEOUT", v))]
    body_read_timeout: Duration,
    /// How long a kept-alive connection may sit with no request before it is closed.
    #[arg(long, default_value = "15s", env = "HOOKHUB_IDLE_TIMEOUT", value_parser = |v: &str| parse::duration("HOOKHUB_IDLE_TIMEOUT", v))]
    idle_timeout: Duration,
    /// Most connections served at once; more wait until one closes.
    #[arg(long, default_value_t = 1024, env = "HOOKHUB_MAX_CONNECTIONS", value_parser = |v: &str| parse::count("HOOKHUB_MAX_CONNECTIONS", v))]
    max_connections: usize,
    /// How long a repeated delivery id (or identical body) counts as a duplicate.
    #[arg(long, default_value = "24h", env = "HOOKHUB_DEDUP_WINDOW", value_parser = |v: &str| parse::duration("HOOKHUB_DEDUP_WINDOW", v))]
    dedup_window: Duration,
    /// How long a task being processed stays hidden from other consumers.
    #[arg(long, default_value = "120s", env = "HOOKHUB_VISIBILITY_TIMEOUT", value_parser = |v: &str| parse::duration("HOOKHUB_VISIBILITY_TIMEOUT", v))]
    visibility_timeout: Duration,
    /// A subscription failing continuously this long is disabled (reason `failing`); 0 = never.
    #[arg(long, default_value = "5d", env = "HOOKHUB_DISABLE_AFTER", value_parser = disable_after)]
    disable_after: String,
    /// Consecutive failures that open an endpoint's circuit breaker; 0 = no breaker.
    #[arg(long, default_value_t = 10, env = "HOOKHUB_BREAKER_THRESHOLD")]
    breaker_threshold: u32,
    /// Wait before the first probe of an open circuit; doubles with each re-opening.
    #[arg(long, default_value = "30s", env = "HOOKHUB_BREAKER_BACKOFF", value_parser = |v: &str| parse::duration("HOOKHUB_BREAKER_BACKOFF", v))]
    breaker_backoff: Duration,
    /// Longest wait between probes of an open circuit.
    #[arg(long, default_value = "10m", env = "HOOKHUB_BREAKER_MAX_BACKOFF", value_parser = |v: &str| parse::duration("HOOKHUB_BREAKER_MAX_BACKOFF", v))]
    breaker_max_backoff: Duration,
    /// Deliver to loopback, private and other non-public addresses (true: local sinks work);
    /// false turns the SSRF guard on, as in deployments.
    #[arg(
        long,
        default_value_t = true,
        env = "HOOKHUB_ALLOW_PRIVATE_TARGETS",
        action = clap::ArgAction::Set,
        value_parser = |v: &str| parse::flag("HOOKHUB_ALLOW_PRIVATE_TARGETS", v),
        value_name = "true|false"
    )]
    allow_private_targets: bool,
    /// Days events, their attempts and dedup markers are kept (SQLite: an hourly sweep; AWS: the
    /// DynamoDB TTL). 0 keeps them forever.
    #[arg(
        long,
        default_value_t = 30,
        env = "HOOKHUB_RETENTION_DAYS",
        value_name = "DAYS",
        value_parser = |v: &str| parse::retention_days("HOOKHUB_RETENTION_DAYS", v)
    )]
    retention: u32,
    /// Serve `GET /metrics` (Prometheus text) without the admin key, for a local scraper.
    #[arg(
        long,
        env = "HOOKHUB_METRICS_PUBLIC",
        action = clap::ArgAction::SetTrue,
        value_parser = |v: &str| parse::flag("HOOKHUB_METRICS_PUBLIC", v)
    )]
    metrics_public: bool,
}

/// Checked here, read in `run` (clap cannot hold an `Option` that means "never").
fn disable_after(s: &str) -> Result<String, String> {
    HealthPolicy::parse_disable_after(s).map(|_| s.to_owned())
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Owner-only: the database holds every secret and the admin key sits beside it.
    private_files::private_dir(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let _lock = lock_data_dir(&args.data_dir)?;
    let (admin_key, key_origin) = match args.admin_key {
        Some(key) => (key, KeyOrigin::Given),
        None => load_or_create_admin_key(&args.data_dir)?,
    };
    let retry = match &args.retry_schedule {
        Some(spec) => RetryPolicy::with_schedule(RetryPolicy::parse_schedule(spec)?),
        None => RetryPolicy::default(),
    };

    let metrics_settings = hookhub::settings::Env::process().metrics_settings()?;
    hookhub::metrics::set_max_subscriptions(metrics_settings.max_subscriptions);
    let mut metrics = LocalMetrics {
        public: args.metrics_public,
        queue: None,
    };
    let (backend, wake, data_label) = match args.backend {
        BackendKind::Sqlite => {
            let db_path = args.data_dir.join("hookhub.db");
            let sqlite = SqliteBackend::open(&db_path)
                .with_context(|| format!("opening {}", db_path.display()))?;
            // This process owns the database (see the lock above): tasks a previous run was
            // processing when it stopped are picked up again at once, not after their timeout.
            sqlite.release_inflight().await?;
            if args.retention > 0 {
                tokio::spawn(sweep_every_hour(
                    sqlite.clone(),
                    parse::retention(args.retention),
                ));
            }
            let wake = sqlite.notifier();
            metrics.queue = Some(Arc::new(sqlite.clone()));
            (
                sqlite.into_backend(),
                Some(wake),
                db_path.display().to_string(),
            )
        }
        BackendKind::Aws => {
            let (backend, label) = aws_backend(args.retention).await?;
            (backend, None, label)
        }
    };

    let config = LocalConfig {
        listen: args.listen,
        admin_key: admin_key.clone(),
        receiver: ReceiverConfig {
            max_body_bytes: args.max_body_bytes,
            max_header_bytes: args.max_header_bytes,
            dedup_window: args.dedup_window,
            public_url: args.public_url,
        },
        dispatcher: DispatcherConfig {
            retry,
            health: HealthPolicy {
                breaker_threshold: args.breaker_threshold,
                probe_backoff: args.breaker_backoff,
                max_probe_backoff: args.breaker_max_backoff,
                disable_after: HealthPolicy::parse_disable_after(&args.disable_after)
                    .map_err(anyhow::Error::msg)?,
            },
            ..DispatcherConfig::default()
        },
        worker: WorkerOptions {
            visibility_timeout: args.visibility_timeout,
            ..WorkerOptions::default()
        },
        // Allowed by default in dev mode, which delivers to local sinks.
        delivery: DeliveryOptions {
            allow_private_targets: args.allow_private_targets,
            ..DeliveryOptions::default()
        },
        server: ServerOptions {
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections,
        },
    };
    let server = LocalServer::start_observed(backend, wake, config, metrics).await?;
    println!("Hookhub dev server listening on http://{}", server.addr);
    println!(
        "  ingest:    POST http://{}/webhooks/{{source}}",
        server.addr
    );
    println!(
        "  admin API: http://{}/v1   (Authorization: Bearer <admin key>)",
        server.addr
    );
    println!("  {}", key_line(&key_origin, &admin_key));
    println!("  console:   http://{}/console", server.addr);
    println!(
        "  metrics:   GET http://{}/metrics   ({})",
        server.addr,
        if args.metrics_public {
            "public"
        } else {
            "admin key"
        }
    );
    println!("  data:      {data_label}");
    println!("  {}", guard_line(args.allow_private_targets));

    shutdown_signal().await;
    tracing::info!("shutting down; finishing requests and deliveries in flight");
    server.shutdown().await;
    Ok(())
}

/// The SQLite counterpart of the DynamoDB TTL: deletes what is older than `retention` soon
/// after start, then every hour, in small batches that ingest writes interleave with.
async fn sweep_every_hour(sqlite: SqliteBackend, retention: Duration) {
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(10),
        Duration::from_secs(3600),
    );
    loop {
        every.tick().await;
        match sqlite.sweep_expired(retention).await {
            Ok(report) if report.events > 0 => tracing::info!(
                events = report.events,
                attempts = report.attempts,
                dedup_markers = report.dedup_markers,
                pages_freed = report.pages_freed,
                "retention sweep"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; next in an hour"),
        }
    }
}

/// The banner's line about the SSRF guard.
fn guard_line(allow_private_targets: bool) -> &'static str {
    if allow_private_targets {
        "targets:   any address, loopback and private included (--allow-private-targets true)"
    } else {
        "targets:   public addresses only, SSRF guard on (--allow-private-targets false)"
    }
}

/// DynamoDB + SQS from the environment. Without `HOOKHUB_*` resource settings, resources are
/// named `hookhub-…`. Against a local endpoint (`AWS_ENDPOINT_URL`) missing tables and queues
/// are created, so a freshly started moto needs no other setup.
async fn aws_backend(retention_days: u32) -> anyhow::Result<(hookhub::ports::Backend, String)> {
    use hookhub::aws::{load_sdk_config, Aws, AwsConfigError, AwsSettings};
    let mut settings = match AwsSettings::from_env() {
        Ok(settings) => settings,
        Err(AwsConfigError::Missing(_)) => AwsSettings::with_prefix("hookhub-"),
        Err(e) => return Err(e.into()),
    };
    // The TTL stamped on items (`--retention`, which reads the same variable).
    settings.retention = parse::retention(retention_days);
    let aws = Aws::new(&load_sdk_config().await, settings);
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    if endpoint.is_some() || hookhub::settings::Env::process().create_resources()? {
        aws.ensure_resources()
            .await
            .context("creating DynamoDB tables and SQS queues")?;
    }
    let backend = aws.backend().await.context("connecting to SQS")?;
    let s = aws.settings();
    let label = format!(
        "DynamoDB tables {}, {}, {}, {}; SQS queue {}{}",
        s.sources_table,
        s.subscriptions_table,
        s.events_table,
        s.attempts_table,
        s.queue.name(),
        endpoint.map(|e| format!(" at {e}")).unwrap_or_default()
    );
    Ok((backend, label))
}

/// One dev server per data dir: a second one would steal the first one's in-flight tasks.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("lock");
    private_files::restrict_file(&path).with_context(|| format!("securing {}", path.display()))?;
    let file = private_files::private_open_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => bail!(
            "another hookhub dev server is using {}; stop it or pick another --data-dir",
            dir.display()
        ),
    }
}

/// Where the admin key came from: what the banner may say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyOrigin {
    /// `--admin-key` or `HOOKHUB_ADMIN_KEY`.
    Given,
    /// Read from this file, written by an earlier start.
    Stored(PathBuf),
    /// Generated by this start and written to this file.
    Generated(PathBuf),
}

/// The banner's line about the admin key: the key itself only when it was generated just now
/// (the one time it is shown), else where it is.
fn key_line(origin: &KeyOrigin, key: &str) -> String {
    match origin {
        KeyOrigin::Given => "admin key: as given by --admin-key / HOOKHUB_ADMIN_KEY".to_string(),
        KeyOrigin::Stored(path) => format!("admin key: in {}", path.display()),
        KeyOrigin::Generated(path) => format!(
            "admin key: {key}   (generated now and kept in {}; not shown again)",
            path.display()
        ),
    }
}

fn load_or_create_admin_key(dir: &Path) -> anyhow::Result<(String, KeyOrigin)> {
    let path = dir.join("admin-key");
    if let Ok(existing) = fs::read_to_string(&path) {
        let key = existing.trim().to_string();
        if !key.is_empty() {
            private_files::restrict_file(&path)
                .with_context(|| format!("securing {}", path.display()))?;
            return Ok((key, KeyOrigin::Stored(path)));
        }
    }
    let key = hookhub::admin::generate_admin_key();
    let mut file = private_files::private_open_options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{key}")?;
    private_files::restrict_file(&path).with_context(|| format!("securing {}", path.display()))?;
    Ok((key, KeyOrigin::Generated(path)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_shows_the_key_only_when_just_generated() {
        let key = "hh_0123456789abcdef";
        let path = PathBuf::from(".hookhub/admin-key");
        let cases = [
            (KeyOrigin::Given, false, "--admin-key / HOOKHUB_ADMIN_KEY"),
            (KeyOrigin::Stored(path.clone()), false, ".hookhub/admin-key"),
            (
                KeyOrigin::Generated(path.clone()),
                true,
                ".hookhub/admin-key",
            ),
        ];
        for (origin, shows_key, names) in cases {
            let line = key_line(&origin, key);
            assert_eq!(line.contains(key), shows_key, "{origin:?}: {line}");
            assert!(line.contains(names), "{origin:?}: {line}");
        }
    }

    #[test]
    fn banner_says_whether_the_guard_is_on() {
        assert!(guard_line(false).contains("SSRF guard on"));
        assert!(guard_line(true).contains("loopback and private included"));
    }
}
