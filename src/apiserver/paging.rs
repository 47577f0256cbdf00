//! Lists as kube-apiserver pages them, and the bookmarks of watches. A list reads the store in
//! ranges of at most `limit` keys (or `CHUNK` without one), pinned to one revision, so a large
//! collection is never one store response; `limit` + `continue` hand out pages with an opaque
//! token (the revision and the next key), `remainingItemCount` counts what is left when no
//! selector filters, and `resourceVersion` + `resourceVersionMatch` choose the revision read
//! (`NotOlderThan`: the current one, `Exact`: that one, 410 once compacted). A watch with
//! `allowWatchBookmarks` gets a BOOKMARK every `BOOKMARK_EVERY`, and one that ends the initial
//! events when `sendInitialEvents=true`.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};

use super::engine::{decode_stored, ListQuery};
use super::error::ApiError;
use super::table::{self, Output};
use crate::api::labels;
use crate::api::Kind;
use crate::store::{Store, StoreError};

/// How many keys one store read takes when the request sets no limit.
pub const CHUNK: usize = 500;
/// How often a watch that allows bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// The annotation of the bookmark that ends a watch's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";
const TOKEN_VERSION: &str = "orkops/v1";

/// Lists read from the store, per resource (plural name), since the process started: what
/// kube-apiserver's `apiserver_storage_list_total` counts, served on `/metrics`.
static STORAGE_LISTS: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count_list(kind: Kind) {
    let mut m = STORAGE_LISTS.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(kind.plural()).or_default() += 1;
}

/// The store lists counted so far, by resource.
pub fn storage_lists() -> Vec<(&'static str, u64)> {
    let m = STORAGE_LISTS.lock().unwrap_or_else(|e| e.into_inner());
    m.iter().map(|(k, v)| (*k, *v)).collect()
}

/// `resourceVersionMatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RvMatch {
    NotOlderThan,
    Exact,
}

