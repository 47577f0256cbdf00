//! An in-memory `Store` with etcd's semantics (one global revision, CAS, replayable watch), for
//! unit tests of logic that needs a store but not etcd itself.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{Store, StoreError, StoreEvent, Versioned, WatchStream};

pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<(i64, StoreEvent)>,
}

#[derive(Default)]
struct State {
    revision: i64,
    data: BTreeMap<String, (Vec<u8>, i64)>,
    history: Vec<(i64, StoreEvent)>,
}

impl State {
    /// Moves to the next revision; a store at the largest revision takes no more writes.
    fn next_revision(&mut self) -> Result<i64, StoreError> {
        self.revision = self.revision.checked_add(1).ok_or_else(|| {
            StoreError::Invalid(format!(
                "the store is at revision {}, the largest there is",
                self.revision
            ))
        })?;
        Ok(self.revision)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            events: broadcast::channel(4096).0,
        }
    }
}

impl MemoryStore {
    fn record(&self, st: &mut State, ev: StoreEvent) -> i64 {
        let rev = st.revision;
        st.history.push((rev, ev.clone()));
        let _ = self.events.send((rev, ev));
        rev
    }
}

fn key_of(ev: &StoreEvent) -> &str {
    match ev {
        StoreEvent::Put { key, .. } | StoreEvent::Delete { key, .. } => key,
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let st = self.state.lock().unwrap();
        Ok(st.data.get(key).map(|(v, r)| Versioned {
            key: key.into(),
            value: v.clone(),
            revision: *r,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Versioned>, i64), StoreError> {
        let st = self.state.lock().unwrap();
        let items = st
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, r))| Versioned {
                key: k.clone(),
                value: v.clone(),
                revision: *r,
            })
            .collect();
        Ok((items, st.revision))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64, StoreError> {
        let mut st = self.state.lock().unwrap();
        if st.data.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.into()));
        }
        let rev = st.next_revision()?;
        st.data.insert(key.into(), (value.clone(), rev));
        Ok(self.record(
            &mut st,
            StoreEvent::Put {
                key: key.into(),
                value,
                revision: rev,
                prev: None,
            },
        ))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<i64, StoreError> {
        let mut st = self.state.lock().unwrap();
        let (prev, actual) = st
            .data
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.into()))?;
        if actual != expected {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual,
            });
        }
        let rev = st.next_revision()?;
        st.data.insert(key.into(), (value.clone(), rev));
        Ok(self.record(
            &mut st,
            StoreEvent::Put {
                key: key.into(),
                value,
                revision: rev,
                prev: Some(prev),
            },
        ))
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(Versioned, i64), StoreError> {
        let mut st = self.state.lock().unwrap();
        let (prev, actual) = st
            .data
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.into()))?;
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual,
            });
        }
        let rev = st.next_revision()?;
        st.data.remove(key);
        self.record(
            &mut st,
            StoreEvent::Delete {
                key: key.into(),
                prev: prev.clone(),
                revision: rev,
            },
        );
        Ok((
            Versioned {
                key: key.into(),
                value: prev,
                revision: actual,
            },
            rev,
        ))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StoreError> {
        let st = self.state.lock().unwrap();
        let rx = self.events.subscribe();
        let replay: Vec<_> = st
            .history
            .iter()
            .filter(|(r, e)| *r > after_revision && key_of(e).starts_with(prefix))
            .map(|(_, e)| Ok(e.clone()))
            .collect();
        let upto = st.revision;
        let prefix = prefix.to_string();
        let live = BroadcastStream::new(rx).filter_map(move |item| {
            let out = match item {
                Ok((r, e)) if r > upto && key_of(&e).starts_with(&prefix) => Some(Ok(e)),
                Ok(_) => None,
                Err(_) => Some(Err(StoreError::Unavailable("watch fell behind".into()))),
            };
            futures::future::ready(out)
        });
        Ok(futures::stream::iter(replay).chain(live).boxed())
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        Ok(self.state.lock().unwrap().revision)
    }

    /// One process holds a memory store: it leads at once, until dropped.
    async fn campaign(&self, _: &str, _: &str) -> Result<super::Leadership, StoreError> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Ok(super::Leadership::new(rx, Box::new(tx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_keeps_the_store_contract() {
        super::super::contract::check(&MemoryStore::default(), "/t").await;
    }
}
