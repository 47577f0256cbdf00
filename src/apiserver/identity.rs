//! Node identity rules the engine applies to scoped callers: revocation records (deleting a
//! Node revokes every join and node token of that name issued until then; the record lives in
//! the store, so every master honours it), the instance a node may claim when it registers,
//! and the names a node's serving certificate may carry (only names the master derives).

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::{json, Value};

use super::auth::{Caller, NodeIdentity};
use super::error::ApiError;
use crate::api::Kind;
use crate::names::LABEL_INSTANCE_ID;
use crate::store::{Store, StoreError};

/// The key of a node name's revocation record.
pub fn revocation_key(prefix: &str, node: &str) -> String {
    format!("{prefix}/revocations/{node}")
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => ApiError::Unavailable(m),
        e => ApiError::Internal(format!("revocation record: {e}")),
    }
}

/// When tokens of `node` issued at or before this instant (ms) were revoked, if ever.
pub async fn revoked_at(
    store: &dyn Store,
    prefix: &str,
    node: &str,
) -> Result<Option<i64>, ApiError> {
    let Some(v) = store
        .get(&revocation_key(prefix, node))
        .await
        .map_err(store_err)?
    else {
        return Ok(None);
    };
    let rec: Value = serde_json::from_slice(&v.value)
        .map_err(|e| ApiError::Internal(format!("revocation record of node {node:?}: {e}")))?;
    Ok(rec["revokedAtMillis"].as_i64())
}

/// Records that every token of `node` issued until now is revoked (compare-and-swap, so two
/// masters deleting at once keep the later time).
pub async fn revoke(store: &dyn Store, prefix: &str, node: &str) -> Result<(), ApiError> {
    let key = revocation_key(prefix, node);
    for _ in 0..5 {
        let now = Utc::now().timestamp_millis();
        let body = serde_json::to_vec(&json!({"node": node, "revokedAtMillis": now}))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let r = match store.get(&key).await.map_err(store_err)? {
            None => store.create(&key, body).await.map(|_| ()),
            Some(v) => store.update(&key, body, v.revision).await.map(|_| ()),
        };
        match r {
            Ok(()) => return Ok(()),
            Err(StoreError::AlreadyExists(_) | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_err(e)),
        }
    }
    Err(ApiError::Conflict(format!(
        "the revocation record of node {node:?} is changing too fast; retry the delete"
    )))
}

/// How far the node certificate signer (`pki::sign_node_csr`) backdates `notBefore`, for
/// clocks a little behind: the certificate was issued this long after its `notBefore`.
pub const NOT_BEFORE_BACKDATE_MS: i64 = 5 * 60 * 1000;

/// When a node's serving certificate (DER) was issued (ms since the epoch): its `notBefore`
/// plus the signer's backdating.
pub fn certificate_issued_ms(der: &[u8]) -> Result<i64, String> {
    let der = rustls_pki_types::CertificateDer::from(der.to_vec());
    let p = rcgen::CertificateParams::from_ca_cert_der(&der)
        .map_err(|e| format!("cannot read its certificate: {e}"))?;
    Ok(p.not_before.unix_timestamp() * 1000 + NOT_BEFORE_BACKDATE_MS)
}

/// Whether a certificate issued at `issued_ms` came after a revocation at `revoked_ms`.
/// Certificate times have a resolution of one second: one issued in the very second of the
/// revocation counts as before it (refused; the node joins again for a new one).
pub fn issued_after_revocation(issued_ms: i64, revoked_ms: i64) -> bool {
    issued_ms.div_euclid(1000) > revoked_ms.div_euclid(1000)
}

/// Refuses (401) a scoped token issued at or before its node's revocation.
pub async fn check_revoked(
    store: &dyn Store,
    prefix: &str,
    caller: &Caller,
) -> Result<(), ApiError> {
    let Some(id) = caller.identity() else {
        return Ok(());
    };
    match revoked_at(store, prefix, &id.name).await? {
        Some(at) if id.issued_ms <= at => Err(ApiError::Unauthorized(format!(
            "the credentials of node {:?} were revoked when its Node was deleted; hint: join it again with a new join token (`orkops create join-token {}`, or `orkops update cluster`)",
            id.name, id.name
        ))),
        _ => Ok(()),
    }
}

/// A node whose token binds an instance id may write its Node only with that instance's
/// `orkops.io/instance-id` label: it cannot claim another instance.
pub fn check_node_claim(caller: &Caller, kind: Kind, obj: &Value) -> Result<(), ApiError> {
    let Caller::Node(id) = caller else {
        return Ok(());
    };
    if kind != Kind::Node || id.instance.is_empty() {
        return Ok(());
    }
    let claimed = obj
        .pointer("/metadata/labels")
        .and_then(|l| l.get(LABEL_INSTANCE_ID))
        .and_then(Value::as_str);
    if claimed == Some(id.instance.as_str()) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "node {:?} joined as instance {:?}: its Node must carry the label {LABEL_INSTANCE_ID}={} (it has {:?})",
        id.name,
        id.instance,
        id.instance,
        claimed.unwrap_or("")
    )))
}

