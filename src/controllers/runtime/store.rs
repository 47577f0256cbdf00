//! A shared, typed cache of one kind (`Store<T>`, client-go's indexer, kube-rs's reflector
//! store) and the one task that writes it (`reflect`): list once, then watch from the list's
//! resourceVersion, resume each ended watch from the last revision seen, and list again only
//! when the revision is gone (410). Readers take `Arc`s of the objects; nobody but the
//! reflector writes. Each change is handed to the subscribers (the controllers' mappers), which
//! turn it into keys of their work queues.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::admit::Object;
use crate::api::meta::ObjectMeta;
use crate::apiserver::ApiError;

use super::super::Api;

/// An object's place in a store: (namespace, name); the namespace is "" for cluster kinds.
pub type ObjectKey = (String, String);

/// Called with each object that changed (the new one, or the last one of a deleted object; a
/// modification calls it with the old one too, so that a changed owner wakes both).
pub type Subscriber<T> = Arc<dyn Fn(&T) + Send + Sync>;

struct Inner<T> {
    objects: HashMap<ObjectKey, (i64, Arc<T>)>,
    /// The keys of the objects whose controlling owner has a uid.
    by_owner: HashMap<String, HashSet<ObjectKey>>,
    /// The keys of the objects the store's mark picks (kept under the same lock as the
    /// objects, so it is never out of step with them).
    marked: HashSet<ObjectKey>,
}

/// The cache of one kind. Cloning it clones a handle to the same cache.
pub struct Store<T> {
    inner: Arc<RwLock<Inner<T>>>,
    /// The last revision applied; 0 until the first list is in (not synced).
    revision: watch::Sender<i64>,
    subscribers: Arc<RwLock<Vec<Subscriber<T>>>>,
    mark: Option<fn(&T) -> bool>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store {
            inner: self.inner.clone(),
            revision: self.revision.clone(),
            subscribers: self.subscribers.clone(),
            mark: self.mark,
        }
    }
}

impl<T: Object> Default for Store<T> {
    fn default() -> Self {
        Store::new()
    }
}

fn key_of(m: &ObjectMeta) -> ObjectKey {
    (m.namespace().to_string(), m.name().to_string())
}

impl<T: Object> Store<T> {
    pub fn new() -> Store<T> {
        Store {
            inner: Arc::new(RwLock::new(Inner {
                objects: HashMap::new(),
                by_owner: HashMap::new(),
                marked: HashSet::new(),
            })),
            revision: watch::Sender::new(0),
            subscribers: Arc::new(RwLock::new(Vec::new())),
            mark: None,
        }
    }

    /// A store that also keeps the set of objects `mark` picks ([`Store::marked`]): the few
    /// a controller looks for among many, such as the pods still to schedule.
    pub fn marking(mark: fn(&T) -> bool) -> Store<T> {
        Store {
            mark: Some(mark),
            ..Store::new()
        }
    }

