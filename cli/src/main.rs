//! `hookhub`: the local dev server (`hookhub dev`) and the admin commands, which work against
//! any Hookhub admin API (local or deployed).

mod client;
mod dev;
mod events;
mod follow;
mod input;
mod output;
mod profiles;
mod sources;
mod subscriptions;

use std::process::ExitCode;

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
    about = "Hookhub: receive, verify and deliver webhooks",
    after_help = "Examples:\n  hookhub dev\n  hookhub login --url https://admin.example.com --profile prod\n  \
        hookhub events list --since 1h --profile prod\n  hookhub listen --forward-to http://localhost:3000/hook"
)]
struct Cli {
    #[command(flatten)]
    connection: client::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run receiver, admin API and dispatcher in one local process.
    #[command(
        after_help = "Examples:\n  hookhub dev\n  hookhub dev --backend aws --listen 127.0.0.1:9000"
    )]
    Dev(dev::DevArgs),
    /// Save an admin API URL and key as a profile (the key is prompted for, or read from stdin).
    Login(profiles::LoginArgs),
    /// Webhook sources: who may send, and how requests are verified.
    #[command(subcommand, after_help = "Example:\n  hookhub sources list")]
    Sources(sources::SourcesCommand),
    /// Subscriptions: where events are delivered.
    #[command(
        subcommand,
        visible_alias = "subs",
        after_help = "Example:\n  hookhub subscriptions list"
    )]
    Subscriptions(subscriptions::SubscriptionsCommand),
    /// Received events.
    #[command(subcommand, after_help = "Example:\n  hookhub events list --since 1h")]
    Events(events::EventsCommand),
    /// Delivery attempts of an event, or of a subscription.
    Attempts(events::AttemptsArgs),
    /// Deliver an event again.
    Replay(events::ReplayArgs),
    /// Re-deliver a subscription's failed deliveries of a time range (a background job).
    Recover(events::RecoverArgs),
    /// Follow new events and their delivery attempts live, one line each.
    Tail(follow::TailArgs),
    /// Forward every new event to a local URL, signed per Standard Webhooks.
    Listen(follow::ListenArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    hookhub::telemetry::init_cli();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => {
            return match dev::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e:?}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Login(args) => profiles::login(&cli.connection, args).await,
        command => match cli.connection.client() {
            Ok(client) => admin(&client, command).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {}", e.code, e.message);
            ExitCode::from(e.exit.code())
        }
    }
}

async fn admin(client: &client::Client, command: Command) -> client::CliResult {
    match command {
        Command::Sources(c) => sources::run(client, c).await,
        Command::Subscriptions(c) => subscriptions::run(client, c).await,
        Command::Events(c) => events::run(client, c).await,
        Command::Attempts(a) => events::attempts(client, a).await,
        Command::Replay(a) => events::replay(client, a).await,
        Command::Recover(a) => events::recover(client, a).await,
        Command::Tail(a) => follow::tail(client, a).await,
        Command::Listen(a) => follow::listen(client, a).await,
        Command::Dev(_) | Command::Login(_) => unreachable!("handled in main"),
    }
}
