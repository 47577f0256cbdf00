//! The work queue of one controller (client-go's workqueue with its per-item exponential
//! failure rate limiter; kube-rs's Controller scheduler): keys, not objects, so that a burst of
//! changes to one object is one reconcile; a key is never handed to two workers at once (one
//! that changes while it runs is queued again when it ends); a failed key waits 5 ms, 10 ms,
//! 20 ms, ... up to a cap before its next try, and a success resets that; a reconcile may ask
//! for its key again after a delay (`Action::requeue`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apiserver::ApiError;

/// What a reconcile asks for next (kube-rs's `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Action {
    /// Reconcile the key again after this long even if nothing changes (time-driven state:
    /// minReadySeconds, deadlines, schedules).
    pub requeue_after: Option<Duration>,
}

impl Action {
    /// Nothing to do until the object (or something mapped to it) changes.
    pub fn await_change() -> Action {
        Action::default()
    }

    /// Come back after `d`.
    pub fn requeue(d: Duration) -> Action {
        Action {
            requeue_after: Some(d),
        }
    }
}

/// Per-key exponential back-off: `base` doubling per consecutive failure, at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[derive(Default)]
struct Inner {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    running: HashSet<String>,
    /// Keys added while they ran: queued again when they end.
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
    delayed: BTreeMap<Instant, Vec<String>>,
    /// When each delayed key is due: a key waits once, at its earliest time (client-go's
    /// delaying queue), so a pass that requeues itself after every run, also the runs that
    /// changes started, keeps one timer instead of one more per change.
    due: HashMap<String, Instant>,
}

impl Inner {
    fn add(&mut self, key: String) -> bool {
        if self.running.contains(&key) {
            self.dirty.insert(key);
            return false;
        }
        if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
            return true;
        }
        false
    }

    /// Makes `key` due at `at` unless it is due earlier already; whether that changed anything.
    fn delay(&mut self, key: String, at: Instant) -> bool {
        match self.due.get(&key) {
            Some(&earlier) if earlier <= at => return false,
            Some(&later) => {
                if let Some(keys) = self.delayed.get_mut(&later) {
                    keys.retain(|k| *k != key);
                    if keys.is_empty() {
                        self.delayed.remove(&later);
                    }
                }
            }
            None => {}
        }
        self.due.insert(key.clone(), at);
        self.delayed.entry(at).or_default().push(key);
        true
    }

    fn promote_due(&mut self, now: Instant) -> bool {
        let mut added = false;
        while let Some(entry) = self.delayed.first_entry() {
            if *entry.key() > now {
                break;
            }
            for k in entry.remove() {
                self.due.remove(&k);
                added |= self.add(k);
            }
        }
        added
    }
}

/// A controller's queue of keys (`namespace/name`, or one fixed key for a whole-cluster pass).
pub struct Queue {
    inner: Mutex<Inner>,
    wake: Notify,
    backoff: Backoff,
}