    /// The objects the store's mark picks, shared with the cache (none without a mark); the
    /// scheduler needs only [`Store::marked_len`], the tests see which objects are marked.
    #[cfg(test)]
    pub fn marked(&self) -> Vec<Arc<T>> {
        let inner = self.read();
        (inner.marked.iter())
            .filter_map(|k| inner.objects.get(k))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// How many objects the store's mark picks.
    pub fn marked_len(&self) -> usize {
        self.read().marked.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<T>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The object `ns/name` ("" for a cluster kind's namespace).
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<T>> {
        self.read()
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .map(|(_, o)| o.clone())
    }

    /// The resourceVersion the cache holds `ns/name` at.
    pub fn revision_of(&self, ns: &str, name: &str) -> Option<i64> {
        self.read()
            .objects
            .get(&(ns.to_string(), name.to_string()))
            .map(|(rv, _)| *rv)
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.read()
            .objects
            .values()
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The objects `keep` picks, shared with the cache (the others are not even counted).
    pub fn filter(&self, keep: impl Fn(&T) -> bool) -> Vec<Arc<T>> {
        self.read()
            .objects
            .values()
            .filter(|(_, o)| keep(o))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Every object, copied (for the pure reconcilers that take slices).
    pub fn cloned(&self) -> Vec<T> {
        self.read()
            .objects
            .values()
            .map(|(_, o)| T::clone(o))
            .collect()
    }

    /// The objects whose controlling owner has `uid` (the "by owner" index), shared with the
    /// cache: a ReplicaSet of 1,000 pods reconciles on each of its pods' changes.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<T>> {
        let inner = self.read();
        inner
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| inner.objects.get(k))
            .map(|(_, o)| o.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last revision the cache applied (0: not synced yet).
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// Resolves once the first list is in.
    pub async fn ready(&self) {
        let mut rx = self.revision.subscribe();
        let _ = rx.wait_for(|r| *r > 0).await;
    }

    /// Waits (at most `max`) until the cache has applied revision `rv`; says whether it has.
    pub async fn caught_up(&self, rv: i64, max: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        let waited = tokio::time::timeout(max, rx.wait_for(|r| *r >= rv)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Adds a subscriber; it sees the changes applied from now on.
    pub fn subscribe(&self, s: Subscriber<T>) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    fn notify(&self, objects: &[Arc<T>]) {
        let subs = self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for o in objects {
            for s in &subs {
                s(o);
            }
        }
    }

    fn unindex(inner: &mut Inner<T>, key: &ObjectKey, old: &T) {
        inner.marked.remove(key);
        if let Some(uid) = super::super::controller_of(old.metadata()) {
            if let Some(set) = inner.by_owner.get_mut(uid) {
                set.remove(key);
                if set.is_empty() {
                    inner.by_owner.remove(uid);
                }
            }
        }
    }

    fn index(&self, inner: &mut Inner<T>, key: &ObjectKey, new: &T) {
        if self.mark.is_some_and(|m| m(new)) {
            inner.marked.insert(key.clone());
        }
        if let Some(uid) = super::super::controller_of(new.metadata()) {
            inner
                .by_owner
                .entry(uid.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    /// Applies an added or modified object at revision `rv`.
    pub(crate) fn apply(&self, rv: i64, obj: T) {
        let key = key_of(obj.metadata());
        let new = Arc::new(obj);
        let old = {
            let mut inner = self.write();
            let old = inner.objects.insert(key.clone(), (rv, new.clone()));
            if let Some((_, o)) = &old {
                Self::unindex(&mut inner, &key, o);
            }
            self.index(&mut inner, &key, &new);
            old
        };
        self.advance(rv);
        let mut changed = vec![new];
        changed.extend(old.map(|(_, o)| o));
        self.notify(&changed);
    }

    /// Applies a deletion at revision `rv`.
    pub(crate) fn remove(&self, rv: i64, obj: &T) {
        let key = key_of(obj.metadata());
        let old = {
            let mut inner = self.write();
            let old = inner.objects.remove(&key);
            if let Some((_, o)) = &old {
                Self::unindex(&mut inner, &key, o);
            }
            old
        };
        self.advance(rv);
        if let Some((_, o)) = old {
            self.notify(&[o]);
        }
    }

    /// Replaces everything with a fresh list at revision `rv`; subscribers hear of every object
    /// listed and every one that went away meanwhile.
    pub(crate) fn replace(&self, rv: i64, items: Vec<(i64, T)>) {
        let mut changed = Vec::new();
        {
            let mut inner = self.write();
            let mut fresh = HashMap::new();
            inner.by_owner.clear();
            inner.marked.clear();
            for (orv, o) in items {
                let key = key_of(o.metadata());
                let o = Arc::new(o);
                self.index(&mut inner, &key, &o);
                changed.push(o.clone());
                fresh.insert(key, (orv, o));
            }
            let old = std::mem::replace(&mut inner.objects, fresh);
            for (k, (_, o)) in old {
                if !inner.objects.contains_key(&k) {
                    changed.push(o);
                }
            }
        }
        self.advance(rv.max(1));
        self.notify(&changed);
    }

    fn advance(&self, rv: i64) {
        self.revision.send_if_modified(|r| {
            let moved = rv > *r;
            if moved {
                *r = rv;
            }
            moved
        });
    }
}

fn rv_of(v: &Value) -> i64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// One line of a watch, decoded.
enum Line<T> {
    Put(i64, T),
    Deleted(i64, T),
    Bookmark(i64),
    /// The revision is gone: list again.
    Gone,
    /// Anything else that ends the watch (resume from the last revision).
    Ended(String),
}

fn decode<T: Object>(line: &[u8]) -> Line<T> {
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Line::Ended(format!("an undecodable watch line: {e}")),
    };
    let object = v.get("object").cloned().unwrap_or(Value::Null);
    let rv = rv_of(&object);
    let typed = |o: Value| serde_json::from_value::<T>(o);
    match v.get("type").and_then(Value::as_str) {
        Some("ADDED" | "MODIFIED") => match typed(object) {
            Ok(o) => Line::Put(rv, o),
            Err(e) => Line::Ended(format!("an undecodable {}: {e}", T::KIND)),
        },
        Some("DELETED") => match typed(object) {
            Ok(o) => Line::Deleted(rv, o),
            Err(e) => Line::Ended(format!("an undecodable {}: {e}", T::KIND)),
        },
        Some("BOOKMARK") => Line::Bookmark(rv),
        Some("ERROR") if object.get("code").and_then(Value::as_i64) == Some(410) => Line::Gone,
        other => Line::Ended(format!("watch event {other:?}: {object}")),
    }
}

/// Sleeps `d`, or returns false when `stop` is cancelled first.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Lists `T`'s kind once, then keeps `store` in step with its watch until `stop`.
pub async fn reflect<T: Object>(api: Api, store: Store<T>, stop: CancellationToken) {
    let kind = T::KIND;
    let mut revision: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let rv = match revision {
            Some(rv) => rv,
            None => match api.list_at::<T>(kind).await {
                Ok((rv, items)) => {
                    store.replace(rv, items);
                    revision = Some(rv);
                    rv
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(%kind, error = %e, "cannot list for the cache; trying again");
                    if !pause(&stop, retry_delay(failures)).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut stream = match api.watch_from(kind, rv).await {
            Ok(s) => s,
            Err(ApiError::Gone(_)) => {
                revision = None;
                continue;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(%kind, error = %e, "cannot watch for the cache; trying again");
                if !pause(&stop, retry_delay(failures)).await {
                    return;
                }
                continue;
            }
        };
        let mut heard = false;
        loop {
            let line = tokio::select! {
                _ = stop.cancelled() => return,
                l = stream.next() => l,
            };
            let Some(line) = line else {
                // a watch that ends before saying anything is retried with a pause
                failures += u32::from(!heard);
                break;
            };
            heard = true;
            failures = 0;
            match decode::<T>(&line) {
                Line::Put(rv, o) => {
                    store.apply(rv, o);
                    revision = Some(rv);
                }
                Line::Deleted(rv, o) => {
                    store.remove(rv, &o);
                    revision = Some(rv);
                }
                Line::Bookmark(rv) => {
                    store.advance(rv);
                    revision = Some(rv);
                }
                Line::Gone => {
                    tracing::info!(%kind, "the cache's revision was compacted; listing again");
                    revision = None;
                    break;
                }
                Line::Ended(why) => {
                    tracing::warn!(%kind, %why, "the cache's watch ended; resuming");
                    failures += 1;
                    break;
                }
            }
        }
        if failures > 0 && !pause(&stop, retry_delay(failures)).await {
            return;
        }
    }
}

/// 100 ms doubling to 10 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::Pod;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        if let Some(uid) = owner {
            p.metadata
                .owner_references
                .push(crate::api::meta::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                });
        }
        p
    }

    #[test]
    fn the_owner_index_follows_changes_and_relists() {
        let s: Store<Pod> = Store::new();
        assert_eq!(s.revision(), 0);
        s.replace(5, vec![(3, pod("a", Some("u1"))), (4, pod("b", None))]);
        assert_eq!(s.revision(), 5);
        assert_eq!(s.owned_by("u1").len(), 1);
        s.apply(6, pod("a", Some("u2")));
        assert!(s.owned_by("u1").is_empty());
        assert_eq!(s.owned_by("u2").len(), 1);
        assert_eq!(s.revision_of("default", "a"), Some(6));
        s.remove(7, &pod("a", None));
        assert!(s.owned_by("u2").is_empty());
        assert!(s.get("default", "a").is_none());
        s.replace(9, vec![]);
        assert!(s.is_empty());
        assert_eq!(s.revision(), 9);
    }

    #[test]
    fn the_marked_set_follows_changes_removals_and_relists() {
        let s: Store<Pod> = Store::marking(|p| p.spec.node_name.is_none());
        let bound = |name: &str| {
            let mut p = pod(name, None);
            p.spec.node_name = Some("n1".into());
            p
        };
        s.replace(2, vec![(1, pod("a", None)), (2, bound("b"))]);
        let names = |s: &Store<Pod>| {
            let mut v: Vec<String> = (s.marked().iter())
                .map(|p| p.metadata.name().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&s), ["a"]);
        s.apply(3, pod("c", None));
        assert_eq!(names(&s), ["a", "c"]);
        s.apply(4, bound("a"));
        assert_eq!(names(&s), ["c"]);
        s.remove(5, &pod("c", None));
        assert_eq!(s.marked_len(), 0);
        s.replace(6, vec![(6, pod("d", None)), (2, bound("b"))]);
        assert_eq!(names(&s), ["d"]);
        // a store without a mark keeps none
        let plain: Store<Pod> = Store::new();
        plain.apply(1, pod("a", None));
        assert_eq!(plain.marked_len(), 0);
    }

    #[test]
    fn subscribers_hear_both_sides_of_a_change() {
        let s: Store<Pod> = Store::new();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        s.subscribe(Arc::new(move |p: &Pod| {
            seen2
                .lock()
                .unwrap()
                .push(crate::controllers::controller_of(&p.metadata).map(str::to_string))
        }));
        s.apply(1, pod("a", Some("u1")));
        s.apply(2, pod("a", Some("u2")));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [Some("u1".into()), Some("u2".into()), Some("u1".into())]
        );
    }
}
