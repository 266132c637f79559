//! `hookhub events …`, `attempts`, `replay` and `recover`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{enc, CliError, CliResult, Client};
use crate::output::{col, print_json, print_list, print_object, text, Column};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List received events, newest first.
    #[command(after_help = "Examples:\n  \
        hookhub events list --source github --type 'issues.*' --since 1h\n  \
        hookhub events list --limit 100 --json")]
    List(ListEvents),
    /// Show one event: headers and body.
    #[command(after_help = "Examples:\n  \
        hookhub events show evt_01J…\n  \
        hookhub events show evt_01J… --body > payload.json")]
    Show {
        id: String,
        /// Print only the body, exactly as received (base64 bodies decoded).
        #[arg(long)]
        body: bool,
    },
    /// Replay every event received in a time range to its subscriptions (a background job).
    #[command(
        after_help = "Example:\n  hookhub events replay --since 2h --source github --dry-run"
    )]
    Replay(BulkReplay),
}

#[derive(Debug, Args)]
pub struct ListEvents {
    #[arg(long)]
    source: Option<String>,
    /// Exact type or `prefix.*`.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Received at or after: a duration back from now (`1h`, `30m`) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Older than this event id (the `next` cursor a previous page printed).
    #[arg(long)]
    before: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Args)]
pub struct BulkReplay {
    /// Received at or after: a duration back from now (`2h`) or RFC 3339.
    #[arg(long)]
    since: String,
    /// Received at or before (RFC 3339 or a duration back from now) [default: now].
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    source: Option<String>,
    /// Exact type or `prefix.*`.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only to this subscription.
    #[arg(long)]
    subscription: Option<String>,
    /// Count only; nothing is delivered.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    hookhub attempts evt_01J…\n  \
    hookhub attempts --subscription sub_01J… --limit 20")]
pub struct AttemptsArgs {
    /// The event whose attempts to list.
    #[arg(
        required_unless_present = "subscription",
        conflicts_with = "subscription"
    )]
    event_id: Option<String>,
    /// A subscription's latest attempts instead.
    #[arg(long)]
    subscription: Option<String>,
    /// With --subscription: how many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    hookhub replay evt_01J…\n  \
    hookhub replay evt_01J… --subscription sub_01J…")]
