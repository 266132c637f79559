//! `GET /v1/events` with filters (`type`, `since`) and the long poll (`after`, `wait`) the CLI's
//! `tail` and `listen` follow new events with. Built on the existing ports: newest-first pages
//! of [`EventStore::list_events`](crate::ports::EventStore::list_events), ascending pages of
//! [`EventStore::events_page`](crate::ports::EventStore::events_page), so both adapters serve
//! it unchanged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{invalid, Admin, AdminResult, EventPage};
use crate::bulk::{id_ceiling, id_floor};
use crate::domain::{is_valid_slug, EventSummary};
use crate::filter::{is_valid_filter, matches};
use crate::ports::{EventQuery, EventRange};

/// Longest `wait`: under API Gateway's 30 s integration timeout (and the admin function's 29 s).
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// How often a waiting long poll reads the store again. On DynamoDB each read is one query per
/// events table shard (`HOOKHUB_LIST_SHARDS`), or per `by-source` shard with `source`: at most
/// ~100 rounds of small queries per 25 s wait, plus the Lambda's billed duration while it waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Ascending pages stop this far behind now: an event's id (its receive time) is taken a few
/// milliseconds before it is stored, and DynamoDB's index and eventually consistent reads follow
/// the write shortly after, so an event younger than this could still appear *before* one
/// already returned.
pub const SETTLE: Duration = Duration::from_millis(1000);

/// Rows a single request reads at most while filtering by type (then it answers with what it
/// found and a cursor to continue from).
const SCAN_BUDGET: usize = 5000;

/// `GET /v1/events` query parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events of this source.
    pub source: Option<String>,
    /// Exact type or `prefix.*`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// RFC 3339, or a duration back from now (`90s`, `1h`, `2d`).
    pub since: Option<String>,
    /// Newest first, older than this event id (the previous page's `next_cursor`).
    pub before: Option<String>,
    /// Ascending: events newer than this event id.
    pub after: Option<String>,
    /// With `after`: wait up to this long (`20s`, at most 25 s) for a first event.
    pub wait: Option<String>,
    /// Page size, 1-1000; 50 when absent.
    pub limit: Option<usize>,
}

/// The validated form of [`EventsQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventSearch {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub order: Order,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Newest first, optionally before an id.
    Newest { before: Option<String> },
    /// Oldest first after an id, waiting up to `wait` for at least one.
    After { after: String, wait: Duration },
}

/// A duration such as `20s`, `1h`, `2d` (humantime).
pub fn parse_duration(field: &'static str, value: &str) -> AdminResult<Duration> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            field_code(field),
            format!("{field} must be a duration such as 30s, 5m or 1h: {e}"),
        )
    })
}

fn field_code(field: &str) -> &'static str {
    match field {
        "since" => "invalid_since",
        "wait" => "invalid_wait",
        "after" => "invalid_after",
        "before" => "invalid_before",
        _ => "invalid_query",
    }
}

/// `since` as RFC 3339, or as a duration back from `now`.
pub fn parse_since(value: &str, now: DateTime<Utc>) -> AdminResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let back = humantime::parse_duration(value.trim()).map_err(|_| {
        invalid(
            "invalid_since",
            format!(
                "since must be RFC 3339 (2026-01-31T12:00:00Z) or a duration (1h), got {value:?}"
            ),
        )
    })?;
    let back = chrono::Duration::from_std(back)
        .map_err(|_| invalid("invalid_since", "since is too far back"))?;
    now.checked_sub_signed(back)
        .ok_or_else(|| invalid("invalid_since", "since is too far back"))
}

fn event_id(field: &'static str, value: String) -> AdminResult<String> {
    let ok = value
        .strip_prefix("evt_")
        .is_some_and(|rest| rest.parse::<ulid::Ulid>().is_ok());
    if ok {
        Ok(value)
    } else {
        Err(invalid(
            field_code(field),
            format!("{field} must be an event id (evt_…), got {value:?}"),
        ))
    }
}

