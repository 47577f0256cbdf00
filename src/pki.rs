//! Cluster PKI and secrets: the CA, serving certificates signed by it, and the random tokens
//! and signing key a master needs. Generated when absent (the way a master sets itself up) and
//! read back on every start; keys are written with mode 0600. Also builds rustls configs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot generate {what}: {message}")]
    Generate { what: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` readable by the owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// Reads a file holding a token or key, trimmed; errors name the file.
pub fn read_secret(path: &Path) -> Result<String, PkiError> {
    let s = read(path)?.trim().to_string();
    if s.is_empty() {
        return Err(PkiError::Invalid {
            path: path.into(),
            message: "the file is empty".into(),
        });
    }
    Ok(s)
}

/// Reads `path`, or generates it with `make` and stores it when absent.
pub fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, PkiError> {
    if path.exists() {
        return read_secret(path);
    }
    let v = make();
    write_private(path, v.as_bytes())?;
    Ok(v)
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Generate {
        what: what.into(),
        message: e.to_string(),
    }
}

/// A CA certificate and key in PEM.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn generate(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(gen_err("the CA"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads `ca.crt`/`ca.key` from `dir`, generating them when both are absent.
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<Ca, PkiError> {
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if crt.exists() && key.exists() {
            return Ok(Ca {
                cert_pem: read(&crt)?,
                key_pem: read(&key)?,
            });
        }
        let ca = Ca::generate(common_name)?;
        write_private(&key, ca.key_pem.as_bytes())?;
        write_private(&crt, ca.cert_pem.as_bytes())?;
        Ok(ca)
    }

    /// Issues a certificate for `common_name` valid for `sans` (DNS names or IP addresses).
    pub fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        server: bool,
        client: bool,
    ) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(gen_err("the CA key"))?;
        let ca_params = CertificateParams::from_ca_cert_pem(&self.cert_pem)
            .map_err(gen_err("the CA certificate"))?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(gen_err("the CA certificate"))?;
        let key = KeyPair::generate().map_err(gen_err("a key"))?;
        let mut params = CertificateParams::new(sans.to_vec()).map_err(gen_err(common_name))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(gen_err(common_name))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Loads `NAME.crt`/`NAME.key` from `dir` if they were issued for exactly `sans`, otherwise
/// issues new ones from `ca` (the SAN list is kept beside them in `NAME.sans`).
pub fn load_or_issue(
    ca: &Ca,
    dir: &Path,
    name: &str,
    sans: &[String],
) -> Result<(String, String), PkiError> {
    load_or_issue_as(ca, dir, name, name, sans, (true, true))
}

/// [`load_or_issue`] with the files named `name` and the certificate for `common_name`, made
/// for (server, client) authentication as `usage` says.
fn load_or_issue_as(
    ca: &Ca,
    dir: &Path,
    name: &str,
    common_name: &str,
    sans: &[String],
    usage: (bool, bool),
) -> Result<(String, String), PkiError> {
    let (crt, key, list) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.sans")),
    );
    let wanted = sans.join("\n");
    if crt.exists()
        && key.exists()
        && fs::read_to_string(&list).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok((read(&crt)?, read(&key)?));
    }
    let (c, k) = ca.issue(common_name, sans, usage.0, usage.1)?;
    write_private(&key, k.as_bytes())?;
    write_private(&crt, c.as_bytes())?;
    write_private(&list, wanted.as_bytes())?;
    Ok((c, k))
}

/// The common name of the one etcd client certificate, orkops-master's.
pub const ETCD_CLIENT_NAME: &str = "orkops-master";

/// An etcd member's certificates from the etcd CA (PEM): `peer` (for the other members, valid
/// for its private IP and name) and `server` (the client port's, valid for 127.0.0.1, localhost
/// and its private IP); both for server and client auth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdMemberCerts {
    pub peer_cert: String,
    pub peer_key: String,
    pub server_cert: String,
    pub server_key: String,
}

/// Loads or issues (from the etcd CA `ca`, files under `dir`) the certificates of etcd member
/// `name` at `private_ip`; reissued when the address changes.
pub fn etcd_member_certs(
    ca: &Ca,
    dir: &Path,
    name: &str,
    private_ip: &str,
) -> Result<EtcdMemberCerts, PkiError> {
    let peer_sans = [private_ip.to_string(), name.to_string()];
    let (peer_cert, peer_key) = load_or_issue_as(
        ca,
        dir,
        &format!("{name}-peer"),
        name,
        &peer_sans,
        (true, true),
    )?;
    let server_sans = [
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        private_ip.to_string(),
    ];
    // client auth too: etcd 3.4's JSON gateway (/v3/kv/...) dials the client port itself,
    // presenting this certificate; without it every gateway request fails with code 14
    let (server_cert, server_key) = load_or_issue_as(
        ca,
        dir,
        &format!("{name}-server"),
        name,
        &server_sans,
        (true, true),
    )?;
    Ok(EtcdMemberCerts {
        peer_cert,
        peer_key,
        server_cert,
        server_key,
    })
}

/// Loads or issues (from the etcd CA `ca`, files under `dir`) orkops-master's etcd client
/// certificate: client auth only, no names.
pub fn etcd_client_cert(ca: &Ca, dir: &Path) -> Result<(String, String), PkiError> {
    load_or_issue_as(ca, dir, "client", ETCD_CLIENT_NAME, &[], (false, true))
}

pub fn parse_certs(pem: &str, origin: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError::Invalid {
            path: origin.into(),
            message: format!("not a PEM certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Invalid {
            path: origin.into(),
            message: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

pub fn parse_key(pem: &str, origin: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PkiError::Invalid {
            path: origin.into(),
            message: format!("not a PEM private key: {e}"),
        })?
        .ok_or_else(|| PkiError::Invalid {
            path: origin.into(),
            message: "no private key in the file".into(),
        })
}

pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server config presenting `cert_pem` (chain) with `key_pem`.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    origin: &Path,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let certs = parse_certs(cert_pem, origin)?;
    let key = parse_key(key_pem, origin)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| PkiError::Invalid {
            path: origin.into(),
            message: format!("unusable certificate or key: {e}"),
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TLS server config that also demands a client certificate of the CA in `ca_pem` made for
/// client authentication (the agent's endpoint: only the master holds such a certificate).
pub fn mutual_server_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    origin: &Path,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let invalid = |message: String| PkiError::Invalid {
        path: origin.into(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in parse_certs(ca_pem, origin)? {
        roots
            .add(c)
            .map_err(|e| invalid(format!("unusable CA certificate: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        crypto_provider(),
    )
    .build()
    .map_err(|e| invalid(format!("cannot verify clients with this CA: {e}")))?;
    let (certs, key) = (parse_certs(cert_pem, origin)?, parse_key(key_pem, origin)?);
    let mut cfg = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)
        })
        .map_err(|e| invalid(format!("unusable certificate or key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The DNS names and IP addresses a certificate request asks for.
pub fn csr_names(csr_pem: &str) -> Result<Vec<String>, PkiError> {
    let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(gen_err("the certificate request"))?;
    Ok(csr
        .params
        .subject_alt_names
        .iter()
        .map(|san| match san {
            rcgen::SanType::DnsName(d) => d.to_string(),
            rcgen::SanType::IpAddress(ip) => ip.to_string(),
            other => format!("{other:?}"),
        })
        .collect())
}

/// Signs a node's certificate request for exactly `names` (the signer derives them; the
/// request's own names are not kept): the subject becomes `node`, the certificate is for
/// serving only (it cannot be used as a client certificate), valid for a year.
pub fn sign_node_csr(
    ca: &Ca,
    node: &str,
    names: &[String],
    csr_pem: &str,
) -> Result<String, PkiError> {
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(gen_err("the certificate request"))?;
    let p = &mut csr.params;
    p.subject_alt_names = CertificateParams::new(names.to_vec())
        .map_err(gen_err(node))?
        .subject_alt_names;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, node);
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.custom_extensions.clear();
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(365);
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(gen_err("the CA key"))?;
    let ca_cert = CertificateParams::from_ca_cert_pem(&ca.cert_pem)
        .map_err(gen_err("the CA certificate"))?
        .self_signed(&ca_key)
        .map_err(gen_err("the CA certificate"))?;
    Ok(csr
        .signed_by(&ca_cert, &ca_key)
        .map_err(gen_err(node))?
        .pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca_and_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_generate(dir.path(), "orkops-test-ca").unwrap();
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let (c1, _) = load_or_issue(&ca, dir.path(), "apiserver", &sans).unwrap();
        let (c2, _) = load_or_issue(&ca, dir.path(), "apiserver", &sans).unwrap();
        assert_eq!(c1, c2, "same SANs: the certificate is reused");
        let (c3, _) = load_or_issue(&ca, dir.path(), "apiserver", &["other".to_string()]).unwrap();
        assert_ne!(c1, c3, "new SANs: a new certificate");
        let again = Ca::load_or_generate(dir.path(), "ignored").unwrap();
        assert_eq!(again.cert_pem, ca.cert_pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn usages_and_names(pem: &str) -> (Vec<ExtendedKeyUsagePurpose>, Vec<String>) {
        let p = CertificateParams::from_ca_cert_pem(pem).unwrap();
        let names = p
            .subject_alt_names
            .iter()
            .map(|n| match n {
                rcgen::SanType::DnsName(d) => d.to_string(),
                rcgen::SanType::IpAddress(ip) => ip.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        (p.extended_key_usages, names)
    }

    #[test]
    fn etcd_certificates_have_their_names_and_usages_and_are_reused() {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_generate(dir.path(), "orkops-etcd-ca-test").unwrap();
        let m = etcd_member_certs(&ca, dir.path(), "master-2", "10.0.16.4").unwrap();
        assert_eq!(
            usages_and_names(&m.peer_cert),
            (
                vec![ServerAuth, ClientAuth],
                vec!["10.0.16.4".into(), "master-2".into()]
            )
        );
        assert_eq!(
            usages_and_names(&m.server_cert),
            (
                vec![ServerAuth, ClientAuth],
                vec!["127.0.0.1".into(), "localhost".into(), "10.0.16.4".into()]
            )
        );
        let (client, _) = etcd_client_cert(&ca, dir.path()).unwrap();
        assert_eq!(usages_and_names(&client), (vec![ClientAuth], vec![]));
        let again = etcd_member_certs(&ca, dir.path(), "master-2", "10.0.16.4").unwrap();
        assert_eq!(again, m, "same address: the same certificates");
        let moved = etcd_member_certs(&ca, dir.path(), "master-2", "10.0.16.9").unwrap();
        assert_ne!(
            moved.peer_cert, m.peer_cert,
            "a new address: new certificates"
        );
        assert_eq!(etcd_client_cert(&ca, dir.path()).unwrap().0, client);
    }
}
