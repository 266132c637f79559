//! Pages merged from several sorted partitions (the events table's shards, a source's
//! `by-source` shards), read lazily: each partition is first asked for a small share of the
//! page, and only the partitions that could still hold part of it are read further. Asking
//! every partition for a whole page would read `partitions × limit` items, and the events
//! table charges reads by whole item size.

use std::cmp::Ordering;
use std::future::Future;

use super::{string_attr, Item};
use crate::ports::StoreResult;

/// Where one partition's read stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    /// The last sort key read from it, if any.
    pub last: Option<String>,
    /// Nothing more to read (its last query returned no `LastEvaluatedKey`).
    pub exhausted: bool,
}

/// The partitions to read further before the first `limit` keys of everything read so far are
/// the first `limit` of the union: all those not exhausted when fewer than `limit` keys were
/// read; otherwise those not exhausted whose last key read comes before the `limit`-th key
/// (`nth`) in merge order, as their unread keys may still come before it too (keys are
/// unique: one that stopped at `nth` itself has only later keys left). `descending` is the
/// merge order.
pub(super) fn to_read_further(runs: &[Run], nth: Option<&str>, descending: bool) -> Vec<usize> {
    let before_nth = |last: &str, nth: &str| match last.cmp(nth) {
        Ordering::Less => !descending,
        Ordering::Greater => descending,
        Ordering::Equal => false,
    };
    runs.iter()
        .enumerate()
        .filter(|(_, run)| !run.exhausted)
        .filter(|(_, run)| match (run.last.as_deref(), nth) {
            (Some(last), Some(nth)) => before_nth(last, nth),
            _ => true,
        })
        .map(|(i, _)| i)
        .collect()
}

/// How many items to ask one partition for in a round. Ids spread over the partitions by hash,
/// so a partition holds about `λ = limit / partitions` of a page, rarely more than `λ + 3√λ`:
/// asking for that (plus 2) makes a second round rare; each further round asks twice as many.
pub(super) fn round_limit(limit: usize, partitions: usize, round: u32) -> usize {
    let mean = limit as f64 / partitions.max(1) as f64;
    let share = (mean + 3.0 * mean.sqrt() + 2.0).ceil() as usize;
    share
        .saturating_mul(1usize << round.min(20))
        .clamp(1, limit.max(1))
}

/// One query of a partition: its items in merge order and, when it may hold more, the key to
/// continue from.
pub(super) type Fetched = (Vec<Item>, Option<Item>);

