//! `hookhub tail` and `hookhub listen`: follow new events through the admin API's long poll
//! (`GET /v1/events?after=…&wait=20s`), so they need no inbound connectivity.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{enc, error_chain, http_client, CliResult, Client, Exit};
use crate::events::{body_bytes, outcome};
use crate::output::text;

/// The long poll's wait per request (the API allows up to 25 s).
const WAIT: &str = "20s";
/// How long `tail` keeps watching an event for delivery attempts.
const WATCH_FOR: Duration = Duration::from_secs(300);
/// Events `tail` watches at once at most (the oldest is dropped first).
const MAX_WATCHED: usize = 200;
/// Pause after the server could not be reached, before asking again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Only events of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only events of this type, exact or `prefix.*`.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    hookhub tail\n  \
    hookhub tail --source github --json")]
pub struct TailArgs {
    #[command(flatten)]
    selection: Selection,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    hookhub listen --forward-to http://localhost:3000/hook --source github\n\n\
    Each event is POSTed with its original body and content type, signed per Standard Webhooks \
    (webhook-id, webhook-timestamp, webhook-signature) with the secret printed at start.")]
pub struct ListenArgs {
    /// The local URL every new event is POSTed to.
    #[arg(long, value_name = "URL")]
    forward_to: String,
    #[command(flatten)]
    selection: Selection,
}

/// Where following starts: after the newest event of all (not only of the selection), so only
/// what arrives from now on is shown. Asked of the server, whose clock names the ids.
async fn newest_id(client: &Client) -> CliResult<String> {
    let newest = client.get("/v1/events?limit=1").await?;
    Ok(newest["data"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| "evt_00000000000000000000000000".to_owned()))
}

/// Sends every event (summaries) after `after` on `tx`, until the receiver is gone. Returns
/// only on an error that retrying cannot fix.
async fn follow(
    client: Client,
    selection: Selection,
    mut after: String,
    tx: mpsc::Sender<Value>,
) -> CliResult {
    loop {
        let mut path = format!("/v1/events?after={}&wait={WAIT}&limit=100", enc(&after));
        if let Some(source) = &selection.source {
            path.push_str(&format!("&source={}", enc(source)));
        }
        if let Some(t) = &selection.event_type {
            path.push_str(&format!("&type={}", enc(t)));
        }
        let page = match client.get(&path).await {
            Ok(page) => page,
            Err(e) if matches!(e.exit, Exit::Unreachable | Exit::Server) => {
                eprintln!("warning: {e}; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(next) = page["next_cursor"].as_str() {
            after = next.to_owned();
        }
        for event in page["data"].as_array().cloned().unwrap_or_default() {
            if tx.send(event).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One line per new event, then one per delivery attempt of it, until Ctrl-C.
pub async fn tail(client: &Client, args: TailArgs) -> CliResult {
    let (tx, mut rx) = mpsc::channel(256);
    let start = newest_id(client).await?;
    let mut follower = tokio::spawn(follow(client.clone(), args.selection, start, tx));
    let mut watched: VecDeque<(String, Instant)> = VecDeque::new();
    let mut printed: HashSet<(String, String, u64)> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    if !client.json {
        println!("following new events of {} (Ctrl-C to stop)", client.base);
    }
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let id = text(&event["id"]);
                if client.json {
                    println!("{}", serde_json::json!({"kind": "event", "event": event}));
                } else {
                    println!(
                        "{}  event    {id}  {}  {}",
                        now(),
                        text(&event["source_id"]),
                        text(&event["event_type"])
                    );
                }
                watched.push_back((id, Instant::now()));
                if watched.len() > MAX_WATCHED {
                    watched.pop_front();
                }
            }
            _ = tick.tick() => {
                watched.retain(|(_, since)| since.elapsed() < WATCH_FOR);
                for (id, _) in &watched {
                    let Ok(attempts) = client.get(&format!("/v1/events/{}/attempts", enc(id))).await else {
                        continue;
                    };
                    for attempt in attempts["data"].as_array().cloned().unwrap_or_default() {
                        let key = (
                            id.clone(),
                            text(&attempt["subscription_id"]),
                            attempt["attempt"].as_u64().unwrap_or(0),
                        );
                        if printed.insert(key) {
                            print_attempt(client.json, &attempt);
                        }
                    }
                }
            }
            joined = &mut follower => {
                return joined.unwrap_or(Ok(()));
            }
        }
    }
    Ok(())
}

fn print_attempt(json: bool, attempt: &Value) {
    if json {
        println!(
            "{}",
            serde_json::json!({"kind": "attempt", "attempt": attempt})
        );
    } else {
        println!(
            "{}  attempt  {}  {}  #{}  {}  {}  {}ms",
            now(),
            text(&attempt["event_id"]),
            text(&attempt["subscription_id"]),
            text(&attempt["attempt"]),
            text(&attempt["state"]),
            outcome(attempt),
            text(&attempt["duration_ms"]),
        );
    }
}

/// Forwards every new event to `--forward-to`, signed, printing each forward's outcome.
pub async fn listen(client: &Client, args: ListenArgs) -> CliResult {
    let target = url::Url::parse(&args.forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            crate::client::CliError::usage(format!(
                "--forward-to must be an http(s) URL, got {:?}",
                args.forward_to
            ))
        })?;
    let secret = hookhub::signing::generate_secret();
    let key = hookhub::signing::decode_secret(secret.expose()).expect("a generated secret decodes");
    let (tx, mut rx) = mpsc::channel(256);
    let start = newest_id(client).await?;
    let mut follower = tokio::spawn(follow(client.clone(), args.selection, start, tx));
    let http = http_client();
    println!("forwarding new events of {} to {target}", client.base);
    println!("signing secret: {}", secret.expose());
    println!("(Ctrl-C to stop)");
    loop {
        let summary = tokio::select! {
            event = rx.recv() => match event {
                Some(event) => event,
                None => return Ok(()),
            },
            joined = &mut follower => return joined.unwrap_or(Ok(())),
        };
        let id = text(&summary["id"]);
        let event = match client.get(&format!("/v1/events/{}", enc(&id))).await {
            Ok(event) => event,
            Err(e) => {
                eprintln!("warning: {id}: {e}");
                continue;
            }
        };
        let body = body_bytes(&event)?;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = format!(
            "v1,{}",
            hookhub::signing::sign_with_key(&key, &id, timestamp, &body)
        );
        let content_type = event["content_type"]
            .as_str()
            .unwrap_or("application/json")
            .to_owned();
        let started = Instant::now();
        let sent = http
            .post(target.clone())
            .header("content-type", content_type)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .timeout(Duration::from_secs(30))
            .body(body)
            .send()
            .await;
        let ms = started.elapsed().as_millis();
        let result = match sent {
            Ok(response) => response.status().to_string(),
            Err(e) => format!("error: {}", error_chain(&e)),
        };
        if client.json {
            println!(
                "{}",
                serde_json::json!({"event_id": id, "event_type": event["event_type"], "result": result, "ms": ms})
            );
        } else {
            println!(
                "{}  {id}  {}  {}  -> {result}  {ms} ms",
                now(),
                text(&event["source_id"]),
                text(&event["event_type"]),
            );
        }
    }
}
