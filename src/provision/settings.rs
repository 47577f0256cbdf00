//! The settings of the provisioning commands, checked before the first AWS call: the value
//! parsers clap runs on each flag (durations, cluster names, zones, instance types, images,
//! CIDRs), and the settings values `create`, `update`, `validate` and `delete` take. A value
//! that cannot be right is refused here, naming the flag and the value, and nothing is made.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cloud::ClusterSpec;

/// The longest duration a flag takes (a typo such as `5000h` is refused, not waited out).
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration the way Go, kubectl and kops write them: one or more numbers, each with a unit
/// (`ms`, `s`, `m`, `h`; `d` for days as well), e.g. `90s`, `5m`, `1h30m`, `1.5h`; `0` alone
/// is zero. At most a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("{s:?} is not a duration: {why} (e.g. 90s, 5m, 1h30m; units ms, s, m, h, d)")
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("each unit needs a number before it"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| bad(&format!("{:?} is not a number", &rest[..digits])))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => return Err(bad("a number without a unit")),
            u => return Err(bad(&format!("unknown unit {u:?}"))),
        };
        rest = &rest[unit_len..];
        total += number * seconds;
        if total > MAX_DURATION.as_secs_f64() {
            return Err(bad("more than a year"));
        }
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration above zero (`--ssh-timeout`: zero would give up before the first try).
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be more than zero (e.g. 5m)")),
        d => Ok(d),
    }
}

/// A cluster name: it becomes part of AWS names (load balancers allow 32 characters).
pub fn cluster_name(s: &str) -> Result<String, String> {
    crate::cloud::check_name(s).map(|()| s.to_string())
}

/// An availability zone as AWS spells them: a region (`us-east-1`) then a letter, or a local
/// zone (`us-east-1-bos-1a`). Whether the region has it is AWS's to say.
pub fn zone(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && s.ends_with(|c: char| c.is_ascii_lowercase())
        && s[..s.len() - 1].ends_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an availability zone (a region and a letter, e.g. us-east-1a)"
        ))
    }
}

/// An EC2 instance type: a family and a size (`t3.medium`, `m7g.xlarge`). Whether it exists
/// in the region is AWS's to say.
pub fn instance_type(s: &str) -> Result<String, String> {
    let ok = s.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family.starts_with(|c: char| c.is_ascii_lowercase())
            && family
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && size
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok && s.len() <= 32 {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an instance type (a family and a size, e.g. t3.medium)"
        ))
    }
}

/// A machine image id: `ami-` and 8 or 17 hexadecimal digits.
pub fn image_id(s: &str) -> Result<String, String> {
    let ok = s.strip_prefix("ami-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a machine image id (ami- and 8 or 17 hexadecimal digits)"
        ))
    }
}

/// An IPv4 CIDR, kept as given (`--network-cidr` also refuses a host address, later, with
/// the network address it probably meant).
pub fn ipv4_cidr(s: &str) -> Result<ipnet::Ipv4Net, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv4 CIDR (e.g. 10.0.0.0/16)"))
}

/// What `create` and `update` do once the plan is accepted.
#[derive(Clone)]
pub struct ApplySettings {
    /// Change AWS (`--yes` without `--dry-run`); otherwise only plan.
    pub apply: bool,
    /// Stop after the infrastructure.
    pub infrastructure_only: bool,
    /// The binaries the bootstrap installs, read and checked up front (`None` with
    /// `--infrastructure-only` or when nothing is applied).
    pub binaries: Option<crate::bootstrap::Binaries>,
    /// How long an instance's SSH (and its user data) may take.
    pub ssh_timeout: Duration,
    /// How long to wait, after the bootstrap, for every node to be Ready.
    pub wait: Duration,
    /// Where the admin client config goes (`--config`; else `$ORKOPS_CONFIG` or
    /// `~/.orkops/config`).
    pub config: Option<PathBuf>,
}

impl ApplySettings {
    /// Reads the binaries when they will be needed, so that a wrong `--binaries-dir` is told
    /// before the infrastructure is made.
    pub fn new(
        apply: bool,
        infrastructure_only: bool,
        binaries_dir: Option<&Path>,
        ssh_timeout: Duration,
        wait: Duration,
        config: Option<&Path>,
    ) -> Result<ApplySettings, String> {
        let binaries = if apply && !infrastructure_only {
            let dir = match binaries_dir {
                Some(d) => d.to_path_buf(),
                None => std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .ok_or("cannot tell where this orkops is: pass --binaries-dir")?,
            };
            Some(
                crate::bootstrap::Binaries::load(&dir)
                    .map_err(|e| format!("--binaries-dir: {e}"))?,
            )
        } else {
            None
        };
        Ok(ApplySettings {
            apply,
            infrastructure_only,
            binaries,
            ssh_timeout,
            wait,
            config: config.map(Path::to_path_buf),
        })
    }
}

/// The user's own key pair for the instances (`--ssh-public-key`), read and checked (no
/// `Debug`: it holds a private key).
#[derive(Clone)]
pub struct KeyPair {
    /// The OpenSSH public key line.
    pub public: String,
    /// The private key (PEM), which the bootstrap logs in with.
    pub private_pem: String,
}

