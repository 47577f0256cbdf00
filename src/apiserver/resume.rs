//! Store watches that outlive a store restart. When the store's watch fails as unavailable (or
//! the store closes it), the watch is opened again from the last revision it delivered, with a
//! capped exponential pause, for up to `RETRY_FOR`; the caller sees one unbroken stream of
//! events, none missed and none twice. A compacted revision, or a store gone for longer, ends
//! the stream with that error.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;

use crate::store::{Store, StoreError, StoreEvent, WatchStream};

/// How long a broken store watch keeps being opened again before the watch ends in an error.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

struct State {
    store: Arc<dyn Store>,
    prefix: String,
    /// The revision of the last event delivered (or the one the watch started after).
    last: i64,
    inner: Option<WatchStream>,
    done: bool,
}

fn revision_of(ev: &StoreEvent) -> i64 {
    match ev {
        StoreEvent::Put { revision, .. } | StoreEvent::Delete { revision, .. } => *revision,
    }
}

/// `first`, a watch of `prefix` after revision `after`, continued across store outages.
pub fn resumable(
    store: Arc<dyn Store>,
    prefix: String,
    after: i64,
    first: WatchStream,
) -> WatchStream {
    let state = State {
        store,
        prefix,
        last: after,
        inner: Some(first),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let Some(inner) = st.inner.as_mut() else {
                match reopen(st.store.as_ref(), &st.prefix, st.last).await {
                    Ok(w) => {
                        st.inner = Some(w);
                        continue;
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            };
            match inner.next().await {
                Some(Ok(ev)) => {
                    st.last = revision_of(&ev);
                    return Some((Ok(ev), st));
                }
                Some(Err(StoreError::Unavailable(why))) => {
                    tracing::info!(prefix = %st.prefix, after = st.last, %why, "store watch broke; opening it again");
                    st.inner = None;
                }
                None => {
                    tracing::info!(prefix = %st.prefix, after = st.last, "the store ended a watch; opening it again");
                    st.inner = None;
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
    .boxed()
}

/// Opens the watch of `prefix` again after `last`, pausing between tries, while the store is
/// unavailable and `RETRY_FOR` has not passed.
async fn reopen(store: &dyn Store, prefix: &str, last: i64) -> Result<WatchStream, StoreError> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match store.watch(prefix, last).await {
            Ok(w) => return Ok(w),
            Err(StoreError::Unavailable(why)) => {
                if started.elapsed() + pause > RETRY_FOR {
                    return Err(StoreError::Unavailable(format!(
                        "the store watch could not be opened again for {}s (after revision {}): {why}",
                        RETRY_FOR.as_secs(),
                        last
                    )));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A memory store whose watches break after one event, and whose first `refusals` reopen
    /// attempts fail as unavailable: an etcd that restarts.
    struct Flaky {
        inner: MemoryStore,
        opened: AtomicUsize,
        refusals: usize,
    }

    #[async_trait::async_trait]
    impl Store for Flaky {
        async fn get(&self, k: &str) -> Result<Option<crate::store::Versioned>, StoreError> {
            self.inner.get(k).await
        }
        async fn list(&self, p: &str) -> Result<(Vec<crate::store::Versioned>, i64), StoreError> {
            self.inner.list(p).await
        }
        async fn create(&self, k: &str, v: Vec<u8>) -> Result<i64, StoreError> {
            self.inner.create(k, v).await
        }
        async fn update(&self, k: &str, v: Vec<u8>, e: i64) -> Result<i64, StoreError> {
            self.inner.update(k, v, e).await
        }
        async fn delete(
            &self,
            k: &str,
            e: Option<i64>,
        ) -> Result<(crate::store::Versioned, i64), StoreError> {
            self.inner.delete(k, e).await
        }
        async fn watch(&self, p: &str, after: i64) -> Result<WatchStream, StoreError> {
            let n = self.opened.fetch_add(1, Ordering::SeqCst);
            if n > 0 && n <= self.refusals {
                return Err(StoreError::Unavailable("connect error".into()));
            }
            let broken = futures::stream::iter([Err(StoreError::Unavailable("reset".into()))]);
            Ok(self
                .inner
                .watch(p, after)
                .await?
                .take(1)
                .chain(broken)
                .boxed())
        }
        async fn revision(&self) -> Result<i64, StoreError> {
            self.inner.revision().await
        }
        async fn campaign(&self, n: &str, c: &str) -> Result<crate::store::Leadership, StoreError> {
            self.inner.campaign(n, c).await
        }
    }

    #[tokio::test]
    async fn a_broken_watch_resumes_after_the_last_event_it_delivered() {
        let store = Arc::new(Flaky {
            inner: MemoryStore::default(),
            opened: AtomicUsize::new(0),
            refusals: 3,
        });
        for k in ["a", "b", "c"] {
            store
                .create(&format!("/p/{k}"), b"x".to_vec())
                .await
                .unwrap();
        }
        let first = store.watch("/p/", 0).await.unwrap();
        let mut w = resumable(store.clone(), "/p/".into(), 0, first);
        let mut revs = Vec::new();
        for _ in 0..3 {
            revs.push(revision_of(&w.next().await.unwrap().unwrap()));
        }
        assert_eq!(
            revs,
            vec![1, 2, 3],
            "every event once, in order, across the breaks"
        );
    }
}
