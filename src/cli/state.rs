//! A cluster's local state, `~/.orkops/clusters/NAME/`: what only the user's machine holds —
//! the SSH key (`id_ed25519`, OpenSSH format, 0600), the instances' recorded host keys
//! (`known_hosts`), the cluster secrets for its masters (`pki/`) and the last summary
//! (`cluster.json`). Everything else is found in AWS by tag.

use std::path::PathBuf;

use anyhow::Context;

pub struct ClusterDir {
    pub name: String,
    pub path: PathBuf,
}

impl ClusterDir {
    pub fn of(name: &str) -> ClusterDir {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        ClusterDir {
            name: name.to_string(),
            path: home.join(".orkops").join("clusters").join(name),
        }
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The private key the bootstrap logs in with.
    pub fn ssh_key_path(&self) -> PathBuf {
        self.file("id_ed25519")
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        self.file("known_hosts")
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.file("pki")
    }

    /// The public key line of the cluster's key, if the key exists.
    pub fn public_key(&self) -> Option<String> {
        std::fs::read_to_string(self.file("id_ed25519.pub"))
            .ok()
            .map(|k| k.trim().to_string())
    }

    /// Generates the cluster's ed25519 key once; returns its public key line.
    pub fn ensure_key(&self) -> anyhow::Result<String> {
        if let Some(k) = self.public_key() {
            if self.ssh_key_path().exists() {
                return Ok(k);
            }
        }
        self.create()?;
        let key = russh::keys::PrivateKey::random(
            &mut rand::rngs::OsRng,
            russh::keys::Algorithm::Ed25519,
        )
        .map_err(|e| anyhow::anyhow!("cannot generate an SSH key: {e}"))?;
        let mut public = key.public_key().clone();
        public.set_comment(format!("orkops-{}", self.name));
        let line = public
            .to_openssh()
            .map_err(|e| anyhow::anyhow!("cannot encode the SSH key: {e}"))?;
        let private = key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("cannot encode the SSH key: {e}"))?;
        crate::pki::write_private(&self.ssh_key_path(), private.as_bytes())?;
        std::fs::write(self.file("id_ed25519.pub"), format!("{line}\n"))?;
        Ok(line)
    }

    /// Uses the user's key pair instead (read and checked by `settings::KeyPair::read`): both
    /// halves are copied into the cluster's directory. Returns the public key line.
    pub fn adopt_key(&self, key: &crate::provision::settings::KeyPair) -> anyhow::Result<String> {
        self.create()?;
        crate::pki::write_private(&self.ssh_key_path(), key.private_pem.as_bytes())?;
        std::fs::write(self.file("id_ed25519.pub"), format!("{}\n", key.public))?;
        Ok(key.public.clone())
    }

    /// The cluster's CA, tokens and signing key, generated once (files of 0600 under `pki/`);
    /// the bootstrap hands them to every master.
    pub fn secrets(&self) -> anyhow::Result<crate::bootstrap::render::Secrets> {
        use crate::apiserver::auth::random_token;
        use crate::pki;
        let dir = self.pki_dir();
        self.create()?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ca = pki::Ca::load_or_generate(&dir, &format!("orkops-ca-{}", self.name))?;
        Ok(crate::bootstrap::render::Secrets {
            ca_cert: ca.cert_pem,
            ca_key: ca.key_pem,
            admin_token: pki::read_or_create(&dir.join("admin.token"), random_token)?,
            join_token: pki::read_or_create(&dir.join("join.token"), random_token)?,
            signing_key: pki::read_or_create(&dir.join("signing.key"), random_token)?,
            etcd: self.etcd_secrets()?,
        })
    }

    /// etcd's CA and files, `pki/etcd/`: a CA of its own, not the cluster's.
    fn etcd_dir(&self) -> PathBuf {
        self.pki_dir().join("etcd")
    }

    fn etcd_ca(&self) -> anyhow::Result<crate::pki::Ca> {
        Ok(crate::pki::Ca::load_or_generate(
            &self.etcd_dir(),
            &format!("orkops-etcd-ca-{}", self.name),
        )?)
    }

    /// etcd's CA (generated once; a state from before it existed gets it on the next update)
    /// and orkops-master's etcd client certificate; the members' certificates are added by
    /// [`ClusterDir::etcd_members`] once the masters' addresses are known.
    fn etcd_secrets(&self) -> anyhow::Result<crate::bootstrap::render::EtcdSecrets> {
        let ca = self.etcd_ca()?;
        let (client_cert, client_key) = crate::pki::etcd_client_cert(&ca, &self.etcd_dir())?;
        Ok(crate::bootstrap::render::EtcdSecrets {
            ca_cert: ca.cert_pem,
            client_cert,
            client_key,
            members: Default::default(),
        })
    }

    /// The etcd certificates of each master (name, private IP), kept under `pki/etcd/` and
    /// issued again only when its address changes.
    pub fn etcd_members(
        &self,
        masters: &[(String, String)],
    ) -> anyhow::Result<std::collections::BTreeMap<String, crate::pki::EtcdMemberCerts>> {
        let ca = self.etcd_ca()?;
        masters
            .iter()
            .map(|(name, ip)| {
                let certs = crate::pki::etcd_member_certs(&ca, &self.etcd_dir(), name, ip)?;
                Ok((name.clone(), certs))
            })
            .collect()
    }

    /// The private key, for the bootstrap's SSH.
    pub fn private_key(&self) -> anyhow::Result<russh::keys::PrivateKey> {
        let p = self.ssh_key_path();
        russh::keys::load_secret_key(&p, None).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the cluster's SSH key: {e}; hint: the cluster was created on another machine: copy its ~/.orkops/clusters/{} here",
                p.display(),
                self.name
            )
        })
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