/// The names a node's serving certificate gets: its name and the address its join token
/// recorded. `requested` (the CSR's names) must be among them, and none may be a name the API
/// server serves under (`serving`), or the request is refused naming the extra names.
pub fn certificate_names(
    id: &NodeIdentity,
    requested: &[String],
    serving: &[String],
) -> Result<Vec<String>, String> {
    let serving: BTreeSet<&str> = serving.iter().map(String::as_str).collect();
    if serving.contains(id.name.as_str()) {
        return Err(format!(
            "the node name {:?} is a name the API server serves under",
            id.name
        ));
    }
    let mut derived = vec![id.name.clone()];
    if !id.address.is_empty() && !serving.contains(id.address.as_str()) {
        derived.push(id.address.clone());
    }
    let taken: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|n| serving.contains(n))
        .collect();
    if !taken.is_empty() {
        return Err(format!(
            "the request names {} which the API server serves under; a node certificate may name only {}",
            taken.join(", "),
            derived.join(", ")
        ));
    }
    let extra: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|n| !derived.iter().any(|d| d == n))
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "the request names {} which this node was not given; a node certificate may name only {}",
            extra.join(", "),
            derived.join(", ")
        ));
    }
    Ok(derived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_tells_when_it_was_issued() {
        let ca = crate::pki::Ca::generate("test-ca").unwrap();
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["node-1".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "node-1");
        let csr = p.serialize_request(&kp).unwrap().pem().unwrap();
        let before = Utc::now().timestamp_millis();
        let pem = crate::pki::sign_node_csr(&ca, "node-1", &["node-1".into()], &csr).unwrap();
        let after = Utc::now().timestamp_millis();
        let der = crate::pki::parse_certs(&pem, std::path::Path::new("test")).unwrap();
        let issued = certificate_issued_ms(&der[0]).unwrap();
        assert!(
            issued >= before - 1000 && issued <= after,
            "issued {issued}, signed between {before} and {after}: the signer's backdating changed?"
        );
        assert!(issued_after_revocation(5_000, 4_999));
        assert!(
            !issued_after_revocation(4_000, 4_999),
            "the same second is before"
        );
        assert!(!issued_after_revocation(3_999, 4_000));
        assert!(certificate_issued_ms(b"not a certificate").is_err());
    }

    fn id(address: &str) -> NodeIdentity {
        NodeIdentity {
            name: "node-1".into(),
            instance: "i-1".into(),
            address: address.into(),
            issued_ms: 1,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn certificates_get_only_derived_names() {
        let serving = names(&["localhost", "127.0.0.1", "api.elb.example", "10.0.0.4"]);
        let ok = certificate_names(&id("10.0.0.9"), &names(&["node-1"]), &serving).unwrap();
        assert_eq!(ok, names(&["node-1", "10.0.0.9"]));
        let ok = certificate_names(&id(""), &[], &serving).unwrap();
        assert_eq!(ok, names(&["node-1"]));
        // the address is dropped when a master serves under it (a single host)
        let ok = certificate_names(&id("127.0.0.1"), &names(&["node-1"]), &serving).unwrap();
        assert_eq!(ok, names(&["node-1"]));
        let e = certificate_names(&id(""), &names(&["node-1", "node-2", "10.9.9.9"]), &serving)
            .unwrap_err();
        assert!(e.contains("node-2, 10.9.9.9"), "{e}");
        let e = certificate_names(&id(""), &names(&["api.elb.example", "127.0.0.1"]), &serving)
            .unwrap_err();
        assert!(
            e.contains("api.elb.example, 127.0.0.1") && e.contains("serves"),
            "{e}"
        );
        let mut bad = id("");
        bad.name = "localhost".into();
        assert!(certificate_names(&bad, &[], &serving).is_err());
    }

    #[test]
    fn a_node_cannot_claim_another_instance() {
        let node = Caller::Node(id(""));
        let with = |i: &str| json!({"metadata": {"labels": {LABEL_INSTANCE_ID: i}}});
        assert!(check_node_claim(&node, Kind::Node, &with("i-1")).is_ok());
        assert!(check_node_claim(&node, Kind::Node, &with("i-2")).is_err());
        assert!(check_node_claim(&node, Kind::Node, &json!({"metadata": {}})).is_err());
        let mut unbound = id("");
        unbound.instance.clear();
        assert!(check_node_claim(&Caller::Node(unbound), Kind::Node, &with("i-2")).is_ok());
        assert!(check_node_claim(&Caller::Admin, Kind::Node, &with("i-2")).is_ok());
    }
}
