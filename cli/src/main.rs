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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookhub::telemetry::init_cli();
    match Cli::parse().command {
        Command::Dev(args) => dev::run(args).await,
    }
}