/// The first `limit` items, in merge order by the string attribute `key`, of `partitions`
/// sorted partitions. `fetch(partition, start, limit)` runs one query of a partition from
/// `start` (its previous `LastEvaluatedKey`) for at most `limit` items.
pub(super) async fn merged<F, Fut>(
    partitions: usize,
    limit: usize,
    key: &str,
    descending: bool,
    fetch: F,
) -> StoreResult<Vec<Item>>
where
    F: Fn(usize, Option<Item>, usize) -> Fut,
    Fut: Future<Output = StoreResult<Fetched>>,
{
    if limit == 0 || partitions == 0 {
        return Ok(Vec::new());
    }
    let mut runs = vec![
        Run {
            last: None,
            exhausted: false,
        };
        partitions
    ];
    let mut starts: Vec<Option<Item>> = vec![None; partitions];
    let mut read: Vec<(String, Item)> = Vec::new();
    let mut pending: Vec<usize> = (0..partitions).collect();
    let mut round = 0;
    while !pending.is_empty() {
        let want = round_limit(limit, partitions, round);
        let answers = futures::future::try_join_all(
            pending.iter().map(|&i| fetch(i, starts[i].clone(), want)),
        )
        .await?;
        for (&i, (items, next)) in pending.iter().zip(answers) {
            for item in items {
                let sort_key = string_attr(&item, key)?;
                runs[i].last = Some(sort_key.clone());
                read.push((sort_key, item));
            }
            runs[i].exhausted = next.is_none();
            starts[i] = next;
        }
        read.sort_by(|a, b| {
            if descending {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            }
        });
        // One key in two partitions (an event stored twice across a change of the shard count,
        // `events::shards_to_read`) is listed once.
        read.dedup_by(|a, b| a.0 == b.0);
        let nth = read.get(limit - 1).map(|(k, _)| k.as_str());
        pending = to_read_further(&runs, nth, descending);
        round += 1;
    }
    read.truncate(limit);
    Ok(read.into_iter().map(|(_, item)| item).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(last: Option<&str>, exhausted: bool) -> Run {
        Run {
            last: last.map(str::to_owned),
            exhausted,
        }
    }

    #[test]
    fn only_partitions_that_may_hold_part_of_the_page_are_read_further() {
        /// (runs, nth, descending, expected)
        type Case = (Vec<Run>, Option<&'static str>, bool, Vec<usize>);
        let cases: Vec<Case> = vec![
            // Fewer than a page read: every partition not exhausted.
            (
                vec![
                    run(Some("b"), false),
                    run(None, false),
                    run(Some("a"), true),
                ],
                None,
                true,
                vec![0, 1],
            ),
            // Descending, the page's last key is "m": a partition that stopped at "p" (above
            // it) may still hold keys between "p" and "m"; one that stopped at "c" (below) has
            // only smaller keys left.
            (
                vec![run(Some("p"), false), run(Some("c"), false)],
                Some("m"),
                true,
                vec![0],
            ),
            // Ascending, mirrored.
            (
                vec![run(Some("p"), false), run(Some("c"), false)],
                Some("m"),
                false,
                vec![1],
            ),
            // Stopped exactly at the page's last key: its next key comes after it.
            (vec![run(Some("m"), false)], Some("m"), true, vec![]),
            // Exhausted partitions are never read again, wherever they stopped.
            (
                vec![run(Some("z"), true), run(None, true)],
                Some("m"),
                true,
                vec![],
            ),
            // A partition not read yet (no key) is read.
            (vec![run(None, false)], Some("m"), false, vec![0]),
        ];
        for (runs, nth, descending, expected) in cases {
            assert_eq!(
                to_read_further(&runs, nth, descending),
                expected,
                "{runs:?} nth {nth:?} descending {descending}"
            );
        }
    }

    #[test]
    fn rounds_ask_for_a_generous_share_then_double_up_to_the_page() {
        // (limit, partitions, round, expected)
        let cases = [
            (50, 128, 0, 5),
            (50, 128, 1, 10),
            (50, 128, 5, 50),
            (1000, 128, 0, 19),
            (1000, 4, 0, 300),
            (1000, 4, 2, 1000),
            (1, 1, 0, 1),
            (10, 0, 0, 10),
            (7, 3, 40, 7),
        ];
        for (limit, partitions, round, expected) in cases {
            assert_eq!(
                round_limit(limit, partitions, round),
                expected,
                "limit {limit} partitions {partitions} round {round}"
            );
        }
    }

    /// The lazy merge returns what sorting everything would, on random partitions.
    #[tokio::test]
    async fn the_lazy_merge_equals_the_full_merge() {
        use aws_sdk_dynamodb::types::AttributeValue;

        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..200 {
            let partitions = 1 + (next() % 9) as usize;
            let limit = 1 + (next() % 40) as usize;
            let descending = case % 2 == 0;
            let mut data: Vec<Vec<String>> = (0..partitions)
                .map(|_| {
                    let n = (next() % 30) as usize;
                    (0..n)
                        .map(|_| format!("k{:06}", next() % 1_000_000))
                        .collect()
                })
                .collect();
            for keys in &mut data {
                keys.sort();
                keys.dedup();
                if descending {
                    keys.reverse();
                }
            }
            let mut all: Vec<String> = data.iter().flatten().cloned().collect();
            all.sort();
            all.dedup();
            if descending {
                all.reverse();
            }
            all.truncate(limit);
            let fetch = |i: usize, start: Option<Item>, want: usize| {
                let from = start
                    .and_then(|s| s.get("n").and_then(|v| v.as_n().ok()?.parse().ok()))
                    .unwrap_or(0usize);
                let keys = &data[i];
                let end = (from + want).min(keys.len());
                let items = keys[from..end]
                    .iter()
                    .map(|k| Item::from([("id".to_owned(), AttributeValue::S(k.clone()))]))
                    .collect();
                let next = (end < keys.len())
                    .then(|| Item::from([("n".to_owned(), AttributeValue::N(end.to_string()))]));
                async move { Ok((items, next)) }
            };
            let got = merged(partitions, limit, "id", descending, fetch)
                .await
                .unwrap();
            let got: Vec<String> = got.iter().map(|i| string_attr(i, "id").unwrap()).collect();
            assert_eq!(got, all, "case {case}");
        }
    }

    /// Keys spread evenly by hash, as event ids over the table's shards: a page of 50 from
    /// 128 shards reads each shard's first share only (640 items), not 50 from each (6,400).
    #[tokio::test]
    async fn an_even_spread_is_read_in_one_round() {
        use aws_sdk_dynamodb::types::AttributeValue;
        use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

        let read = AtomicUsize::new(0);
        let calls = AtomicUsize::new(0);
        let fetch = |p: usize, start: Option<Item>, want: usize| {
            // Shard p holds keys i * 128 + p for i in 0..100, newest (largest) first.
            let from = start
                .and_then(|s| s.get("n").and_then(|v| v.as_n().ok()?.parse().ok()))
                .unwrap_or(0usize);
            let end = (from + want).min(100);
            read.fetch_add(end - from, AtomicOrdering::Relaxed);
            calls.fetch_add(1, AtomicOrdering::Relaxed);
            let items = (from..end)
                .map(|j| {
                    let k = (99 - j) * 128 + p;
                    Item::from([("id".to_owned(), AttributeValue::S(format!("k{k:06}")))])
                })
                .collect();
            let next = (end < 100)
                .then(|| Item::from([("n".to_owned(), AttributeValue::N(end.to_string()))]));
            async move { Ok((items, next)) }
        };
        let page = merged(128, 50, "id", true, fetch).await.unwrap();
        let keys: Vec<String> = page.iter().map(|i| string_attr(i, "id").unwrap()).collect();
        let expected: Vec<String> = (0..50).map(|j| format!("k{:06}", 12_799 - j)).collect();
        assert_eq!(keys, expected);
        assert_eq!(calls.into_inner(), 128, "one query per shard");
        assert_eq!(read.into_inner(), 640);
    }
}
