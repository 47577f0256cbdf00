//! The client configuration file (API endpoints, CA, token, default namespace), found the way
//! kubeconfig is: `--config`, then `ORKOPS_CONFIG`, then `~/.orkops/config`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub const ENV_VAR: &str = "ORKOPS_CONFIG";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `https://HOST:PORT` of each master (or of the API load balancer); tried in order.
    pub endpoints: Vec<String>,
    /// The cluster CA certificate, PEM, base64-encoded.
    pub certificate_authority_data: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no client configuration found (looked at {looked}); hint: pass --config FILE, set {ENV_VAR}, or run `orkops export config CLUSTER`")]
    Missing { looked: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ClientConfig {
    pub fn new(
        cluster: Option<&str>,
        endpoints: Vec<String>,
        ca_pem: &str,
        token: &str,
    ) -> ClientConfig {
        ClientConfig {
            api_version: "orkops.io/v1".into(),
            kind: "Config".into(),
            cluster: cluster.map(str::to_string),
            endpoints,
            certificate_authority_data: base64::engine::general_purpose::STANDARD.encode(ca_pem),
            token: token.to_string(),
            namespace: None,
        }
    }

    pub fn ca_pem(&self) -> Result<String, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.certificate_authority_data.trim())
            .map_err(|e| format!("certificateAuthorityData is not base64: {e}"))?;
        String::from_utf8(raw)
            .map_err(|_| "certificateAuthorityData is not a PEM certificate".to_string())
    }

    /// The default location: `~/.orkops/config`.
    pub fn default_path() -> Option<PathBuf> {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".orkops").join("config"))
    }

    /// Resolves which file to read: the flag, then the environment, then the default.
    pub fn locate(flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = flag {
            return Ok(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        match Self::default_path() {
            Some(p) if p.exists() => Ok(p),
            p => Err(ConfigError::Missing {
                looked: format!(
                    "--config, ${ENV_VAR}, {}",
                    p.map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.orkops/config".into())
                ),
            }),
        }
    }

    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        let cfg: ClientConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
                path: path.into(),
                message: e.to_string(),
            })?;
        if cfg.endpoints.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "endpoints: at least one API endpoint is needed".into(),
            });
        }
        if cfg.token.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "token: required".into(),
            });
        }
        cfg.ca_pem().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(cfg)
    }

    /// The file's text (YAML).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// Writes the file with mode 0600: it holds the admin token.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = self.to_yaml();
        crate::pki::write_private(path, text.as_bytes()).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        let cfg = ClientConfig::new(
            Some("c1"),
            vec!["https://127.0.0.1:6443".into()],
            "-----BEGIN CERTIFICATE-----\n",
            "tok",
        );
        cfg.save(&p).unwrap();
        assert_eq!(ClientConfig::load(&p).unwrap(), cfg);
        std::fs::write(&p, "apiVersion: orkops.io/v1\nkind: Config\nendpoints: []\ncertificateAuthorityData: ''\ntoken: t\n").unwrap();
        let err = ClientConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("endpoints"), "{err}");
        std::fs::write(&p, "endpointz: [a]\n").unwrap();
        let err = ClientConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("endpointz"), "{err}");
        assert_eq!(ClientConfig::locate(Some(&p)).unwrap(), p);
    }
}