/// A source id and an event type filter (exact or `prefix.*`), either optional: the selection of
/// event listings and bulk replays alike.
pub(super) fn check_selection(source: Option<&str>, event_type: Option<&str>) -> AdminResult<()> {
    if let Some(source) = source.filter(|s| !is_valid_slug(s)) {
        return Err(invalid(
            "invalid_source",
            format!("{source:?} is not a source id"),
        ));
    }
    if let Some(filter) = event_type.filter(|f| !is_valid_filter(f)) {
        return Err(invalid(
            "invalid_event_type",
            format!("{filter:?} is not an event type or a `prefix.*` filter"),
        ));
    }
    Ok(())
}

impl EventsQuery {
    /// Checks every parameter; `now` resolves a relative `since`.
    pub fn validate(self, now: DateTime<Utc>) -> AdminResult<EventSearch> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(invalid("invalid_limit", "limit must be between 1 and 1000"));
        }
        check_selection(self.source.as_deref(), self.event_type.as_deref())?;
        let since = self.since.map(|s| parse_since(&s, now)).transpose()?;
        let order = match (self.after, self.before, self.wait) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    "invalid_query",
                    "after and before cannot be combined",
                ))
            }
            (None, _, Some(_)) => {
                return Err(invalid("invalid_wait", "wait needs after=<event id>"))
            }
            (Some(after), None, wait) => {
                let wait = wait
                    .map(|w| parse_duration("wait", &w))
                    .transpose()?
                    .unwrap_or(Duration::ZERO);
                if wait > MAX_WAIT {
                    return Err(invalid(
                        "invalid_wait",
                        format!("wait is at most {}s", MAX_WAIT.as_secs()),
                    ));
                }
                Order::After {
                    after: event_id("after", after)?,
                    wait,
                }
            }
            (None, before, None) => Order::Newest {
                before: before.map(|b| event_id("before", b)).transpose()?,
            },
        };
        Ok(EventSearch {
            source: self.source,
            event_type: self.event_type,
            since,
            order,
            limit,
        })
    }
}

impl EventSearch {
    fn wants(&self, e: &EventSummary) -> bool {
        self.event_type
            .as_deref()
            .is_none_or(|f| matches(f, &e.event_type))
    }
}

impl Admin {
    /// `GET /v1/events`: see [`EventsQuery`]. Newest first by default; with `after`, oldest
    /// first and `next_cursor` is always the id to pass as the next `after` (it advances past
    /// events the filters skipped, so a follower never reads them again).
    pub async fn search_events(&self, search: EventSearch) -> AdminResult<EventPage> {
        match search.order.clone() {
            Order::Newest { before } => self.newest(&search, before).await,
            Order::After { after, wait } => {
                let deadline = tokio::time::Instant::now() + wait;
                let mut after = after;
                loop {
                    let page = self.ascending(&search, after).await?;
                    if !page.data.is_empty() || tokio::time::Instant::now() >= deadline {
                        return Ok(page);
                    }
                    after = page.next_cursor.unwrap_or_default();
                    tokio::time::sleep_until(
                        deadline.min(tokio::time::Instant::now() + POLL_INTERVAL),
                    )
                    .await;
                }
            }
        }
    }

    async fn newest(&self, search: &EventSearch, before: Option<String>) -> AdminResult<EventPage> {
        let floor = search.since.map(id_floor);
        let mut before = before;
        let mut data = Vec::new();
        let mut scanned = 0;
        loop {
            let query = EventQuery {
                source_id: search.source.clone(),
                before: before.clone(),
                limit: search.limit,
            };
            let page = self.backend.events.list_events(&query).await?;
            let full = page.len() == search.limit;
            scanned += page.len();
            for e in page {
                if floor.as_ref().is_some_and(|f| e.id <= *f) {
                    return Ok(EventPage {
                        data,
                        next_cursor: None,
                    });
                }
                before = Some(e.id.clone());
                if search.wants(&e) {
                    data.push(e);
                    if data.len() == search.limit {
                        return Ok(EventPage {
                            data,
                            next_cursor: before,
                        });
                    }
                }
            }
            if !full {
                return Ok(EventPage {
                    data,
                    next_cursor: None,
                });
            }
            if scanned >= SCAN_BUDGET {
                // Bounded work per request: the cursor continues where the scan stopped.
                return Ok(EventPage {
                    data,
                    next_cursor: before,
                });
            }
        }
    }

