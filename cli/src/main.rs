//! `hookhub`: the local dev server (`hookhub dev`) and, later, admin commands.

mod dev;

use clap::{Parser, Subcommand};

/// jemalloc, with a background thread returning freed memory to the system after a second.
/// Under glibc's malloc, memory freed by the runtime's worker threads (e.g. the bodies of a
/// burst of stalled uploads, freed when they time out) stayed with the process at its peak:
/// glibc gives back only the free top of each thread's heap, and one live allocation above
/// the freed ones pins them all (cli/tests/slow_clients.rs measures it).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: unused pages are returned after 1 s (default 10 s), by the background
/// thread (so also when the server has gone quiet).
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

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
