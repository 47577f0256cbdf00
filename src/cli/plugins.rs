//! CLI plugins, the way kubectl has them: an executable `orkops-NAME` on PATH runs as
//! `orkops NAME ARGS...` when NAME is not a built-in command. `orkops foo bar x` tries
//! `orkops-foo-bar-x`, `orkops-foo-bar`, then `orkops-foo` (words up to the first flag; a dash
//! inside a word is an underscore in the file name: `orkops foo-bar` is `orkops-foo_bar`).
//! The plugin replaces this process (its exit code and signals are the command's) and finds
//! in its environment `ORKOPS_CONFIG` (the client configuration this orkops would use),
//! `ORKOPS_NAMESPACE` and `ORKOPS_BIN` (this orkops, to call back).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::CommandFactory;

use super::args::Cli;
use super::printer;
use crate::api::labels;
use crate::client::ClientConfig;

const PREFIX: &str = "orkops-";
/// orkops' own programs, which share the prefix but are not plugins.
const PROGRAMS: &[&str] = &["orkops-master", "orkops-agent"];

/// The directories of PATH that plugins are looked up in, and the relative entries skipped.
fn search_path() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // relative entries (and the empty one, "."), would run whatever is in the current
    // directory: skipped, as Go's exec.LookPath refuses them
    std::env::split_paths(&path)
        .filter(|p| !p.as_os_str().is_empty())
        .partition(|p| p.is_absolute())
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The plugin for `args` (the words after `orkops`), longest name first, and how many words
/// its name used.
fn lookup(dirs: &[PathBuf], args: &[OsString]) -> Option<(PathBuf, usize)> {
    let words: Vec<String> = args
        .iter()
        .map_while(|a| a.to_str())
        .take_while(|a| !a.starts_with('-') && !a.is_empty())
        .map(|a| a.replace('-', "_"))
        .collect();
    for n in (1..=words.len()).rev() {
        let file = format!("{PREFIX}{}", words[..n].join("-"));
        if PROGRAMS.contains(&file.as_str()) {
            continue;
        }
        if let Some(p) = dirs
            .iter()
            .map(|d| d.join(&file))
            .find(|p| is_executable(p))
        {
            return Some((p, n));
        }
    }
    None
}

/// The built-in command names (and aliases), which no plugin can take.
fn builtins() -> Vec<String> {
    let cmd = Cli::command();
    let mut names = vec!["help".to_string()];
    for sc in cmd.get_subcommands() {
        names.push(sc.get_name().to_string());
        names.extend(sc.get_all_aliases().map(str::to_string));
    }
    names
}

/// `orkops NAME ARGS...` for a NAME clap does not know: exec the plugin, or clap's own error
/// with a hint.
pub fn run(cli: &Cli, args: &[OsString]) -> anyhow::Result<()> {
    let (dirs, _) = search_path();
    let Some((plugin, used)) = lookup(&dirs, args) else {
        let name = args
            .first()
            .map(|a| a.to_string_lossy().to_string())
            .unwrap_or_default();
        // clap's own error for an unknown command, with its suggestions
        match Cli::command()
            .allow_external_subcommands(false)
            .external_subcommand_value_parser(clap::builder::Resettable::Reset)
            .try_get_matches_from(std::env::args_os())
        {
            Err(e) => {
                let _ = e.print();
            }
            Ok(_) => eprintln!("error: unrecognized subcommand '{name}'"),
        }
        eprintln!(
            "hint: nor is there a plugin {PREFIX}{} on PATH (`orkops plugin list` shows the plugins)",
            name.replace('-', "_")
        );
        return Err(crate::RemoteExit(2).into());
    };
    let mut cmd = std::process::Command::new(&plugin);
    cmd.args(&args[used..]);
    let namespace = match &cli.namespace {
        Some(ns) if !labels::is_dns_label(ns) => {
            return Err(anyhow!(
            "--namespace {ns:?} is not a valid namespace name (lower-case letters, digits and '-')"
        ))
        }
        Some(ns) => Some(ns.clone()),
        None => None,
    };
    // the configuration this orkops would use, as an absolute path (the plugin may chdir)
    let mut config_ns = None;
    if let Ok(path) = ClientConfig::locate(cli.config.as_deref()) {
        let path = std::path::absolute(&path).unwrap_or(path);
        config_ns = ClientConfig::load(&path).ok().and_then(|c| c.namespace);
        cmd.env(crate::client::config::ENV_VAR, path);
    }
    cmd.env(
        "ORKOPS_NAMESPACE",
        namespace.or(config_ns).unwrap_or_else(|| "default".into()),
    );
    if let Ok(me) = std::env::current_exe() {
        cmd.env("ORKOPS_BIN", me);
    }
    let err = cmd.exec();
    let hint = match err.raw_os_error() {
        Some(libc::ENOEXEC) => "\nhint: a script needs a #! line (e.g. #!/bin/sh)",
        Some(libc::EACCES) => "\nhint: is it executable (chmod +x)?",
        _ => "",
    };
    Err(anyhow!(
        "cannot run the plugin {}: {err}{hint}",
        plugin.display()
    ))
}

