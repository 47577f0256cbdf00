//! The API client used by the CLI (and later the agent): HTTPS with the cluster CA, bearer
//! token, fail-over across the configured endpoints, typed errors from the server's `Status`,
//! and watches as a stream of events.

pub mod config;
pub mod kubeconfig;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::Value;

pub use config::ClientConfig;

use crate::api::Kind;
use crate::apiserver::Status;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error `Status`.
    #[error("{}", .0.message)]
    Api(Box<Status>),
    #[error("cannot reach the API server ({endpoints}): {message}\nhint: is the master running? `orkops validate cluster` checks a cluster; the endpoints come from the client config")]
    Unreachable { endpoints: String, message: String },
    #[error("{0}")]
    Protocol(String),
}

impl ClientError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api(s) => Some(s.code),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub type_: String,
    pub object: Value,
}

pub struct ApiClient {
    http: reqwest::Client,
    endpoints: Vec<reqwest::Url>,
    token: std::sync::RwLock<String>,
    current: AtomicUsize,
}

impl ApiClient {
    pub fn new(cfg: &ClientConfig) -> Result<ApiClient, ClientError> {
        let ca = cfg.ca_pem().map_err(ClientError::Protocol)?;
        let cert = reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| {
            ClientError::Protocol(format!("the client config's CA is not a certificate: {e}"))
        })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .connect_timeout(Duration::from_secs(5))
            .http1_only()
            .build()
            .map_err(|e| ClientError::Protocol(format!("cannot set up HTTPS: {e}")))?;
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                reqwest::Url::parse(e).map_err(|err| {
                    ClientError::Protocol(format!("endpoint {e:?} is not a URL: {err}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = endpoints.iter().find(|u| u.scheme() != "https") {
            return Err(ClientError::Protocol(format!(
                "endpoint {bad} must use https"
            )));
        }
        Ok(ApiClient {
            http,
            endpoints,
            token: std::sync::RwLock::new(cfg.token.clone()),
            current: AtomicUsize::new(0),
        })
    }

    fn token(&self) -> String {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Uses `token` from now on (a renewed node token).
    pub fn set_token(&self, token: &str) {
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = token.to_string();
    }

    /// One request with a streamed body or answer (logs, exec, image load) to the endpoint that
    /// answered last; no fail-over, since a streamed body cannot be sent twice.
    pub async fn send_streaming(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, ClientError> {
        let idx = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        let mut url = self.endpoints[idx].clone();
        url.set_path(path);
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.token())
            .query(query);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            endpoints: self.endpoints[idx].to_string(),
            message: error_chain(&e),
        })?;
        let upgraded = resp.status() == reqwest::StatusCode::SWITCHING_PROTOCOLS;
        if resp.status().is_success() || upgraded {
            Ok(resp)
        } else {
            Err(decode(resp).await.unwrap_err())
        }
    }

    /// Sends one request, trying the next endpoint when one cannot be reached.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&Value, &str)>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let mut url = self.endpoints[idx].clone();
            url.set_path(path);
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token())
                .query(query);
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            if let Some((b, ct)) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(serde_json::to_vec(b).unwrap_or_default());
            }
            match req.send().await {
                Ok(resp) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) if e.is_connect() || (e.is_timeout() && i + 1 < n) => {
                    last = format!("{}: {}", self.endpoints[idx], error_chain(&e));
                }
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        endpoints: self.endpoints[idx].to_string(),
                        message: error_chain(&e),
                    })
                }
            }
        }
        Err(ClientError::Unreachable {
            endpoints: self
                .endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            message: last,
        })
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let ct = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let resp = self
            .raw(
                method,
                path,
                query,
                body.map(|b| (b, ct)),
                Some(Duration::from_secs(60)),
            )
            .await?;
        decode(resp).await
    }

    pub async fn get(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ClientError> {
        self.request(Method::GET, &kind.path(ns, Some(name)), &[], None)
            .await
    }

    pub async fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.request(Method::GET, &kind.path(ns, None), query, None)
            .await
    }

    pub async fn create(
        &self,
        kind: Kind,
        ns: Option<&str>,
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.request(Method::POST, &kind.path(ns, None), &[], Some(body))
            .await
    }

    pub async fn replace(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.request(Method::PUT, &kind.path(ns, Some(name)), &[], Some(body))
            .await
    }

    pub async fn replace_status(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.request(
            Method::PUT,
            &format!("{}/status", kind.path(ns, Some(name))),
            &[],
            Some(body),
        )
        .await
    }

    pub async fn patch(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        self.request(Method::PATCH, &kind.path(ns, Some(name)), &[], Some(patch))
            .await
    }

    pub async fn delete(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.request(Method::DELETE, &kind.path(ns, Some(name)), query, None)
            .await
    }

    /// Watches a collection: events as the server sends them, until it ends the stream.
    pub async fn watch(
        &self,
        kind: Kind,
        ns: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<BoxStream<'static, Result<WatchEvent, ClientError>>, ClientError> {
        let mut q = query.to_vec();
        q.push(("watch", "true".into()));
        let resp = self
            .raw(Method::GET, &kind.path(ns, None), &q, None, None)
            .await?;
        if !resp.status().is_success() {
            return Err(decode(resp).await.unwrap_err());
        }
        let bytes = resp
            .bytes_stream()
            .map_err(|e| ClientError::Protocol(format!("watch interrupted: {e}")));
        let lines = futures::stream::unfold(
            (bytes, Vec::<u8>::new()),
            |(mut bytes, mut buf)| async move {
                loop {
                    if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        return Some((Ok(line), (bytes, buf)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => return Some((Err(e), (bytes, buf))),
                        None => return None,
                    }
                }
            },
        );
        Ok(lines
            .map(|line| {
                let line = line?;
                let v: Value = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(format!("bad watch event: {e}")))?;
                let type_ = v["type"].as_str().unwrap_or("").to_string();
                let object = v.get("object").cloned().unwrap_or(Value::Null);
                if type_ == "ERROR" {
                    let st: Status = serde_json::from_value(object)
                        .map_err(|e| ClientError::Protocol(format!("bad watch error: {e}")))?;
                    return Err(ClientError::Api(Box::new(st)));
                }
                Ok(WatchEvent { type_, object })
            })
            .boxed())
    }
}

async fn decode(resp: reqwest::Response) -> Result<Value, ClientError> {
    let code = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Protocol(format!("reading the response: {e}")))?;
    if code.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("the server sent invalid JSON: {e}")));
    }
    match serde_json::from_slice::<Status>(&body) {
        Ok(st) => Err(ClientError::Api(Box::new(st))),
        Err(_) => Err(ClientError::Api(Box::new(Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: format!(
                "the server answered {code}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
            reason: code.canonical_reason().unwrap_or("Unknown").into(),
            code: code.as_u16(),
            metadata: Default::default(),
            details: None,
        }))),
    }
}

/// An error and its causes on one line (repeated messages once).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}