    async fn ascending(&self, search: &EventSearch, after: String) -> AdminResult<EventPage> {
        let settled = Utc::now() - chrono::Duration::from_std(SETTLE).unwrap_or_default();
        let after = match search.since.map(id_floor) {
            Some(floor) if floor > after => floor,
            _ => after,
        };
        let mut range = EventRange {
            source_id: search.source.clone(),
            after,
            through: id_ceiling(settled),
        };
        let mut data = Vec::new();
        let mut scanned = 0;
        loop {
            let page = self
                .backend
                .events
                .events_page(&range, search.limit)
                .await?;
            let full = page.len() == search.limit;
            scanned += page.len();
            for e in page {
                range.after = e.id.clone();
                if search.wants(&e) {
                    data.push(e);
                    if data.len() == search.limit {
                        break;
                    }
                }
            }
            if data.len() == search.limit || !full || scanned >= SCAN_BUDGET {
                return Ok(EventPage {
                    data,
                    next_cursor: Some(range.after),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const ID: &str = "evt_01KAAAAAAAAAAAAAAAAAAAAAAA";

    fn query(pairs: &[(&str, &str)]) -> EventsQuery {
        let text = serde_urlencoded_like(pairs);
        serde_json::from_value(text).expect("a query")
    }

    /// Query pairs as the JSON object serde sees (limit as a number).
    fn serde_urlencoded_like(pairs: &[(&str, &str)]) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            let value = match *k {
                "limit" => serde_json::json!(v.parse::<usize>().unwrap()),
                _ => serde_json::json!(v),
            };
            map.insert((*k).to_string(), value);
        }
        serde_json::Value::Object(map)
    }

    #[test]
    fn since_is_rfc3339_or_a_duration_back_from_now() {
        let cases = [
            ("2026-01-31T11:00:00Z", Some("2026-01-31T11:00:00+00:00")),
            (
                "2026-01-31T13:00:00+02:00",
                Some("2026-01-31T11:00:00+00:00"),
            ),
            ("1h", Some("2026-01-31T11:00:00+00:00")),
            ("90s", Some("2026-01-31T11:58:30+00:00")),
            ("2d", Some("2026-01-29T12:00:00+00:00")),
            ("yesterday", None),
            ("", None),
            ("-1h", None),
        ];
        for (input, expected) in cases {
            let got = parse_since(input, now()).ok().map(|t| t.to_rfc3339());
            assert_eq!(got.as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn queries_are_validated_with_a_code_per_parameter() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<&'a str, &'a str>);
        let cases: &[Case] = &[
            (&[], Ok("newest")),
            (&[("before", ID)], Ok("newest")),
            (&[("after", ID)], Ok("after 0s")),
            (&[("after", ID), ("wait", "20s")], Ok("after 20s")),
            (&[("after", ID), ("wait", "25s")], Ok("after 25s")),
            (&[("after", ID), ("wait", "26s")], Err("invalid_wait")),
            (&[("after", ID), ("wait", "soon")], Err("invalid_wait")),
            (&[("wait", "5s")], Err("invalid_wait")),
            (&[("after", "sub_1")], Err("invalid_after")),
            (&[("after", "evt_nope")], Err("invalid_after")),
            (&[("before", "x")], Err("invalid_before")),
            (&[("after", ID), ("before", ID)], Err("invalid_query")),
            (&[("type", "issues.*")], Ok("newest")),
            (&[("type", "a*b")], Err("invalid_event_type")),
            (&[("source", "Bad Source")], Err("invalid_source")),
            (&[("since", "1h")], Ok("newest")),
            (&[("since", "last week")], Err("invalid_since")),
            (&[("limit", "0")], Err("invalid_limit")),
            (&[("limit", "1001")], Err("invalid_limit")),
        ];
        for (pairs, expected) in cases {
            let got = query(pairs).validate(now()).map(|s| match s.order {
                Order::Newest { .. } => "newest".to_string(),
                Order::After { wait, .. } => format!("after {}s", wait.as_secs()),
            });
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{pairs:?}"),
                (Err(super::super::AdminError::Invalid { code, .. }), Err(want)) => {
                    assert_eq!(code, *want, "{pairs:?}")
                }
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
