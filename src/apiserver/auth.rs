//! Authentication and authorization. Every request carries a bearer token: the admin token
//! (users), a join token scoped to one node (an agent asking for its first node token), or a
//! node token that lets an agent change only its own Node and the pods bound to it. Both
//! scoped tokens bind what the cluster recorded for the node (name, instance id, address) and
//! their issue time, which revocation compares against:
//! `orkops-join.NAME.INSTANCE.ADDRESS.ISSUED.HMAC` (HMAC with the cluster's join secret) and
//! `orkops-node.NAME.INSTANCE.ADDRESS.ISSUED.EXPIRY.HMAC` (HMAC with the signing key), where
//! NAME, INSTANCE and ADDRESS are base64url (no `.` inside a field, so fields cannot be
//! confused) and ISSUED is in milliseconds. The join secret itself is never a bearer token.
//! Tokens are compared in constant time and never logged.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// What a join or node token binds: the node's name, the instance id and private address the
/// cluster recorded for it (empty when there is none, e.g. a single host), and when the token
/// was issued (milliseconds since the epoch).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct NodeIdentity {
    pub name: String,
    pub instance: String,
    pub address: String,
    pub issued_ms: i64,
}

/// A caller as Kubernetes' authenticators describe one (`user.Info`): what RBAC, audit and
/// `SelfSubjectReview` see. `groups` always ends with `system:authenticated`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The group whose members may do everything, as in Kubernetes (bound to `cluster-admin`, and
/// never subject to authorization).
pub const GROUP_MASTERS: &str = "system:masters";
/// The group of every authenticated caller.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The group of every node's credentials.
pub const GROUP_NODES: &str = "system:nodes";

/// Who is calling.
#[derive(Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user with the admin token.
    Admin,
    /// The agent of the named node, with its node token.
    Node(NodeIdentity),
    /// An agent holding a join token for one node: may obtain that node's token and nothing else.
    Joiner(NodeIdentity),
    /// The master's own controllers, in process.
    Master,
    /// Any other authenticated person or program (a ServiceAccount token, a user's credential):
    /// authorization decides what it may do.
    User(UserInfo),
}

impl Caller {
    /// The node identity a scoped token carries (joiners and nodes).
    pub fn identity(&self) -> Option<&NodeIdentity> {
        match self {
            Caller::Node(id) | Caller::Joiner(id) => Some(id),
            _ => None,
        }
    }

    /// Whether this caller may do everything: the admin, the master itself, or a user in
    /// `system:masters`.
    pub fn is_superuser(&self) -> bool {
        match self {
            Caller::Admin | Caller::Master => true,
            Caller::User(u) => u.groups.iter().any(|g| g == GROUP_MASTERS),
            Caller::Node(_) | Caller::Joiner(_) => false,
        }
    }

    /// The caller as Kubernetes names it: the admin is `admin` in `system:masters` (as in a
    /// kops kubeconfig), a node `system:node:NAME` in `system:nodes`, a joiner
    /// `system:bootstrap:NAME` in `system:bootstrappers`, the master's controllers
    /// `system:kube-controller-manager`.
    pub fn user_info(&self) -> UserInfo {
        let info = |name: String, groups: &[&str]| UserInfo {
            name,
            uid: String::new(),
            groups: groups
                .iter()
                .map(|g| g.to_string())
                .chain([GROUP_AUTHENTICATED.to_string()])
                .collect(),
        };
        match self {
            Caller::Admin => info("admin".into(), &[GROUP_MASTERS]),
            Caller::Master => info("system:kube-controller-manager".into(), &[GROUP_MASTERS]),
            Caller::Node(id) => info(format!("system:node:{}", id.name), &[GROUP_NODES]),
            Caller::Joiner(id) => info(
                format!("system:bootstrap:{}", id.name),
                &["system:bootstrappers"],
            ),
            Caller::User(u) => u.clone(),
        }
    }

    /// The name of the node whose node token this is.
    pub fn node(&self) -> Option<&str> {
        match self {
            Caller::Node(id) => Some(&id.name),
            _ => None,
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Caller::Admin => f.write_str("admin"),
            Caller::Node(id) => write!(f, "node/{}", id.name),
            Caller::Joiner(id) => write!(f, "joiner/{}", id.name),
            Caller::Master => f.write_str("master"),
            Caller::User(u) => write!(f, "user/{}", u.name),
        }
    }
}

/// The secrets the master checks tokens against.
pub struct Credentials {
    admin_token: String,
    join_key: hmac::Key,
    signing_key: hmac::Key,
    node_token_ttl: chrono::Duration,
}

const NODE_PREFIX: &str = "orkops-node";
const JOIN_PREFIX: &str = "orkops-join";