impl KeyPair {
    /// Reads `FILE` (the public key) and `FILE` without `.pub` (the private key).
    pub fn read(public: &Path) -> Result<KeyPair, String> {
        let flag = format!("--ssh-public-key {}", public.display());
        let line = std::fs::read_to_string(public)
            .map_err(|e| format!("{flag}: cannot read it: {e}"))?
            .trim()
            .to_string();
        russh::keys::PublicKey::from_openssh(&line)
            .map_err(|e| format!("{flag}: not an OpenSSH public key line: {e}"))?;
        let private = public.with_extension("");
        if private == public {
            return Err(format!("{flag}: name the .pub file; its private key (the same name without .pub) is needed to bootstrap the instances"));
        }
        let pem = std::fs::read_to_string(&private).map_err(|e| {
            format!(
                "{flag}: the private key {} is needed to bootstrap the instances: {e}",
                private.display()
            )
        })?;
        russh::keys::decode_secret_key(&pem, None).map_err(|e| {
            format!(
                "{flag}: cannot read the private key {} (a passphrase-protected key is not supported): {e}",
                private.display()
            )
        })?;
        Ok(KeyPair {
            public: line,
            private_pem: pem,
        })
    }
}

/// `create cluster`: the spec (its image may be left to the profile's lookup), the add-ons
/// (already rendered once), the key pair, and what to apply.
pub struct CreateSettings {
    pub spec: ClusterSpec,
    pub addons: Vec<crate::addons::Bundle>,
    /// `None`: a key is generated for the cluster.
    pub key: Option<KeyPair>,
    pub apply: ApplySettings,
}

impl CreateSettings {
    /// Checks everything that can be checked without AWS.
    pub fn new(
        spec: ClusterSpec,
        addons: &[String],
        key: Option<&Path>,
        apply: ApplySettings,
    ) -> Result<CreateSettings, String> {
        spec.check()?;
        if !addons.is_empty() && apply.infrastructure_only {
            return Err("--addons needs the bootstrap: drop --infrastructure-only, or enable them later with `orkops addons enable NAME`".into());
        }
        let addons = super::addons::check(&spec.name, addons)?;
        let key = match key {
            Some(k) if apply.apply => Some(KeyPair::read(k)?),
            Some(k) => {
                // a dry run checks the key too, but keeps nothing
                KeyPair::read(k)?;
                None
            }
            None => None,
        };
        Ok(CreateSettings {
            spec,
            addons,
            key,
            apply,
        })
    }
}

/// `update cluster`: the changes to the recorded spec (`None`: keep it).
pub struct UpdateSettings {
    pub name: String,
    pub nodes: Option<u32>,
    pub node_size: Option<String>,
    pub master_size: Option<String>,
    pub image: Option<String>,
    pub apply: ApplySettings,
}

/// `validate cluster`.
pub struct ValidateSettings {
    /// With a name, the expected nodes are read from AWS; without, the client config's
    /// cluster is checked.
    pub name: Option<String>,
    pub wait: Option<Duration>,
    pub config: Option<PathBuf>,
}

/// `delete cluster`.
pub enum DeleteSettings {
    /// One cluster; `yes: false` lists what would be deleted.
    One { name: String, yes: bool },
    /// Every orkops cluster in the region older than `older_than` (a CI janitor).
    OlderThan { older_than: Duration, yes: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("90s", s(90)),
            ("5m", s(300)),
            ("1h30m", s(5400)),
            ("1.5h", s(5400)),
            ("2h3m4s", s(7384)),
            ("1d", s(86400)),
            ("0", s(0)),
            ("250ms", Duration::from_millis(250)),
        ] {
            assert_eq!(parse_duration(text).unwrap(), want, "{text}");
        }
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5m",
            "1h30",
            "5 m",
            "9999999999h",
            "1..5s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("1s").is_ok());
    }

    #[test]
    fn zones_sizes_images_and_cidrs_are_checked_by_form() {
        for ok in [
            "us-east-1a",
            "eu-west-3c",
            "us-east-1-bos-1a",
            "ap-southeast-2b",
        ] {
            assert!(zone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "us-east-1",
            "useast1a",
            "US-EAST-1A",
            "us-east-1a,",
            "",
            "us--1a",
        ] {
            assert!(zone(bad).is_err(), "{bad}");
        }
        for ok in ["t3.medium", "m7g.xlarge", "u-6tb1.metal", "c5n.18xlarge"] {
            assert!(instance_type(ok).is_ok(), "{ok}");
        }
        for bad in ["t3", "t3.", ".medium", "T3.medium", "t3.medium.x", ""] {
            assert!(instance_type(bad).is_err(), "{bad}");
        }
        assert!(image_id("ami-0123abcd").is_ok());
        assert!(image_id("ami-0123456789abcdef0").is_ok());
        for bad in ["ami-xyz", "0123abcd", "ami-0123abc", ""] {
            assert!(image_id(bad).is_err(), "{bad}");
        }
        assert!(ipv4_cidr("10.0.0.0/16").is_ok());
        assert!(ipv4_cidr("10.0.0.0").is_err());
    }
}
