//! The etcd-backed `Store`: every write is a transaction that compares the key's
//! `mod_revision`, so two writers never silently overwrite each other; watches map etcd's
//! watch stream (with previous values) to `StoreEvent`s.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use super::{Page, Store, StoreError, StoreEvent, Versioned, WatchStream};

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

const MAX_LIST_BYTES: usize = 512 << 20;
/// How long a leader's lease lives without a renewal.
const LEASE_TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// How long a request that fails on the way to etcd keeps being tried: long enough for an
/// etcd that restarts (a few seconds) to come back, short of a client's patience.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long connecting tries before it says etcd cannot be reached.
const CONNECT_RETRY_FOR: Duration = Duration::from_secs(2);
/// The first pause between tries; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The request never reached a member: its connection could not be made. The client balances
/// requests over every endpoint, and a member that went away (a master of three lost, or the
/// only one restarting) keeps handing its connect error to the next request that picks it, once
/// per reconnect attempt; without a retry, that fails a share of all requests for as long as
/// the member is gone.
fn not_sent(e: &etcd_client::Error) -> bool {
    const UNAVAILABLE: i32 = 14;
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if i32::from(s.code()) == UNAVAILABLE && s.message().contains("connect error"))
}

/// The connection broke: the request may or may not have reached etcd.
fn broken(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().contains("transport error"),
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// Runs `op` again (on whichever member the balancer picks next), with a capped exponential
/// pause, for up to `RETRY_FOR`, while it fails without having been sent, which is safe for
/// writes too; a read is also tried again when its connection broke. A write whose connection
/// broke is not: it may have been applied.
async fn retried<T, F, Fut>(read: bool, op: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    retried_for(RETRY_FOR, read, op).await
}

/// `retried`, for up to `within`.
async fn retried_for<T, F, Fut>(
    within: Duration,
    read: bool,
    mut op: F,
) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let started = std::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match op().await {
            Err(e)
                if started.elapsed() + pause < within && (not_sent(&e) || (read && broken(&e))) =>
            {
                tracing::debug!(error = %e, "etcd request not answered; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            r => return r,
        }
    }
}

fn key_string(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

impl EtcdStore {
    /// Connects to the etcd members at `endpoints` (`http://127.0.0.1:2379`, ...).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StoreError> {
        Self::connect_tls(endpoints, None).await
    }

    /// Connects to `endpoints`, over TLS with `tls` (`https://` endpoints) when given.
    pub async fn connect_tls(
        endpoints: &[String],
        tls: Option<etcd_client::TlsOptions>,
    ) -> Result<EtcdStore, StoreError> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(15))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = tls {
            opts = opts.with_tls(tls);
        }
        // connecting is lazy: the first request is what finds an etcd that does not answer
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("cannot reach etcd at {}: {e}", endpoints.join(",")))
        };
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(|e| unreachable(&e))?;
        // tried briefly: an etcd that is not there at start is said soon, yet one member of
        // several that is down does not fail the start
        retried_for(CONNECT_RETRY_FOR, true, || async {
            client
                .kv_client()
                .get("\0", Some(GetOptions::new().with_count_only()))
                .await
        })
        .await
        .map_err(|e| unreachable(&e))?;
        Ok(EtcdStore { client })
    }

    /// Removes every key under `prefix` (test clean-up and `orkops-master --reset`).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        retried(false, || async {
            self.client
                .kv_client()
                .delete(prefix, Some(DeleteOptions::new().with_prefix()))
                .await
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse, StoreError> {
        retried(false, || async {
            self.client.kv_client().txn(txn.clone()).await
        })
        .await
        .map_err(unavailable)
    }

    async fn current(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(key).await?.map(|v| v.revision))
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let resp = retried(true, || async {
            self.client.kv_client().get(key, None).await
        })
        .await
        .map_err(unavailable)?;
        Ok(resp.kvs().first().map(|x| Versioned {
            key: key.to_string(),
            value: x.value().to_vec(),
            revision: x.mod_revision(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Versioned>, i64), StoreError> {
        // a large collection is one large response: lift gRPC's 4 MiB default
        let resp = retried(true, || async {
            self.client
                .kv_client()
                .max_decoding_message_size(MAX_LIST_BYTES)
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
        })
        .await
        .map_err(unavailable)?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        let items = resp
            .kvs()
            .iter()
            .map(|x| Versioned {
                key: key_string(x.key()),
                value: x.value().to_vec(),
                revision: x.mod_revision(),
            })
            .collect();
        Ok((items, rev))
    }

    async fn list_page(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: i64,
    ) -> Result<Page, StoreError> {
        let start = if start.is_empty() { prefix } else { start };
        let mut opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let mut resp = retried(true, || async {
            self.client
                .kv_client()
                .max_decoding_message_size(MAX_LIST_BYTES)
                .get(start, Some(opts.clone()))
                .await
        })
        .await
        .map_err(|e| match &e {
            etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted") => {
                StoreError::Compacted(revision)
            }
            etcd_client::Error::GRpcStatus(s) if s.message().contains("future rev") => {
                StoreError::Invalid(format!(
                    "resourceVersion {revision} is ahead of the store's current revision"
                ))
            }
            _ => unavailable(e),
        })?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        // the values move out of the response: a page of 500 pods is a megabyte or more
        let items: Vec<Versioned> = resp
            .take_kvs()
            .into_iter()
            .map(|x| {
                let revision = x.mod_revision();
                let (key, value) = x.into_key_value();
                Versioned {
                    key: String::from_utf8(key).unwrap_or_else(|e| key_string(e.as_bytes())),
                    value,
                    revision,
                }
            })
            .collect();
        Ok(Page {
            remaining: (resp.count() - items.len() as i64).max(0),
            revision: if revision > 0 { revision } else { rev },
            items,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<i64, StoreError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or_default());
        }
        let actual = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g.kvs().first().map(|x| x.mod_revision())),
            _ => None,
        });
        match actual.flatten() {
            Some(actual) => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                actual,
            }),
            None => Err(StoreError::NotFound(key.into())),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(Versioned, i64), StoreError> {
        let mut txn = Txn::new();
        if let Some(e) = expected {
            txn = txn.when([Compare::mod_revision(key, CompareOp::Equal, e)]);
        }
        let txn = txn.and_then([TxnOp::delete(
            key,
            Some(DeleteOptions::new().with_prev_key()),
        )]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return match self.current(key).await? {
                Some(actual) => Err(StoreError::Conflict {
                    key: key.into(),
                    expected: expected.unwrap_or_default(),
                    actual,
                }),
                None => Err(StoreError::NotFound(key.into())),
            };
        }
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        let prev = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().map(|x| Versioned {
                key: key.to_string(),
                value: x.value().to_vec(),
                revision: x.mod_revision(),
            }),
            _ => None,
        });
        prev.map(|p| (p, rev))
            .ok_or_else(|| StoreError::NotFound(key.into()))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StoreError> {
        let start = after_revision.checked_add(1).ok_or_else(|| {
            StoreError::Invalid(format!(
                "revision {after_revision} is past the largest revision a store can reach"
            ))
        })?;
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(start);
        let mut stream = retried(true, || async {
            self.client
                .watch_client()
                .watch(prefix, Some(opts.clone()))
                .await
        })
        .await
        .map_err(unavailable)?;
        // The first response confirms the watch, or says the revision was compacted.
        let mut pending = Vec::new();
        match stream.message().await.map_err(unavailable)? {
            Some(r) if r.compact_revision() > 0 => {
                return Err(StoreError::Compacted(after_revision))
            }
            Some(r) if r.canceled() => {
                return Err(StoreError::Unavailable(format!(
                    "watch refused: {}",
                    r.cancel_reason()
                )))
            }
            Some(r) => pending.extend(convert(&r)),
            None => return Err(StoreError::Unavailable("etcd closed the watch".into())),
        }
        // The state keeps the whole WatchStream (its request sender too) alive while in use.
        let out = futures::stream::unfold(
            (
                stream,
                pending
                    .into_iter()
                    .collect::<std::collections::VecDeque<_>>(),
                false,
            ),
            |(mut stream, mut queue, done)| async move {
                loop {
                    if let Some(ev) = queue.pop_front() {
                        return Some((ev, (stream, queue, done)));
                    }
                    if done {
                        return None;
                    }
                    match stream.message().await {
                        Ok(Some(r)) if r.compact_revision() > 0 => {
                            let rev = r.compact_revision();
                            return Some((Err(StoreError::Compacted(rev)), (stream, queue, true)));
                        }
                        Ok(Some(r)) if r.canceled() => {
                            let e = StoreError::Unavailable(format!(
                                "watch canceled: {}",
                                r.cancel_reason()
                            ));
                            return Some((Err(e), (stream, queue, true)));
                        }
                        Ok(Some(r)) => queue.extend(convert(&r)),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(unavailable(e)), (stream, queue, true))),
                    }
                }
            },
        );
        Ok(out.boxed())
    }

    async fn revision(&self) -> Result<i64, StoreError> {
        let resp = retried(true, || async {
            self.client
                .kv_client()
                .get("\0", Some(GetOptions::new().with_count_only()))
                .await
        })
        .await
        .map_err(unavailable)?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// etcd's election on a lease of `LEASE_TTL`, renewed every third of it; when a renewal
    /// fails for longer than the lease lives, leadership counts as lost.
    async fn campaign(&self, name: &str, candidate: &str) -> Result<super::Leadership, StoreError> {
        let mut client = self.client.clone();
        let lease = client
            .lease_grant(LEASE_TTL.as_secs() as i64, None)
            .await
            .map_err(unavailable)?
            .id();
        let (lost_tx, lost_rx) = tokio::sync::watch::channel(false);
        let mut keeper_client = self.client.clone();
        let keepalive = tokio::spawn(async move {
            let mut last_ok = std::time::Instant::now();
            let mut stream = None;
            loop {
                if stream.is_none() {
                    stream = keeper_client.lease_keep_alive(lease).await.ok();
                }
                let renewed = match &mut stream {
                    Some((keeper, answers)) => match keeper.keep_alive().await {
                        Ok(()) => matches!(answers.message().await, Ok(Some(r)) if r.ttl() > 0),
                        Err(_) => false,
                    },
                    None => false,
                };
                if renewed {
                    last_ok = std::time::Instant::now();
                } else {
                    stream = None;
                    if last_ok.elapsed() >= LEASE_TTL {
                        let _ = lost_tx.send(true);
                        return;
                    }
                }
                tokio::time::sleep(LEASE_TTL / 3).await;
            }
        });
        struct Hold {
            keepalive: tokio::task::JoinHandle<()>,
            client: Client,
            lease: i64,
        }
        impl Drop for Hold {
            fn drop(&mut self) {
                self.keepalive.abort();
                let mut c = self.client.clone();
                let lease = self.lease;
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = c.lease_revoke(lease).await;
                    });
                }
            }
        }
        let hold = Hold {
            keepalive,
            client: self.client.clone(),
            lease,
        };
        client
            .campaign(name, candidate, lease)
            .await
            .map_err(unavailable)?;
        Ok(super::Leadership::new(lost_rx, Box::new(hold)))
    }
}

fn convert(resp: &etcd_client::WatchResponse) -> Vec<Result<StoreEvent, StoreError>> {
    resp.events()
        .iter()
        .filter_map(|ev| {
            let kv = ev.kv()?;
            let prev = ev.prev_kv().map(|p| p.value().to_vec());
            Some(Ok(match ev.event_type() {
                EventType::Put => StoreEvent::Put {
                    key: key_string(kv.key()),
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                    prev,
                },
                EventType::Delete => StoreEvent::Delete {
                    key: key_string(kv.key()),
                    prev: prev.unwrap_or_default(),
                    revision: kv.mod_revision(),
                },
            }))
        })
        .collect()
}