fn field(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn unfield(s: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// `PREFIX.NAME.INSTANCE.ADDRESS.ISSUED[.EXTRA].HMAC`, signed over everything before the HMAC.
fn sign(key: &hmac::Key, prefix: &str, id: &NodeIdentity, extra: Option<i64>) -> String {
    let mut payload = format!(
        "{prefix}.{}.{}.{}.{}",
        field(&id.name),
        field(&id.instance),
        field(&id.address),
        id.issued_ms
    );
    if let Some(x) = extra {
        payload.push_str(&format!(".{x}"));
    }
    let sig = hmac::sign(key, payload.as_bytes());
    format!("{payload}.{}", hex::encode(sig.as_ref()))
}

/// Checks a scoped token's HMAC and decodes it: the identity and the extra number (node
/// tokens' expiry). None when it is not a well-formed token signed with `key`.
fn verify(
    key: &hmac::Key,
    prefix: &str,
    token: &str,
    extra: bool,
) -> Option<(NodeIdentity, Option<i64>)> {
    let (payload, sig) = token.rsplit_once('.')?;
    let parts: Vec<&str> = payload.split('.').collect();
    if parts.len() != if extra { 6 } else { 5 } || parts[0] != prefix {
        return None;
    }
    hmac::verify(key, payload.as_bytes(), &hex::decode(sig).ok()?).ok()?;
    let id = NodeIdentity {
        name: unfield(parts[1])?,
        instance: unfield(parts[2])?,
        address: unfield(parts[3])?,
        issued_ms: parts[4].parse().ok()?,
    };
    let x = if extra {
        Some(parts[5].parse().ok()?)
    } else {
        None
    };
    Some((id, x))
}

/// A join token for one node, signed with the cluster's join secret (the CLI's bootstrap and
/// the master both mint them).
pub fn mint_join_token(join_secret: &str, id: &NodeIdentity) -> String {
    sign(
        &hmac::Key::new(hmac::HMAC_SHA256, join_secret.as_bytes()),
        JOIN_PREFIX,
        id,
        None,
    )
}

impl Credentials {
    pub fn new(
        admin_token: &str,
        join_secret: &str,
        signing_key: &[u8],
        node_token_ttl: std::time::Duration,
    ) -> Self {
        Credentials {
            admin_token: admin_token.to_string(),
            join_key: hmac::Key::new(hmac::HMAC_SHA256, join_secret.as_bytes()),
            signing_key: hmac::Key::new(hmac::HMAC_SHA256, signing_key),
            node_token_ttl: chrono::Duration::from_std(node_token_ttl)
                .unwrap_or(chrono::Duration::days(30)),
        }
    }

    /// Identifies the caller from the `Authorization` header value. Revocation is checked by
    /// the engine (it lives in the store).
    pub fn authenticate(
        &self,
        header: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Caller, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::Unauthorized(
                "no bearer token: every request needs `Authorization: Bearer TOKEN` (orkops reads it from the client config)".into(),
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer TOKEN`".into())
            })?
            .trim();
        if eq(token, &self.admin_token) {
            return Ok(Caller::Admin);
        }
        if token.starts_with(&format!("{JOIN_PREFIX}.")) {
            return verify(&self.join_key, JOIN_PREFIX, token, false)
                .map(|(id, _)| Caller::Joiner(id))
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "the join token is not valid for this cluster; hint: `orkops create join-token NODE` makes one".into(),
                    )
                });
        }
        if token.starts_with(&format!("{NODE_PREFIX}.")) {
            return self.verify_node_token(token, now);
        }
        Err(ApiError::Unauthorized(
            "the token is not valid for this cluster: check the client config (--config, ORKOPS_CONFIG or ~/.orkops/config)".into(),
        ))
    }

    fn verify_node_token(&self, token: &str, now: DateTime<Utc>) -> Result<Caller, ApiError> {
        let (id, expiry) =
            verify(&self.signing_key, NODE_PREFIX, token, true).ok_or_else(|| {
                ApiError::Unauthorized("the node token is not valid for this cluster".into())
            })?;
        let expiry = expiry.unwrap_or_default();
        if now.timestamp() > expiry {
            let at = DateTime::<Utc>::from_timestamp(expiry, 0).unwrap_or_default();
            return Err(ApiError::Unauthorized(format!(
                "the token of node {:?} expired at {}; join the node again with a join token (`orkops create join-token`)",
                id.name,
                at.to_rfc3339()
            )));
        }
        Ok(Caller::Node(id))
    }

    /// A join token for `node`, bound to `instance` and `address` (may be empty), issued `now`.
    pub fn mint_join_token(
        &self,
        node: &str,
        instance: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> String {
        let id = NodeIdentity {
            name: node.to_string(),
            instance: instance.to_string(),
            address: address.to_string(),
            issued_ms: now.timestamp_millis(),
        };
        sign(&self.join_key, JOIN_PREFIX, &id, None)
    }

    /// A node token carrying `bound` (name, instance, address) issued `now`, valid for the
    /// configured lifetime.
    pub fn mint_node_token(
        &self,
        bound: &NodeIdentity,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let expiry = now + self.node_token_ttl;
        let id = NodeIdentity {
            issued_ms: now.timestamp_millis(),
            ..bound.clone()
        };
        (
            sign(
                &self.signing_key,
                NODE_PREFIX,
                &id,
                Some(expiry.timestamp()),
            ),
            expiry,
        )
    }
}

fn eq(a: &str, b: &str) -> bool {
    !b.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A fresh random token (32 bytes, hex).
pub fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn creds() -> Credentials {
        Credentials::new(
            "admin-secret",
            "join-secret",
            b"key",
            Duration::from_secs(3600),
        )
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    fn node(name: &str) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            instance: "i-1".into(),
            address: "10.0.0.5".into(),
            issued_ms: 0,
        }
    }

    #[test]
    fn each_token_maps_to_its_caller() {
        let c = creds();
        let now = Utc::now();
        assert_eq!(
            c.authenticate(Some("Bearer admin-secret"), now).unwrap(),
            Caller::Admin
        );
        let join = c.mint_join_token("node-1", "i-1", "10.0.0.5", now);
        let Caller::Joiner(id) = c.authenticate(Some(&bearer(&join)), now).unwrap() else {
            panic!("a join token authenticates a joiner");
        };
        assert_eq!(
            (id.name.as_str(), id.instance.as_str(), id.address.as_str()),
            ("node-1", "i-1", "10.0.0.5")
        );
        assert_eq!(id.issued_ms, now.timestamp_millis());
        let (t, _) = c.mint_node_token(&id, now);
        let Caller::Node(n) = c.authenticate(Some(&bearer(&t)), now).unwrap() else {
            panic!("a node token authenticates a node");
        };
        assert_eq!(
            (n.name, n.instance, n.address),
            (id.name, id.instance, id.address)
        );
        assert!(c.authenticate(None, now).is_err());
        assert!(c.authenticate(Some("Bearer nope"), now).is_err());
        assert!(c.authenticate(Some("Basic admin-secret"), now).is_err());
    }

    #[test]
    fn the_join_secret_is_not_a_bearer_token() {
        let c = creds();
        let err = c
            .authenticate(Some("Bearer join-secret"), Utc::now())
            .unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized(_)), "{err}");
    }

    #[test]
    fn the_join_helper_and_the_master_mint_the_same_token() {
        let c = creds();
        let now = Utc::now();
        let id = NodeIdentity {
            issued_ms: now.timestamp_millis(),
            ..node("node-1")
        };
        assert_eq!(
            mint_join_token("join-secret", &id),
            c.mint_join_token("node-1", "i-1", "10.0.0.5", now)
        );
    }

    #[test]
    fn scoped_tokens_cannot_be_forged_or_moved_across_fields_or_kinds() {
        let c = creds();
        let now = Utc::now();
        let join = c.mint_join_token("node-1", "i-1", "10.0.0.5", now);
        let (t, _) = c.mint_node_token(&node("node-1"), now);
        let reject = |tok: &str| {
            assert!(
                c.authenticate(Some(&bearer(tok)), now).is_err(),
                "{tok} must be refused"
            )
        };
        // another name in place of the signed one
        reject(&join.replacen(&field("node-1"), &field("node-2"), 1));
        reject(&t.replacen(&field("node-1"), &field("node-2"), 1));
        // fields swapped or shifted: the dots cannot move a value into another field
        let parts: Vec<&str> = join.split('.').collect();
        let swapped = [parts[0], parts[2], parts[1], parts[3], parts[4], parts[5]].join(".");
        reject(&swapped);
        let shifted = [
            parts[0], parts[1], "", parts[2], parts[3], parts[4], parts[5],
        ]
        .join(".");
        reject(&shifted);
        // a join token's signature does not make a node token, nor the other way round
        reject(&join.replacen(JOIN_PREFIX, NODE_PREFIX, 1));
        reject(&t.replacen(NODE_PREFIX, JOIN_PREFIX, 1));
        // a node token signed with the join secret (or the other key) is refused
        let other = Credentials::new("a", "j", b"other-key", Duration::from_secs(3600));
        assert!(other.authenticate(Some(&bearer(&t)), now).is_err());
        assert!(other.authenticate(Some(&bearer(&join)), now).is_err());
        let by_join_key = sign(&c.join_key, NODE_PREFIX, &node("node-1"), Some(i64::MAX));
        reject(&by_join_key);
        // truncated, empty or garbage
        reject(JOIN_PREFIX);
        reject(&format!("{JOIN_PREFIX}."));
        reject(&join[..join.len() - 2]);
        reject(&format!("{NODE_PREFIX}.a.b.c.d.e.f.g"));
    }

    #[test]
    fn node_tokens_do_not_outlive_their_expiry() {
        let c = creds();
        let now = Utc::now();
        let (t, _) = c.mint_node_token(&node("node-1"), now);
        let later = now + chrono::Duration::hours(2);
        let err = c.authenticate(Some(&bearer(&t)), later).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn caller_debug_never_shows_a_token() {
        assert_eq!(format!("{:?}", Caller::Node(node("n"))), "node/n");
        assert_eq!(format!("{:?}", Caller::Joiner(node("n"))), "joiner/n");
    }
}