pub struct ReplayArgs {
    event_id: String,
    /// Only to this subscription [default: every matching enabled subscription].
    #[arg(long)]
    subscription: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  hookhub recover sub_01J… --since 6h --state failed")]
pub struct RecoverArgs {
    subscription_id: String,
    /// Attempts started at or after: a duration back from now (`6h`) or RFC 3339.
    #[arg(long)]
    since: String,
    #[arg(long)]
    until: Option<String>,
    /// States of a delivery's latest attempt to recover (repeatable) [default: failed, skipped].
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Count only; nothing is delivered.
    #[arg(long)]
    dry_run: bool,
}

pub const EVENT_COLUMNS: [Column; 5] = [
    col("ID", |v| text(&v["id"])),
    col("SOURCE", |v| text(&v["source_id"])),
    col("TYPE", |v| text(&v["event_type"])),
    col("RECEIVED", |v| text(&v["received_at"])),
    col("SIZE", |v| text(&v["size"])),
];

pub const ATTEMPT_COLUMNS: [Column; 7] = [
    col("EVENT", |v| text(&v["event_id"])),
    col("SUBSCRIPTION", |v| text(&v["subscription_id"])),
    col("#", |v| text(&v["attempt"])),
    col("STATE", |v| text(&v["state"])),
    col("STATUS", outcome),
    col("MS", |v| text(&v["duration_ms"])),
    col("STARTED", |v| text(&v["started_at"])),
];

/// An attempt's HTTP status, or its error code when there was no answer.
pub fn outcome(attempt: &Value) -> String {
    match (&attempt["status_code"], &attempt["error"]) {
        (Value::Number(n), _) => n.to_string(),
        (_, Value::String(e)) => e.clone(),
        _ => String::new(),
    }
}

/// Relative times (`1h`) are sent as RFC 3339 computed here: the bulk endpoints take only
/// RFC 3339.
fn absolute(value: &str) -> CliResult<String> {
    if chrono::DateTime::parse_from_rfc3339(value).is_ok() {
        return Ok(value.to_owned());
    }
    let back = humantime::parse_duration(value).map_err(|_| {
        CliError::usage(format!(
            "{value:?} is neither RFC 3339 nor a duration such as 1h"
        ))
    })?;
    let back = chrono::Duration::from_std(back)
        .map_err(|_| CliError::usage(format!("{value:?} is too far back")))?;
    Ok((chrono::Utc::now() - back).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub async fn run(client: &Client, command: EventsCommand) -> CliResult {
    match command {
        EventsCommand::List(args) => list(client, args).await,
        EventsCommand::Show { id, body } => show(client, &id, body).await,
        EventsCommand::Replay(args) => {
            let mut req = json!({ "since": absolute(&args.since)?, "dry_run": args.dry_run });
            if let Some(until) = &args.until {
                req["until"] = json!(absolute(until)?);
            }
            if let Some(source) = args.source {
                req["source"] = json!(source);
            }
            if let Some(t) = args.event_type {
                req["event_type"] = json!(t);
            }
            if let Some(sub) = args.subscription {
                req["subscription_id"] = json!(sub);
            }
            let accepted = client.post("/v1/events/replay", &req).await?;
            print_object(client.json, &accepted);
            Ok(())
        }
    }
}

async fn list(client: &Client, args: ListEvents) -> CliResult {
    let mut query = format!("/v1/events?limit={}", args.limit);
    for (name, value) in [
        ("source", &args.source),
        ("type", &args.event_type),
        ("since", &args.since),
        ("before", &args.before),
    ] {
        if let Some(value) = value {
            query.push_str(&format!("&{name}={}", enc(value)));
        }
    }
    let page = client.get(&query).await?;
    print_list(client.json, &page, &EVENT_COLUMNS);
    if !client.json {
        if let Some(next) = page["next_cursor"].as_str() {
            println!("next: hookhub events list --before {next}");
        }
    }
    Ok(())
}

async fn show(client: &Client, id: &str, body_only: bool) -> CliResult {
    let event = client.get(&format!("/v1/events/{}", enc(id))).await?;
    if body_only {
        use std::io::Write;
        let body = body_bytes(&event)?;
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error of the command.
        let _ = out.write_all(&body).and_then(|()| out.flush());
        return Ok(());
    }
    if client.json {
        print_json(&event);
        return Ok(());
    }
    let mut summary = event.clone();
    if let Some(map) = summary.as_object_mut() {
        map.remove("headers");
        map.remove("body");
    }
    print_object(false, &summary);
    println!("headers:");
    if let Some(headers) = event["headers"].as_object() {
        for (name, value) in headers {
            println!("  {name}: {}", text(value));
        }
    }
    println!("body:");
    match serde_json::from_str::<Value>(event["body"].as_str().unwrap_or_default()) {
        Ok(parsed) if event["body_encoding"] == "utf8" => print_json(&parsed),
        _ => println!("{}", text(&event["body"])),
    }
    Ok(())
}

/// The event's body bytes, decoding a base64 body.
pub fn body_bytes(event: &Value) -> CliResult<Vec<u8>> {
    use base64::Engine;
    let body = event["body"].as_str().unwrap_or_default();
    if event["body_encoding"] == "base64" {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| CliError::new(crate::client::Exit::Failure, "bad_body", e.to_string()))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

pub async fn attempts(client: &Client, args: AttemptsArgs) -> CliResult {
    let path = match (&args.event_id, &args.subscription) {
        (_, Some(sub)) => format!(
            "/v1/subscriptions/{}/attempts?limit={}",
            enc(sub),
            args.limit
        ),
        (Some(event), None) => format!("/v1/events/{}/attempts", enc(event)),
        (None, None) => return Err(CliError::usage("give EVENT_ID or --subscription")),
    };
    print_list(client.json, &client.get(&path).await?, &ATTEMPT_COLUMNS);
    Ok(())
}

pub async fn replay(client: &Client, args: ReplayArgs) -> CliResult {
    let body = match args.subscription {
        Some(sub) => json!({ "subscription_id": sub }),
        None => json!({}),
    };
    let path = format!("/v1/events/{}/replay", enc(&args.event_id));
    let replayed = client.post(&path, &body).await?;
    if client.json {
        print_json(&replayed);
    } else {
        let subs = text(&replayed["subscriptions"]);
        match subs.as_str() {
            "" => println!("event {} matches no enabled subscription", args.event_id),
            subs => println!("replaying event {} to {subs}", args.event_id),
        }
    }
    Ok(())
}

pub async fn recover(client: &Client, args: RecoverArgs) -> CliResult {
    let mut req = json!({ "since": absolute(&args.since)?, "dry_run": args.dry_run });
    if let Some(until) = &args.until {
        req["until"] = json!(absolute(until)?);
    }
    if !args.states.is_empty() {
        req["states"] = json!(args.states);
    }
    let path = format!("/v1/subscriptions/{}/recover", enc(&args.subscription_id));
    print_object(client.json, &client.post(&path, &req).await?);
    Ok(())
}