/// One finding of `plugin list`.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    path: PathBuf,
    /// `orkops foo bar` for `orkops-foo-bar`.
    command: String,
    warnings: Vec<String>,
}

/// Every file named `orkops-*` in `dirs`, in PATH order, with what is wrong with it.
fn scan(dirs: &[PathBuf], builtins: &[String]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(PREFIX) && n.len() > PREFIX.len())
            // orkops' own programs, and what a build leaves beside them (orkops-agent.d)
            .filter(|n| !PROGRAMS.contains(&n.split('.').next().unwrap_or(n)))
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if path.is_dir() {
                continue;
            }
            let words: Vec<String> = name[PREFIX.len()..]
                .split('-')
                .map(|w| w.replace('_', "-"))
                .collect();
            let command = format!("orkops {}", words.join(" "));
            let mut warnings = Vec::new();
            let executable = is_executable(&path);
            if !executable {
                warnings.push(format!(
                    "{} is named like a plugin but is not executable (chmod +x it)",
                    path.display()
                ));
            }
            if builtins.contains(&words[0]) {
                warnings.push(format!(
                    "{} is never run: \"orkops {}\" is a built-in command",
                    path.display(),
                    words[0]
                ));
            } else if executable {
                if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                    warnings.push(format!(
                        "{} is shadowed by {}, earlier on PATH, and never runs",
                        path.display(),
                        first.display()
                    ));
                } else {
                    seen.push((name.clone(), path.clone()));
                }
            }
            found.push(Found {
                path,
                command,
                warnings,
            });
        }
    }
    found
}

/// `orkops plugin list`: the plugins on PATH (stdout), and warnings (stderr).
pub fn list() -> anyhow::Result<()> {
    let (dirs, relative) = search_path();
    for r in relative {
        eprintln!(
            "warning: PATH entry {:?} is not absolute: no plugins are looked up there",
            r.display().to_string()
        );
    }
    let found = scan(&dirs, &builtins());
    if found.is_empty() {
        eprintln!("no plugins on PATH (executables named {PREFIX}NAME run as `orkops NAME`)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|f| vec![f.command.clone(), f.path.display().to_string()])
        .collect();
    print!("{}", printer::table(&["COMMAND", "PATH"], &rows));
    for w in found.iter().flat_map(|f| &f.warnings) {
        eprintln!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn lookup_takes_the_longest_name_up_to_the_first_flag() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        file(a.path(), "orkops-foo", 0o755);
        file(b.path(), "orkops-foo-bar", 0o755);
        file(a.path(), "orkops-dash_ed", 0o755);
        file(a.path(), "orkops-off", 0o644);
        file(a.path(), "orkops-master", 0o755);
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let got = |args: &[&str]| lookup(&dirs, &os(args));
        assert_eq!(
            got(&["foo", "bar", "x"]),
            Some((b.path().join("orkops-foo-bar"), 2))
        );
        assert_eq!(
            got(&["foo", "--bar", "x"]),
            Some((a.path().join("orkops-foo"), 1))
        );
        assert_eq!(got(&["foo", "baz"]), Some((a.path().join("orkops-foo"), 1)));
        assert_eq!(
            got(&["dash-ed"]),
            Some((a.path().join("orkops-dash_ed"), 1))
        );
        assert_eq!(got(&["off"]), None, "not executable");
        assert_eq!(got(&["master"]), None, "orkops-master is not a plugin");
        assert_eq!(got(&["nope"]), None);
    }

    #[test]
    fn scan_warns_about_builtins_shadowing_and_modes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        file(a.path(), "orkops-get", 0o755);
        file(a.path(), "orkops-hi", 0o755);
        file(b.path(), "orkops-hi", 0o755);
        file(a.path(), "orkops-off", 0o644);
        file(a.path(), "orkops-two-words_x", 0o755);
        file(a.path(), "orkops-agent", 0o755);
        file(a.path(), "orkops-agent.d", 0o644);
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let found = scan(&dirs, &builtins());
        let by = |p: PathBuf| found.iter().find(|f| f.path == p).unwrap();
        assert!(by(a.path().join("orkops-get")).warnings[0].contains("built-in"));
        assert!(by(a.path().join("orkops-hi")).warnings.is_empty());
        let shadowed = by(b.path().join("orkops-hi"));
        assert!(shadowed.warnings[0].contains("shadowed by"), "{shadowed:?}");
        assert!(by(a.path().join("orkops-off")).warnings[0].contains("not executable"));
        assert_eq!(
            by(a.path().join("orkops-two-words_x")).command,
            "orkops two words-x"
        );
        assert!(!found
            .iter()
            .any(|f| f.path.to_string_lossy().contains("orkops-agent")));
        assert!(builtins().contains(&"addons".to_string()));
    }
}
