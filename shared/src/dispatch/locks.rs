//! This process's locks: per subscription (health, rate-limit bookings) and per (event,
//! subscription) pair (one run of a pair's delivery at a time).

use std::collections::HashMap;
use std::sync::Arc;

/// One lock per subscription, guarding a value of this process's: for health, the latest
/// outcome this process wrote (which the cached subscription may predate); for rate limits,
/// nothing. The stores make each update atomic across processes; taking them one at a time
/// within a process spares the conditional writes most of their conflicts (and keeps a burst of
/// deliveries that all find a probe due from racing for it).
#[derive(Clone)]
pub(super) struct PerSubscription<T>(
    Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<T>>>>>,
);

impl<T> Default for PerSubscription<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Default> PerSubscription<T> {
    pub(super) fn of(&self, subscription_id: &str) -> Arc<tokio::sync::Mutex<T>> {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(subscription_id.to_owned()).or_default().clone()
    }
}

/// Runs of one (event, subscription) pair in this process, one at a time. A task handed out
/// twice (an SQS duplicate, or a message visible again while its first run still works) would
/// otherwise have both runs read the attempt log before either recorded the pair's delivery, and
/// deliver twice; taken in turn, the second run finds the first's attempt and skips it. Per pair,
/// so a slow sibling holds back no other pair's retry. Across processes the attempt log is all
/// there is.
#[derive(Clone, Default)]
pub(super) struct PerPair(Arc<std::sync::Mutex<Pairs>>);

#[derive(Default)]
struct Pairs {
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Size at which idle locks are next dropped (0: not yet set, [`PER_PAIR_PRUNE_AT`]).
    prune_at: usize,
}

/// Locks kept before those nobody holds or waits for are first dropped.
const PER_PAIR_PRUNE_AT: usize = 1024;

impl PerPair {
    pub(super) fn of(&self, event_id: &str, subscription_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut pairs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Pairs come and go: past the bound, keep only the locks held or waited for (whose
        // count includes a holder's or a waiter's clone). The bound then doubles what is left,
        // so many pairs in flight at once cost one scan per doubling, not one per lookup.
        if pairs.locks.len() >= pairs.prune_at.max(PER_PAIR_PRUNE_AT) {
            pairs.locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            pairs.prune_at = (2 * pairs.locks.len()).max(PER_PAIR_PRUNE_AT);
        }
        // Ids hold no NUL: the pair's key is unambiguous.
        let key = format!("{event_id}\0{subscription_id}");
        pairs.locks.entry(key).or_default().clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().locks.len()
    }

    #[cfg(test)]
    fn prune_at(&self) -> usize {
        self.0.lock().unwrap().prune_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_run_per_pair_at_a_time_and_idle_locks_pruned() {
        let turns = PerPair::default();
        let first = turns.of("evt_1", "sub_a");
        let held = first.lock().await;
        let second = turns.of("evt_1", "sub_a");
        assert!(second.try_lock().is_err(), "the same pair waits its turn");
        assert!(
            turns.of("evt_1", "sub_b").try_lock().is_ok(),
            "a sibling does not"
        );
        assert!(
            turns.of("evt_2", "sub_a").try_lock().is_ok(),
            "another event does not"
        );
        drop(held);
        assert!(second.try_lock().is_ok(), "its turn once the first is done");
        // Past the bound only the locks still held or waited for stay.
        let kept = turns.of("evt_kept", "sub_a");
        let _guard = kept.try_lock().unwrap();
        for n in 0..PER_PAIR_PRUNE_AT {
            turns.of(&format!("evt_idle_{n}"), "sub_a");
        }
        assert!(turns.len() <= PER_PAIR_PRUNE_AT, "{}", turns.len());
        assert!(
            turns.of("evt_kept", "sub_a").try_lock().is_err(),
            "a held lock survives pruning"
        );
    }

    #[tokio::test]
    async fn many_pairs_in_flight_are_not_scanned_on_every_lookup() {
        let turns = PerPair::default();
        // More pairs held at once than the first bound.
        let held: Vec<_> = (0..PER_PAIR_PRUNE_AT + 100)
            .map(|n| turns.of(&format!("evt_{n}"), "sub_a"))
            .collect();
        let _guards: Vec<_> = held.iter().map(|l| l.try_lock().unwrap()).collect();
        turns.of("evt_next", "sub_a");
        assert!(
            turns.prune_at() >= 2 * PER_PAIR_PRUNE_AT,
            "the bound moved past what is held: {}",
            turns.prune_at()
        );
        assert_eq!(
            turns.len(),
            PER_PAIR_PRUNE_AT + 101,
            "nothing held was dropped"
        );
    }
}