impl Queue {
    pub fn new(backoff: Backoff) -> Arc<Queue> {
        Arc::new(Queue {
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            backoff,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` (once, however often it is added before a worker takes it).
    pub fn add(&self, key: impl Into<String>) {
        if self.lock().add(key.into()) {
            self.wake.notify_one();
        }
    }

    /// Queues `key` after `d`.
    pub fn add_after(&self, key: impl Into<String>, d: Duration) {
        if d.is_zero() {
            return self.add(key);
        }
        if self.lock().delay(key.into(), Instant::now() + d) {
            // a sleeping worker recomputes its deadline
            self.wake.notify_one();
        }
    }

    /// How many times in a row `key` failed.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The number of keys waiting (ready or delayed), not counting the running ones.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next key to reconcile; it counts as running until `done`.
    pub async fn next(&self) -> String {
        loop {
            let deadline = {
                let mut inner = self.lock();
                inner.promote_due(Instant::now());
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.running.insert(key.clone());
                    let more = !inner.ready.is_empty();
                    drop(inner);
                    if more {
                        self.wake.notify_one();
                    }
                    return key;
                }
                inner.delayed.keys().next().copied()
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Ends `key`'s run with its reconcile's result: back-off on error, reset and an optional
    /// requeue on success, and at once again if it changed while it ran.
    pub fn done(&self, key: &str, result: &Result<Action, ApiError>) {
        let delay = {
            let mut inner = self.lock();
            inner.running.remove(key);
            let delay = match result {
                Ok(a) => {
                    inner.failures.remove(key);
                    a.requeue_after
                }
                Err(_) => {
                    let n = inner.failures.entry(key.to_string()).or_insert(0);
                    *n = n.saturating_add(1);
                    Some(self.backoff.delay(*n))
                }
            };
            if inner.dirty.remove(key) {
                inner.add(key.to_string());
                self.wake.notify_one();
            }
            delay
        };
        if let Some(d) = delay {
            self.add_after(key.to_string(), d);
        }
    }
}

/// A running reconcile.
pub type Pending = BoxFuture<'static, Result<Action, ApiError>>;

/// A controller's reconcile of one key.
pub type Reconcile = Arc<dyn Fn(String) -> Pending + Send + Sync>;

/// One worker: takes keys from `queue` and reconciles them until `stop`.
pub async fn work(
    name: &'static str,
    queue: Arc<Queue>,
    reconcile: Reconcile,
    stop: CancellationToken,
) {
    loop {
        let key = tokio::select! {
            _ = stop.cancelled() => return,
            k = queue.next() => k,
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = reconcile(key.clone()) => r,
        };
        if let Err(e) = &result {
            let failures = queue.failures(&key) + 1;
            tracing::warn!(controller = name, key = %key, failures, error = %e, "reconcile failed; backing off");
        }
        queue.done(&key, &result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `waited` is at least `want`, and not much more (a loaded machine is slow to wake).
    fn assert_about(waited: Duration, want: Duration) {
        assert!(
            waited >= want && waited <= want * 2 + Duration::from_millis(200),
            "waited {waited:?}, want {want:?}"
        );
    }

    /// Slower than the default, so that the waits stand out from a loaded machine's jitter.
    const SLOW: Backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(400),
    };

    #[tokio::test]
    async fn a_key_queued_twice_runs_once() {
        let q = Queue::new(Backoff::default());
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let first = q.next().await;
        let second = q.next().await;
        assert_eq!((first.as_str(), second.as_str()), ("a", "b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_running_waits_for_the_run_to_end() {
        let q = Queue::new(Backoff::default());
        q.add("a");
        let k = q.next().await;
        q.add("a");
        assert!(q.is_empty(), "not handed out while running");
        q.done(&k, &Ok(Action::await_change()));
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn no_two_reconciles_of_one_key_overlap() {
        let q = Queue::new(Backoff::default());
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let (overlaps, runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let reconcile: Reconcile = {
            let (running, overlaps, runs) = (running.clone(), overlaps.clone(), runs.clone());
            Arc::new(move |key: String| -> Pending {
                let (running, overlaps, runs) = (running.clone(), overlaps.clone(), runs.clone());
                Box::pin(async move {
                    if !running.lock().unwrap().insert(key.clone()) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    running.lock().unwrap().remove(&key);
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(Action::await_change())
                })
            })
        };
        let stop = CancellationToken::new();
        let workers: Vec<_> = (0..8)
            .map(|_| tokio::spawn(work("test", q.clone(), reconcile.clone(), stop.clone())))
            .collect();
        for i in 0..400 {
            q.add(format!("k{}", i % 3));
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(q.is_empty() && running.lock().unwrap().is_empty()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        for w in workers {
            w.await.unwrap();
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
        let runs = runs.load(Ordering::SeqCst);
        assert!((3..400).contains(&runs), "changes coalesced: {runs} runs");
    }

    #[test]
    fn back_off_doubles_from_5ms_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(5));
        assert_eq!(b.delay(2), Duration::from_millis(10));
        assert_eq!(b.delay(5), Duration::from_millis(80));
        assert_eq!(b.delay(40), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn back_off_grows_per_key_and_resets_on_success() {
        let q = Queue::new(SLOW);
        let err = || Err(ApiError::Internal("boom".into()));
        q.add("bad");
        q.add("good");
        assert_eq!(q.next().await, "bad");
        q.done("bad", &err());
        // another key is not held back by the failing one
        assert_eq!(q.next().await, "good");
        q.done("good", &Ok(Action::await_change()));
        for n in 2..=6u32 {
            let t = Instant::now();
            assert_eq!(q.next().await, "bad");
            assert_about(Instant::now() - t, SLOW.delay(n - 1));
            q.done("bad", &err());
            assert_eq!(q.failures("bad"), n);
        }
        assert_eq!(q.next().await, "bad");
        q.done("bad", &Ok(Action::await_change()));
        assert_eq!(q.failures("bad"), 0, "a success resets");
        q.add("bad");
        assert_eq!(q.next().await, "bad");
        let t = Instant::now();
        q.done("bad", &err());
        assert_eq!(q.next().await, "bad");
        assert_about(Instant::now() - t, SLOW.base);
        assert_eq!(q.failures("good"), 0);
    }

    #[tokio::test]
    async fn a_key_waits_once_at_its_earliest_time_however_often_it_requeues() {
        let q = Queue::new(Backoff::default());
        // a whole-cluster pass woken by 1,000 changes, each run asking to come back in 2 s
        for _ in 0..1000 {
            q.add("pass");
            let k = q.next().await;
            q.done(&k, &Ok(Action::requeue(Duration::from_secs(2))));
        }
        assert_eq!(q.len(), 1, "one timer for the pass, not one per run");
        // a later requeue does not postpone it; an earlier one brings it forward
        q.add_after("pass", Duration::from_secs(60));
        assert_eq!(q.len(), 1);
        let t = Instant::now();
        q.add_after("pass", Duration::from_millis(100));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "pass");
        assert_about(Instant::now() - t, Duration::from_millis(100));
        assert!(q.is_empty(), "nothing else was waiting");
        q.add_after("other", Duration::from_millis(50));
        assert_eq!(
            q.next().await,
            "other",
            "a key that ran may be delayed again"
        );
    }

    #[tokio::test]
    async fn requeue_after_comes_back_after_the_delay() {
        let q = Queue::new(Backoff::default());
        q.add("cron");
        let k = q.next().await;
        let t = Instant::now();
        q.done(&k, &Ok(Action::requeue(Duration::from_millis(300))));
        assert!(q.failures("cron") == 0);
        assert_eq!(q.next().await, "cron");
        assert_about(Instant::now() - t, Duration::from_millis(300));
    }
}
