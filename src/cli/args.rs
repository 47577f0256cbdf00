//! The clap definitions of `orkops`, kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "orkops",
    version,
    about = "Create container clusters on AWS and run workloads on them"
)]
pub struct Cli {
    /// Client configuration file (default: $ORKOPS_CONFIG, then ~/.orkops/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Namespace to work in (default: the config's namespace, then "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or update objects from manifest files (YAML or JSON, multi-document).
    Apply(ApplyArgs),
    /// List objects, or show some, as a table, YAML or JSON.
    Get(GetArgs),
    /// Show an object in detail, with its events.
    Describe(DescribeArgs),
    /// Delete objects by name, label selector or manifest file.
    Delete(DeleteArgs),
    /// List the kinds this server serves, with their short names.
    ApiResources,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A file, a directory of *.yaml/*.yml/*.json files, or - for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Recurse into sub-directories of a directory given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// KIND (pods, deploy, svc, ...), KIND/NAME, or several kinds separated by commas.
    pub kind: String,
    /// Names of objects to show (all when none).
    pub names: Vec<String>,
    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector, e.g. spec.nodeName=node-1.
    #[arg(long)]
    pub field_selector: Option<String>,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// After listing, keep printing changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// KIND or KIND/NAME.
    pub kind: String,
    pub names: Vec<String>,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// KIND, KIND/NAME, or nothing with -f.
    pub kind: Option<String>,
    pub names: Vec<String>,
    /// Delete the objects named in these manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Seconds a pod gets to stop (0 removes it at once).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Succeed when an object is already gone.
    #[arg(long)]
    pub ignore_not_found: bool,
}