/// The paging and watch parameters of a list or watch request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    /// `limit`; None or 0: every item.
    pub limit: Option<i64>,
    /// `continue`, as sent.
    pub continue_token: Option<String>,
    pub rv_match: Option<RvMatch>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents`, when given.
    pub send_initial_events: Option<bool>,
}

impl Paging {
    /// Reads the parameters from the query, checking them as kube-apiserver does; `watch` says
    /// whether the request is a watch, `resource_version` is the raw `resourceVersion`.
    pub fn from_query(
        query: &std::collections::HashMap<String, String>,
        watch: bool,
        resource_version: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Paging, ApiError> {
        let bad = |m: String| Err(ApiError::BadRequest(m));
        let flag = |k: &str| -> Result<Option<bool>, ApiError> {
            match query.get(k).map(String::as_str) {
                None | Some("") => Ok(None),
                Some("true" | "1") => Ok(Some(true)),
                Some("false" | "0") => Ok(Some(false)),
                Some(other) => Err(ApiError::BadRequest(format!(
                    "query parameter {k}={other:?} is not true or false"
                ))),
            }
        };
        let rv = resource_version.unwrap_or("");
        let rv_match = match query.get("resourceVersionMatch").map(String::as_str) {
            None | Some("") => None,
            Some("NotOlderThan") => Some(RvMatch::NotOlderThan),
            Some("Exact") => Some(RvMatch::Exact),
            Some(other) => {
                return bad(format!(
                "resourceVersionMatch={other:?} is not supported (supported: Exact, NotOlderThan)"
            ))
            }
        };
        let continue_token = query.get("continue").filter(|c| !c.is_empty()).cloned();
        let send_initial_events = flag("sendInitialEvents")?;
        if rv_match.is_some() && rv.is_empty() {
            return bad(
                "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            );
        }
        if rv_match.is_some() && continue_token.is_some() {
            return bad("resourceVersionMatch is forbidden when continue is provided".into());
        }
        if rv_match == Some(RvMatch::Exact) && rv == "0" {
            return bad(
                r#"resourceVersionMatch "Exact" is forbidden for resourceVersion "0""#.into(),
            );
        }
        if continue_token.is_some() && !rv.is_empty() && rv != "0" {
            return bad("specifying resourceVersion is not allowed when using continue".into());
        }
        if watch {
            if continue_token.is_some() {
                return bad("continue is forbidden for watch".into());
            }
            match (send_initial_events, rv_match) {
                (Some(true), Some(RvMatch::NotOlderThan)) | (Some(false) | None, None) => {}
                (Some(true), _) => {
                    return bad(
                        "sendInitialEvents=true needs resourceVersionMatch=NotOlderThan".into(),
                    )
                }
                _ => {
                    return bad(
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents=true"
                            .into(),
                    )
                }
            }
        } else if send_initial_events.is_some() {
            return bad("sendInitialEvents is forbidden for list".into());
        }
        Ok(Paging {
            limit,
            continue_token,
            rv_match,
            bookmarks: flag("allowWatchBookmarks")?.unwrap_or(false),
            send_initial_events,
        })
    }
}

/// Where a continued list picks up: the revision of its first page and the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    revision: i64,
    /// The next key, relative to the collection's prefix.
    start: String,
}

fn encode_token(t: &Token) -> String {
    let v = json!({"v": TOKEN_VERSION, "rv": t.revision, "start": t.start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_token(s: &str) -> Result<Token, ApiError> {
    let garbled = |why: &str| {
        ApiError::BadRequest(format!(
            "continue: the token is not one this server handed out ({why}): start the list again without continue"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| garbled("not base64"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| garbled("not JSON"))?;
    if v["v"] != TOKEN_VERSION {
        return Err(garbled("unknown version"));
    }
    let revision = v["rv"]
        .as_i64()
        .filter(|r| *r > 0)
        .ok_or_else(|| garbled("no revision"))?;
    let start = v["start"]
        .as_str()
        .ok_or_else(|| garbled("no start key"))?
        .to_string();
    Ok(Token { revision, start })
}

fn selected(q: &ListQuery, obj: &Value) -> bool {
    q.labels.matches_object(obj) && q.fields.matches_with(|f| labels::field_value(obj, f))
}

/// The revision to read at (0: the current one) and where to start, from the query.
async fn read_point(
    store: &dyn Store,
    kind: Kind,
    q: &ListQuery,
) -> Result<(i64, String, bool), ApiError> {
    if let Some(t) = &q.paging.continue_token {
        let t = decode_token(t)?;
        return Ok((t.revision, t.start, true));
    }
    match (q.resource_version, q.paging.rv_match) {
        (Some(rv), Some(RvMatch::Exact)) => Ok((rv, String::new(), false)),
        (Some(rv), _) if rv > 0 => {
            let current = store
                .revision()
                .await
                .map_err(|e| ApiError::from_store(e, kind, None, ""))?;
            if rv > current {
                return Err(ApiError::BadRequest(format!(
                    "resourceVersion {rv} is ahead of the store's current revision {current}: use a \
                     resourceVersion from a list or watch (or 0 to list first)"
                )));
            }
            Ok((0, String::new(), false))
        }
        _ => Ok((0, String::new(), false)),
    }
}

fn store_error(e: StoreError, kind: Kind, continued: bool) -> ApiError {
    match e {
        StoreError::Compacted(rev) if continued => ApiError::Gone(format!(
            "the provided continue parameter is too old to display a consistent list result (revision {rev} \
             was compacted): start a new list without the continue parameter"
        )),
        e => ApiError::from_store(e, kind, None, ""),
    }
}

/// Lists `prefix` (the collection of `kind`) as `q` asks, encoded as JSON one object at a time.
pub async fn list(
    store: &dyn Store,
    prefix: &str,
    kind: Kind,
    q: &ListQuery,
) -> Result<Bytes, ApiError> {
    count_list(kind);
    let (mut revision, start, continued) = read_point(store, kind, q).await?;
    let limit = q
        .paging
        .limit
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let chunk = limit.map_or(CHUNK, |l| l.min(CHUNK));
    let filtered = !(q.labels.is_empty() && q.fields.is_empty());
    // every object as it is stored, without decoding it (see `stored`)
    let as_stored = !filtered && matches!(q.output, Output::Objects);
    let now = Utc::now();
    let mut key = format!("{prefix}{start}");
    let mut items: Vec<u8> = Vec::new();
    let mut count = 0usize;
    let mut next: Option<(String, i64)> = None;
    'pages: loop {
        let page = store
            .list_page(prefix, &key, chunk, revision)
            .await
            .map_err(|e| store_error(e, kind, continued))?;
        revision = page.revision;
        let n = page.items.len();
        for (idx, v) in page.items.iter().enumerate() {
            if limit.is_some_and(|l| count >= l) {
                let left = (n - idx) as i64 + page.remaining;
                next = Some((v.key.clone(), left));
                break 'pages;
            }
            let obj = if as_stored {
                None
            } else {
                let obj = decode_stored(v)?;
                if !selected(q, &obj) {
                    continue;
                }
                Some(obj)
            };
            if count > 0 {
                items.push(b',');
            }
            count += 1;
            let Some(obj) = obj else {
                super::stored::write_with_rv(&mut items, v)?;
                continue;
            };
            let written = match &q.output {
                Output::Objects => serde_json::to_writer(&mut items, &obj),
                Output::Table {
                    version, include, ..
                } => serde_json::to_writer(
                    &mut items,
                    &table::row(kind, &obj, version, *include, now),
                ),
            };
            written.map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        match page.items.last() {
            Some(last) if page.remaining > 0 => key = format!("{}\0", last.key),
            _ => break,
        }
    }
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some((next_key, left)) = next {
        meta["continue"] = json!(encode_token(&Token {
            revision,
            start: next_key.strip_prefix(prefix).unwrap_or("").to_string(),
        }));
        if !filtered {
            meta["remainingItemCount"] = json!(left);
        }
    }
    let head = match &q.output {
        Output::Objects => format!(
            r#"{{"apiVersion":"{}","kind":"{}List","metadata":{meta},"items":["#,
            kind.api_version(),
            kind.name()
        ),
        Output::Table { version, .. } => table::list_head(kind, version, &meta),
    };
    // the head goes in front of the items in their own buffer: a second buffer the size of the
    // whole list would double the peak memory of every large list
    let mut buf = items;
    buf.reserve_exact(head.len() + 2);
    buf.splice(0..0, head.bytes());
    buf.extend_from_slice(b"]}");
    Ok(Bytes::from(buf))
}

/// The ADDED lines a watch starts with (the objects of `prefix` that `q` selects), read a page
/// of `CHUNK` keys at a time at one revision, so a watch of a large collection never holds it
/// whole; then the end-of-initial-events BOOKMARK when `sendInitialEvents=true` asks for it.
/// Returns the lines and the revision to watch from. A page that cannot be read (compacted
/// meanwhile) is an ERROR line that ends the stream.
pub async fn initial_events(
    store: std::sync::Arc<dyn Store>,
    prefix: String,
    kind: Kind,
    q: ListQuery,
) -> Result<(BoxStream<'static, Bytes>, i64), ApiError> {
    count_list(kind);
    let first = store
        .list_page(&prefix, &prefix, CHUNK, 0)
        .await
        .map_err(|e| ApiError::from_store(e, kind, None, ""))?;
    let revision = first.revision;
    let end = (q.paging.send_initial_events == Some(true) && q.paging.bookmarks)
        .then(|| bookmark(kind, revision, true));
    let lines = |page: &crate::store::Page, q: &ListQuery| -> Vec<Bytes> {
        page.items
            .iter()
            .filter_map(|v| decode_stored(v).ok())
            .filter(|obj| selected(q, obj))
            .map(|obj| event_line(&q.output, "ADDED", &obj))
            .collect()
    };
    let first_lines = lines(&first, &q);
    let next_key = |page: &crate::store::Page| {
        page.items
            .last()
            .filter(|_| page.remaining > 0)
            .map(|v| format!("{}\0", v.key))
    };
    let start = next_key(&first);
    let rest = futures::stream::unfold(start, move |key| {
        let (store, prefix, q) = (store.clone(), prefix.clone(), q.clone());
        async move {
            let key = key?;
            match store.list_page(&prefix, &key, CHUNK, revision).await {
                Ok(page) => Some((lines(&page, &q), next_key(&page))),
                Err(e) => {
                    let err = ApiError::from_store(e, kind, None, "");
                    Some((
                        vec![event_line(
                            &Output::Objects,
                            "ERROR",
                            &json!(err.to_status()),
                        )],
                        None,
                    ))
                }
            }
        }
    })
    .flat_map(futures::stream::iter);
    let stream = futures::stream::iter(first_lines)
        .chain(rest)
        .chain(futures::stream::iter(end))
        .boxed();
    Ok((stream, revision))
}

/// One watch line: `{"type": event, "object": obj}` with the object as `output` asks.
pub fn event_line(output: &Output, event: &str, obj: &Value) -> Bytes {
    let object = table::event_object(output, event, obj);
    let mut line =
        serde_json::to_vec(&json!({"type": event, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A BOOKMARK line at `revision`: an object of `kind` with only its resourceVersion (and the
/// initial-events-end annotation when `initial_end`).
pub fn bookmark(kind: Kind, revision: i64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        meta["annotations"] = json!({ INITIAL_EVENTS_END: "true" });
    }
    let obj = json!({"kind": kind.name(), "apiVersion": kind.api_version(), "metadata": meta});
    event_line(&Output::Objects, "BOOKMARK", &obj)
}

/// What a watch's change stream carries: the store revision of each change, and its line when
/// the watcher sees it.
pub type Changes = BoxStream<'static, (i64, Option<Bytes>)>;

/// The watch lines of `changes`, with a BOOKMARK at the last revision seen every `every` when
/// `bookmarks`; starts at revision `from`.
pub fn with_bookmarks(
    changes: Changes,
    kind: Kind,
    from: i64,
    bookmarks: bool,
    every: Duration,
) -> BoxStream<'static, Bytes> {
    if !bookmarks {
        return changes.filter_map(|(_, l)| async move { l }).boxed();
    }
    enum Item {
        Change(i64, Option<Bytes>),
        Tick,
        End,
    }
    let changes = changes
        .map(|(r, l)| Item::Change(r, l))
        .chain(futures::stream::once(async { Item::End }));
    let ticks = futures::stream::unfold((), move |_| async move {
        tokio::time::sleep(every).await;
        Some((Item::Tick, ()))
    });
    futures::stream::select(changes, ticks)
        .scan(from, move |last, item| {
            let out = match item {
                Item::End => None,
                Item::Change(r, line) => {
                    *last = r.max(*last);
                    Some(line)
                }
                Item::Tick => Some(Some(bookmark(kind, *last, false))),
            };
            futures::future::ready(out)
        })
        .filter_map(|l| async move { l })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::collections::HashMap;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused_by_name() {
        let t = Token {
            revision: 42,
            start: "default/web-1".into(),
        };
        assert_eq!(decode_token(&encode_token(&t)).unwrap(), t);
        for bad in ["", "%%%", "bm90IGpzb24", "eyJ2IjoieCJ9"] {
            let e = decode_token(bad).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadRequest(m) if m.contains("continue")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn parameters_are_checked_as_kube_checks_them() {
        let p = |pairs: &[(&str, &str)], watch: bool| {
            let query = q(pairs);
            Paging::from_query(
                &query,
                watch,
                query.get("resourceVersion").map(String::as_str),
                None,
            )
        };
        assert!(p(&[("resourceVersionMatch", "Exact")], false).is_err());
        assert!(p(
            &[("resourceVersionMatch", "Exact"), ("resourceVersion", "0")],
            false
        )
        .is_err());
        assert!(p(
            &[("resourceVersionMatch", "Latest"), ("resourceVersion", "5")],
            false
        )
        .is_err());
        assert!(p(&[("continue", "x"), ("resourceVersion", "5")], false).is_err());
        assert!(p(
            &[
                ("resourceVersionMatch", "NotOlderThan"),
                ("resourceVersion", "5")
            ],
            true
        )
        .is_err());
        let ok = p(
            &[
                ("resourceVersionMatch", "NotOlderThan"),
                ("resourceVersion", "0"),
                ("sendInitialEvents", "true"),
                ("allowWatchBookmarks", "true"),
            ],
            true,
        )
        .unwrap();
        assert!(ok.bookmarks && ok.send_initial_events == Some(true));
        assert!(p(&[("sendInitialEvents", "true")], false).is_err());
    }

    #[tokio::test]
    async fn bookmarks_carry_the_last_revision_seen_and_end_with_the_watch() {
        let change = Bytes::from_static(b"{\"type\":\"ADDED\"}\n");
        let changes: Changes = futures::stream::iter([(7, Some(change.clone())), (9, None)])
            .chain(futures::stream::pending())
            .boxed();
        let mut lines = with_bookmarks(changes, Kind::Pod, 3, true, Duration::from_millis(20));
        async fn next(l: &mut BoxStream<'static, Bytes>) -> Bytes {
            tokio::time::timeout(Duration::from_secs(10), l.next())
                .await
                .unwrap()
                .unwrap()
        }
        assert_eq!(next(&mut lines).await, change);
        let b: Value = serde_json::from_slice(&next(&mut lines).await).unwrap();
        assert_eq!(b["type"], "BOOKMARK");
        assert_eq!(b["object"]["kind"], "Pod");
        assert_eq!(
            b["object"]["metadata"]["resourceVersion"], "9",
            "a filtered change counts"
        );
        let ended: Changes = futures::stream::iter([(4, None)]).boxed();
        let lines: Vec<Bytes> =
            with_bookmarks(ended, Kind::Pod, 3, true, Duration::from_secs(3600))
                .collect()
                .await;
        assert!(lines.is_empty(), "the watch ends with its changes");
    }

    #[tokio::test]
    async fn pages_deliver_every_item_once_with_the_remaining_count() {
        let store = MemoryStore::default();
        for n in 0..25 {
            let obj = json!({"metadata": {"name": format!("c{n:02}")}});
            store
                .create(
                    &format!("/t/configmaps/d/c{n:02}"),
                    obj.to_string().into_bytes(),
                )
                .await
                .unwrap();
        }
        let mut query = ListQuery::default();
        query.paging.limit = Some(10);
        let mut seen = Vec::new();
        let mut remaining = Vec::new();
        loop {
            let body = list(&store, "/t/configmaps/", Kind::ConfigMap, &query)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            for i in v["items"].as_array().unwrap() {
                seen.push(i["metadata"]["name"].as_str().unwrap().to_string());
            }
            remaining.push(v["metadata"]["remainingItemCount"].as_i64());
            match v["metadata"]["continue"].as_str() {
                Some(c) => query.paging.continue_token = Some(c.to_string()),
                None => break,
            }
        }
        let want: Vec<String> = (0..25).map(|n| format!("c{n:02}")).collect();
        assert_eq!(seen, want);
        assert_eq!(remaining, [Some(15), Some(5), None]);
    }
}
