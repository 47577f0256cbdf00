//! The store: a narrow key/value trait with revisions, compare-and-swap writes and watches.
//! etcd (`EtcdStore`) serves the master and the integration tests; `MemoryStore` serves unit
//! tests of pure logic. A revision is etcd's `mod_revision` and becomes `resourceVersion`.

mod etcd;
mod etcd_tls;
mod memory;

pub use etcd::EtcdStore;
pub use etcd_tls::EtcdTlsFiles;
pub use memory::MemoryStore;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A stored value with the revision that last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// The key was written at `revision`; `prev` is the value before (None when created).
    Put {
        key: String,
        value: Vec<u8>,
        revision: i64,
        prev: Option<Vec<u8>>,
    },
    /// The key was deleted at `revision`; `prev` is its last value.
    Delete {
        key: String,
        prev: Vec<u8>,
        revision: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{key} was changed by someone else (expected revision {expected}, now {actual})")]
    Conflict {
        key: String,
        expected: i64,
        actual: i64,
    },
    #[error("revision {0} has been compacted; list again to get a current revision")]
    Compacted(i64),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request itself cannot be served (a revision out of range).
    #[error("{0}")]
    Invalid(String),
}

/// One page of a ranged list: what `Store::list_page` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Versioned>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// How many keys of the range come after the page.
    pub remaining: i64,
}

pub type WatchStream = BoxStream<'static, Result<StoreEvent, StoreError>>;

/// The operations the API server needs, and nothing more.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Every key under `prefix`, in key order, with the store revision the list was read at.
    async fn list(&self, prefix: &str) -> Result<(Vec<Versioned>, i64), StoreError>;
    /// Up to `limit` keys under `prefix` from `start` on (inclusive), read at `revision` (0:
    /// the current one; an older one the store has compacted is `Compacted`). The default
    /// reads the whole prefix at the current revision: fine for the memory store of unit tests.
    async fn list_page(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: i64,
    ) -> Result<Page, StoreError> {
        let _ = revision;
        let (items, revision) = self.list(prefix).await?;
        let mut from: Vec<Versioned> = items
            .into_iter()
            .filter(|v| v.key.as_str() >= start)
            .collect();
        let rest = from.split_off(limit.min(from.len()));
        Ok(Page {
            items: from,
            revision,
            remaining: rest.len() as i64,
        })
    }
    /// Creates `key`; fails with `AlreadyExists` if present. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64, StoreError>;
    /// Replaces `key` only if it is still at `expected`; `Conflict` otherwise.
    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<i64, StoreError>;
    /// Deletes `key` (only at `expected` when given). Returns the deleted value and the revision
    /// of the deletion.
    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(Versioned, i64), StoreError>;
    /// Changes under `prefix` after `after_revision` (exclusive), in order.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StoreError>;
    /// The current revision of the whole store.
    async fn revision(&self) -> Result<i64, StoreError>;
    /// Waits until this process leads `name` among all that campaign for it (one leader at a
    /// time, across masters); `Leadership::lost` resolves if that ends.
    async fn campaign(&self, name: &str, candidate: &str) -> Result<Leadership, StoreError>;
}

/// Being the leader of an election. Dropping it steps down.
pub struct Leadership {
    lost: tokio::sync::watch::Receiver<bool>,
    _hold: Box<dyn Send + Sync>,
}

impl Leadership {
    pub fn new(lost: tokio::sync::watch::Receiver<bool>, hold: Box<dyn Send + Sync>) -> Self {
        Leadership { lost, _hold: hold }
    }

    /// Resolves when leadership is lost (the store stopped renewing it).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

#[doc(hidden)]
pub mod contract {
    //! The behaviour every `Store` must have, run against each implementation (the memory
    //! store in unit tests, etcd in `tests/store.rs`).
    use super::*;
    use futures::StreamExt;

    pub async fn check(store: &dyn Store, prefix: &str) {
        let k = format!("{prefix}/a");
        let r1 = store.create(&k, b"1".to_vec()).await.unwrap();
        assert!(matches!(
            store.create(&k, b"x".to_vec()).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let got = store.get(&k).await.unwrap().unwrap();
        assert_eq!((got.value.as_slice(), got.revision), (&b"1"[..], r1));

        let r2 = store.update(&k, b"2".to_vec(), r1).await.unwrap();
        assert!(r2 > r1);
        match store.update(&k, b"3".to_vec(), r1).await {
            Err(StoreError::Conflict {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (r1, r2)),
            other => panic!("a stale update must conflict, got {other:?}"),
        }
        assert!(matches!(
            store
                .update(&format!("{prefix}/none"), b"x".to_vec(), 1)
                .await,
            Err(StoreError::NotFound(_))
        ));

        store
            .create(&format!("{prefix}/b"), b"b".to_vec())
            .await
            .unwrap();
        let (items, rev) = store.list(&format!("{prefix}/")).await.unwrap();
        assert_eq!(
            items.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
            vec![k.as_str(), &format!("{prefix}/b")]
        );
        assert!(rev >= r2);

        let mut w = store.watch(&format!("{prefix}/"), r1).await.unwrap();
        assert!(matches!(
            store.delete(&k, Some(r1)).await,
            Err(StoreError::Conflict { .. })
        ));
        let (prev, rd) = store.delete(&k, None).await.unwrap();
        assert_eq!(prev.value, b"2");
        assert!(store.get(&k).await.unwrap().is_none());

        // the watch replays from after r1: update to 2, create of b, then the delete
        match w.next().await.unwrap().unwrap() {
            StoreEvent::Put {
                value,
                prev,
                revision,
                ..
            } => {
                assert_eq!(
                    (value.as_slice(), prev.as_deref(), revision),
                    (&b"2"[..], Some(&b"1"[..]), r2)
                )
            }
            e => panic!("expected the update, got {e:?}"),
        }
        match w.next().await.unwrap().unwrap() {
            StoreEvent::Put { prev, .. } => assert_eq!(prev, None),
            e => panic!("expected the create, got {e:?}"),
        }
        match w.next().await.unwrap().unwrap() {
            StoreEvent::Delete { prev, revision, .. } => {
                assert_eq!((prev.as_slice(), revision), (&b"2"[..], rd))
            }
            e => panic!("expected the delete, got {e:?}"),
        }
    }
}
