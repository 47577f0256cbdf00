//! The master's TLS to etcd, with kube-apiserver's flags `--etcd-cafile`, `--etcd-certfile`
//! and `--etcd-keyfile`, and the check of `--etcd-endpoints` against them: with the files every
//! endpoint is `https://`; without them only loopback `http://` endpoints are allowed (a single
//! host, the tests), so a master never sends the cluster's objects over the network in clear.

use std::path::{Path, PathBuf};

use etcd_client::{Certificate, Identity, TlsOptions};

/// The files named by `--etcd-cafile`, `--etcd-certfile` and `--etcd-keyfile`.
#[derive(Debug, Clone, Default)]
pub struct EtcdTlsFiles {
    /// The CA that signed etcd's serving certificates.
    pub ca_file: Option<PathBuf>,
    /// The client certificate etcd accepts (`--client-cert-auth`) and its key.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTlsFiles {
    /// Checks `endpoints` against these settings and reads the files: the TLS options for the
    /// etcd client, or `None` for plain http to loopback endpoints.
    pub fn client_tls(&self, endpoints: &[String]) -> Result<Option<TlsOptions>, String> {
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(
                    "--etcd-certfile and --etcd-keyfile go together: give both or neither".into(),
                )
            }
        };
        check_endpoints(endpoints, self.ca_file.is_some())?;
        let Some(ca) = &self.ca_file else {
            if identity.is_some() {
                return Err("--etcd-certfile needs --etcd-cafile, the CA that signed etcd's certificates (etcd has a CA of its own)".into());
            }
            return Ok(None);
        };
        let ca_pem = read_pem("--etcd-cafile", ca)?;
        crate::pki::parse_certs(&ca_pem, ca).map_err(|e| format!("--etcd-cafile {e}"))?;
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca_pem));
        if let Some((c, k)) = identity {
            let cert = read_pem("--etcd-certfile", c)?;
            crate::pki::parse_certs(&cert, c).map_err(|e| format!("--etcd-certfile {e}"))?;
            let key = read_pem("--etcd-keyfile", k)?;
            crate::pki::parse_key(&key, k).map_err(|e| format!("--etcd-keyfile {e}"))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(Some(tls))
    }
}

fn read_pem(flag: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// Every endpoint is an `http://` or `https://` URL with a host; `https://` exactly when TLS is
/// configured; `http://` only to a loopback host.
fn check_endpoints(endpoints: &[String], tls: bool) -> Result<(), String> {
    if endpoints.is_empty() {
        return Err("--etcd-endpoints: no endpoint given".into());
    }
    for ep in endpoints {
        let bad = |why: String| format!("--etcd-endpoints {ep}: {why}");
        let url = url::Url::parse(ep)
            .map_err(|e| bad(format!("not a URL such as https://10.0.0.4:2379 ({e})")))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => return Err(bad("the URL names no host".into())),
        };
        match (url.scheme(), tls) {
            ("https", true) => {}
            ("http", true) => {
                return Err(bad(
                    "plain http while --etcd-cafile is given; hint: use https://".into(),
                ))
            }
            ("https", false) => {
                return Err(bad(
                    "https needs --etcd-cafile (and --etcd-certfile, --etcd-keyfile when etcd asks for a client certificate)".into(),
                ))
            }
            ("http", false) if loopback => {}
            ("http", false) => {
                return Err(bad(
                    "plain http is allowed only to a loopback address; hint: serve etcd over TLS and give --etcd-cafile, --etcd-certfile and --etcd-keyfile".into(),
                ))
            }
            (other, _) => return Err(bad(format!("unsupported scheme {other:?}: use https://"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_http_is_allowed_only_to_loopback_endpoints() {
        let local = eps(&[
            "http://127.0.0.1:2379",
            "http://localhost:2379",
            "http://[::1]:2379",
        ]);
        assert_eq!(check_endpoints(&local, false), Ok(()));
        let remote = eps(&["http://127.0.0.1:2379", "http://10.0.0.4:2379"]);
        let err = check_endpoints(&remote, false).unwrap_err();
        assert!(
            err.starts_with(
                "--etcd-endpoints http://10.0.0.4:2379: plain http is allowed only to a loopback"
            ),
            "{err}"
        );
        let err = check_endpoints(&eps(&["https://10.0.0.4:2379"]), false).unwrap_err();
        assert!(err.contains("https needs --etcd-cafile"), "{err}");
    }

    #[test]
    fn with_tls_every_endpoint_is_https() {
        let ok = eps(&["https://127.0.0.1:2379", "https://10.0.0.4:2379"]);
        assert_eq!(check_endpoints(&ok, true), Ok(()));
        let err = check_endpoints(
            &eps(&["https://10.0.0.4:2379", "http://127.0.0.1:2379"]),
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("http://127.0.0.1:2379: plain http while --etcd-cafile"),
            "{err}"
        );
        for bad in ["10.0.0.4:2379", "unix:///run/etcd.sock", "https://", ""] {
            assert!(check_endpoints(&eps(&[bad]), true).is_err(), "{bad}");
        }
        assert!(check_endpoints(&[], true).is_err());
    }

    #[test]
    fn the_files_are_checked_and_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let https = eps(&["https://10.0.0.4:2379"]);
        let half = EtcdTlsFiles {
            cert_file: Some(dir.path().join("c")),
            ..Default::default()
        };
        assert!(half.client_tls(&https).unwrap_err().contains("go together"));
        let no_ca = EtcdTlsFiles {
            cert_file: Some(dir.path().join("c")),
            key_file: Some(dir.path().join("k")),
            ..Default::default()
        };
        let err = no_ca
            .client_tls(&eps(&["http://127.0.0.1:2379"]))
            .unwrap_err();
        assert!(err.contains("--etcd-certfile needs --etcd-cafile"), "{err}");
        let missing = EtcdTlsFiles {
            ca_file: Some(dir.path().join("ca.crt")),
            ..Default::default()
        };
        let err = missing.client_tls(&https).unwrap_err();
        assert!(
            err.starts_with("--etcd-cafile ") && err.contains("ca.crt"),
            "{err}"
        );
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let err = missing.client_tls(&https).unwrap_err();
        assert!(err.contains("no certificate in the file"), "{err}");
        assert!(EtcdTlsFiles::default()
            .client_tls(&eps(&["http://127.0.0.1:2379"]))
            .unwrap()
            .is_none());
    }
}
