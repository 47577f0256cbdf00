//! Authentication and authorization. Every request carries a bearer token: the admin token
//! (users), the join token (an agent asking for its node token), or a node token
//! (`orkops-node.NAME.EXPIRY.HMAC`, signed by the master) that lets an agent change only its own
//! Node and the pods bound to it. Tokens are compared in constant time and never logged.

use std::fmt;

use chrono::{DateTime, Utc};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Who is calling.
#[derive(Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user with the admin token.
    Admin,
    /// The agent of the named node.
    Node(String),
    /// An agent that holds only the join token: may ask for a node token and nothing else.
    Joiner,
    /// The master's own controllers, in process.
    Master,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Caller::Admin => f.write_str("admin"),
            Caller::Node(n) => write!(f, "node/{n}"),
            Caller::Joiner => f.write_str("joiner"),
            Caller::Master => f.write_str("master"),
        }
    }
}

/// The secrets the master checks tokens against.
pub struct Credentials {
    admin_token: String,
    join_token: String,
    signing_key: hmac::Key,
    node_token_ttl: chrono::Duration,
}

const NODE_PREFIX: &str = "orkops-node.";

impl Credentials {
    pub fn new(
        admin_token: &str,
        join_token: &str,
        signing_key: &[u8],
        node_token_ttl: std::time::Duration,
    ) -> Self {
        Credentials {
            admin_token: admin_token.to_string(),
            join_token: join_token.to_string(),
            signing_key: hmac::Key::new(hmac::HMAC_SHA256, signing_key),
            node_token_ttl: chrono::Duration::from_std(node_token_ttl)
                .unwrap_or(chrono::Duration::days(30)),
        }
    }

    /// Identifies the caller from the `Authorization` header value.
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
        if eq(token, &self.join_token) {
            return Ok(Caller::Joiner);
        }
        if let Some(rest) = token.strip_prefix(NODE_PREFIX) {
            return self.verify_node_token(rest, now);
        }
        Err(ApiError::Unauthorized(
            "the token is not valid for this cluster: check the client config (--config, ORKOPS_CONFIG or ~/.orkops/config)".into(),
        ))
    }

    fn verify_node_token(&self, rest: &str, now: DateTime<Utc>) -> Result<Caller, ApiError> {
        let invalid =
            || ApiError::Unauthorized("the node token is not valid for this cluster".into());
        let mut parts = rest.rsplitn(3, '.');
        let (sig, expiry, name) = (
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
        );
        let sig = hex::decode(sig).map_err(|_| invalid())?;
        hmac::verify(
            &self.signing_key,
            format!("{name}.{expiry}").as_bytes(),
            &sig,
        )
        .map_err(|_| invalid())?;
        let expiry: i64 = expiry.parse().map_err(|_| invalid())?;
        if now.timestamp() > expiry {
            let at = DateTime::<Utc>::from_timestamp(expiry, 0).unwrap_or_default();
            return Err(ApiError::Unauthorized(format!(
                "the token of node {name:?} expired at {}; restart its agent with the join token to get a new one",
                at.to_rfc3339()
            )));
        }
        Ok(Caller::Node(name.to_string()))
    }

    /// A node token for `node`, valid for the configured lifetime from `now`.
    pub fn mint_node_token(&self, node: &str, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expiry = now + self.node_token_ttl;
        let payload = format!("{node}.{}", expiry.timestamp());
        let sig = hmac::sign(&self.signing_key, payload.as_bytes());
        (
            format!("{NODE_PREFIX}{payload}.{}", hex::encode(sig.as_ref())),
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

    #[test]
    fn each_token_maps_to_its_caller() {
        let c = creds();
        let now = Utc::now();
        assert_eq!(
            c.authenticate(Some("Bearer admin-secret"), now).unwrap(),
            Caller::Admin
        );
        assert_eq!(
            c.authenticate(Some("Bearer join-secret"), now).unwrap(),
            Caller::Joiner
        );
        let (t, _) = c.mint_node_token("node-1", now);
        assert_eq!(
            c.authenticate(Some(&format!("Bearer {t}")), now).unwrap(),
            Caller::Node("node-1".into())
        );
        assert!(c.authenticate(None, now).is_err());
        assert!(c.authenticate(Some("Bearer nope"), now).is_err());
        assert!(c.authenticate(Some("Basic admin-secret"), now).is_err());
    }

    #[test]
    fn node_tokens_cannot_be_forged_or_outlive_their_expiry() {
        let c = creds();
        let now = Utc::now();
        let (t, _) = c.mint_node_token("node-1", now);
        let forged = t.replace("node-1", "node-2");
        assert!(c
            .authenticate(Some(&format!("Bearer {forged}")), now)
            .is_err());
        let other = Credentials::new("a", "j", b"other-key", Duration::from_secs(3600));
        assert!(other
            .authenticate(Some(&format!("Bearer {t}")), now)
            .is_err());
        let later = now + chrono::Duration::hours(2);
        let err = c
            .authenticate(Some(&format!("Bearer {t}")), later)
            .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn caller_debug_never_shows_a_token() {
        assert_eq!(format!("{:?}", Caller::Node("n".into())), "node/n");
    }
}
