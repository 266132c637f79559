//! `hookhub`: the local dev server (`hookhub dev`) and, later, admin commands.

mod dev;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hookhub",
    version,
    about = "Hookhub: receive, verify and deliver webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run receiver, admin API and dispatcher in one local process.
    Dev(dev::DevArgs),
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var("HOOKHUB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    match Cli::parse().command {
        Command::Dev(args) => dev::run(args).await,
    }
}
