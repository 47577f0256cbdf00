//! The clap definitions of `orkops`, kept apart from what the commands do.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cloud::MAX_NODES;
use crate::provision::settings;

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
    /// Enable, list, describe and disable cluster add-ons (bundles of manifests).
    #[command(subcommand)]
    Addons(AddonsCommand),
    /// List the CLI plugins: executables named orkops-NAME on PATH, run as `orkops NAME`.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// `orkops NAME ARGS...` with NAME not a built-in command runs the plugin orkops-NAME.
    #[command(external_subcommand)]
    External(Vec<OsString>),
    /// Print the logs of a container in a pod.
    Logs(LogsArgs),
    /// Run a command in a container of a pod.
    Exec(ExecArgs),
    /// Move images onto the cluster's nodes.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Set the number of replicas of a deployment.
    Scale(ScaleArgs),
    /// Mark a node unschedulable: no new pod is placed on it.
    Cordon(NodeArgs),
    /// Mark a node schedulable again.
    Uncordon(NodeArgs),
    /// Cordon a node and evict its pods, honouring their PodDisruptionBudgets.
    Drain(DrainArgs),
    /// Follow or restart the rollout of a deployment.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Run an image as a pod; with -i/-t, attached to your terminal.
    Run(RunArgs),
    /// Start a throw-away shell pod in the cluster and attach to it (deleted on exit).
    Shell(ShellArgs),
    /// Create a cluster on a cloud: its infrastructure, then the bootstrap of its instances.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Bring a cluster back to its spec, or change it (`--nodes N`): what `create` would do now.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Check a cluster's health.
    #[command(subcommand)]
    Validate(ValidateCommand),
    /// Write a cluster's client configuration.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Open a shell (or run a command) on one of a cluster's instances, with the cluster's key.
    Ssh(SshArgs),
}

fn masters(s: &str) -> Result<u32, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("{s:?}: a cluster has 1 or 3 masters")),
    }
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create the VPC, subnets, security groups, key pair, instances and API load balancer.
    Cluster(Box<CreateClusterArgs>),
    /// Create a join token for one node (admin only): printed, or with -o written as the
    /// bootstrap config `orkops-agent --bootstrap-config` joins with.
    JoinToken(CreateJoinTokenArgs),
}

#[derive(Args, Debug)]
pub struct CreateJoinTokenArgs {
    /// The node the token may register (and obtain a node token for), nothing else.
    pub node: String,
    /// The node's private IP: its serving certificate may name it.
    #[arg(long)]
    pub address: Option<std::net::IpAddr>,
    /// The instance the node must be (its Node's orkops.io/instance-id label).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Write a bootstrap client config (the API endpoints, CA and the token) here.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Reconcile a cluster with its spec (kept in AWS), after a failure or a change of flags.
    Cluster(UpdateClusterArgs),
}

/// How long operations report progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressOutput {
    /// Plain lines (the default when standard output is not a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags `create cluster` and `update cluster` share.
#[derive(Args, Debug)]
pub struct ApplyPlanArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the plan (without --yes, only the plan is printed).
    #[arg(long)]
    pub yes: bool,
    /// Build or fix the infrastructure only; leave the bootstrap of the instances for later.
    #[arg(long)]
    pub infrastructure_only: bool,
    /// Progress as plain text or JSON lines (default: lines drawn in place on a terminal).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ProgressOutput>,
    /// Where `orkops-master` and `orkops-agent` are (default: next to this `orkops`).
    #[arg(long, value_name = "DIR", env = "ORKOPS_BINARIES_DIR")]
    pub binaries_dir: Option<PathBuf>,
    /// How long an instance's SSH (and its user data) may take to be ready (90s, 5m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = settings::positive_duration)]
    pub ssh_timeout: Duration,
    /// How long to wait, after the bootstrap, for every node to be Ready.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = settings::parse_duration)]
    pub wait: Duration,
}

#[derive(Subcommand, Debug)]
pub enum ValidateCommand {
    /// Check that the cluster's masters answer and its nodes are Ready.
    Cluster(ValidateArgs),
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The cluster (default: the client config's); with a name, the expected instances are read
    /// from AWS.
    #[arg(value_parser = settings::cluster_name)]
    pub name: Option<String>,
    /// Keep checking until the cluster is valid, for at most this long (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
    pub wait: Option<Duration>,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write the admin client configuration of a cluster (to --config, or ~/.orkops/config).
    Config(ExportConfigArgs),
    /// Merge a cluster's context into the kubeconfig ($KUBECONFIG's first file, else
    /// ~/.kube/config) and make it the current context, for kubectl.
    Kubeconfig(ExportKubeconfigArgs),
}

#[derive(Args, Debug)]
pub struct ExportKubeconfigArgs {
    /// The cluster (default: the one of the client config in use).
    pub name: Option<String>,
    /// The kubeconfig file to write instead.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExportConfigArgs {
    pub name: String,
}

#[derive(Args, Debug)]
pub struct SshArgs {
    /// The cluster.
    pub cluster: String,
    /// The instance: master-1 (default), node-2, or an instance id.
    pub instance: Option<String>,
    /// A command to run instead of a shell, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateClusterArgs {
    #[arg(value_parser = settings::cluster_name)]
    pub name: String,
    /// Availability zones, comma-separated; one subnet each (all in one region).
    #[arg(long, value_delimiter = ',', required = true, value_parser = settings::zone)]
    pub zones: Vec<String>,
    /// 1, or 3 for high availability.
    #[arg(long, default_value_t = 1, value_parser = masters)]
    pub masters: u32,
    /// Nodes (0 to 500).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=MAX_NODES as i64))]
    pub nodes: u32,
    /// Instance type of the masters (default: the provider profile's).
    #[arg(long, value_parser = settings::instance_type)]
    pub master_size: Option<String>,
    #[arg(long, value_parser = settings::instance_type)]
    pub node_size: Option<String>,
    /// Machine image id (default: looked up as the provider profile says).
    #[arg(long, value_parser = settings::image_id)]
    pub image: Option<String>,
    /// OpenSSH public key file for the instances (default: a key generated for the cluster).
    #[arg(long, value_name = "FILE")]
    pub ssh_public_key: Option<PathBuf>,
    /// CIDRs that may reach the API and SSH ports, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.0.0.0/0", value_parser = settings::ipv4_cidr)]
    pub api_cidrs: Vec<ipnet::Ipv4Net>,
    /// The VPC's address range (default: the provider profile's, 10.0.0.0/16); each zone gets
    /// a subnet of it.
    #[arg(long, value_name = "CIDR", value_parser = settings::ipv4_cidr)]
    pub network_cidr: Option<ipnet::Ipv4Net>,
    /// Add-ons to enable once the nodes are Ready, comma-separated (`orkops addons list`).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub addons: Vec<String>,
    /// IAM instance profile for the masters (their load balancer controller calls EC2 and ELB).
    #[arg(long, value_name = "NAME")]
    pub master_instance_profile: Option<String>,
    #[arg(long, default_value = "aws", value_parser = ["aws"])]
    pub cloud: String,
    #[command(flatten)]
    pub plan: ApplyPlanArgs,
}

#[derive(Args, Debug)]
pub struct UpdateClusterArgs {
    #[arg(value_parser = settings::cluster_name)]
    pub name: String,
    /// A new number of nodes (default: the recorded spec's; 0 to 500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=MAX_NODES as i64))]
    pub nodes: Option<u32>,
    /// Instance type of nodes started from now on.
    #[arg(long, value_parser = settings::instance_type)]
    pub node_size: Option<String>,
    /// Instance type of masters started from now on.
    #[arg(long, value_parser = settings::instance_type)]
    pub master_size: Option<String>,
    /// Machine image of instances started from now on.
    #[arg(long, value_parser = settings::image_id)]
    pub image: Option<String>,
    #[command(flatten)]
    pub plan: ApplyPlanArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pod's name.
    pub name: String,
    #[arg(long)]
    pub image: String,
    /// Delete the pod when the command exits (needs -i or -t).
    #[arg(long)]
    pub rm: bool,
    /// Attach standard input.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Restart policy: Never (default when attached), OnFailure or Always (default otherwise).
    #[arg(long)]
    pub restart: Option<String>,
    /// Environment variables, KEY=VALUE (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// The command and its arguments, after `--` (default: the image's).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    /// The image of the shell pod.
    #[arg(long, default_value = "orkops/busybox:1.35")]
    pub image: String,
}

#[derive(Subcommand, Debug)]
pub enum AddonsCommand {
    /// The built-in add-ons and those installed in the cluster (version, objects, state).
    List,
    /// Apply an add-on's objects and record them; again is harmless, a new version upgrades.
    Enable(AddonsEnableArgs),
    /// Delete exactly the objects the add-on made, and its record.
    Disable(AddonsDisableArgs),
    /// An add-on's parameters and objects, and what of it is installed.
    Describe(AddonsDescribeArgs),
}

#[derive(Args, Debug)]
pub struct AddonsDescribeArgs {
    /// A built-in or installed add-on.
    #[arg(required_unless_present = "from")]
    pub name: Option<String>,
    /// Describe the bundle in this directory.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AddonsEnableArgs {
    /// A built-in add-on (`orkops addons list`); with --from, the name in its addon.yaml.
    #[arg(required_unless_present = "from")]
    pub name: Option<String>,
    /// Enable the bundle in this directory (addon.yaml and *.yaml templates).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Set a parameter of the bundle, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Check the bundle and print the objects it would apply; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct AddonsDisableArgs {
    pub name: String,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// The plugins on PATH, with warnings for those that can never run.
    List,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's name (`orkops get nodes`).
    pub node: String,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The node's name (`orkops get nodes`).
    pub node: String,
    /// Leave the pods of DaemonSets where they are (they would come back at once).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes too: their data is lost.
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Evict pods that no controller manages too: nothing recreates them.
    #[arg(long)]
    pub force: bool,
    /// Seconds each pod gets to stop (default: the pod's own terminationGracePeriodSeconds).
    #[arg(long, allow_negative_numbers = true, default_value_t = -1)]
    pub grace_period: i64,
    /// Give up after this long (e.g. 5m), naming the pods and budgets still in the way; 0 waits forever.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::provision::settings::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// deployment/NAME, or `deployment` followed by NAME.
    pub target: String,
    pub name: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: i64,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Wait until the deployment's pods all run its current template and are ready.
    Status(RolloutArgs),
    /// Replace every pod of the deployment, one rolling update step at a time.
    Restart(RolloutArgs),
    /// List the deployment's revisions.
    History(RolloutArgs),
    /// Roll the deployment back to its previous revision (or --to-revision N).
    Undo(UndoArgs),
}

#[derive(Args, Debug)]
pub struct UndoArgs {
    /// deployment/NAME, or `deployment` followed by NAME.
    pub target: String,
    pub name: Option<String>,
    /// The revision to go back to (default: the one before the current).
    #[arg(long)]
    pub to_revision: Option<i64>,
}

#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// deployment/NAME, or `deployment` followed by NAME.
    pub target: String,
    pub name: Option<String>,
    /// Give up after this many seconds (status only).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing new lines as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The logs of the previous, terminated instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// Prefix each line with its time.
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass standard input to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal for the command.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Copy an image from the local Docker engine into the nodes' engines, through the master.
    Load(ImageLoadArgs),
}

#[derive(Args, Debug)]
pub struct ImageLoadArgs {
    /// Images as the local engine names them (repo:tag).
    #[arg(required_unless_present = "input", conflicts_with = "input")]
    pub images: Vec<String>,
    /// Read the images from a `docker save` archive instead of the local engine.
    #[arg(short = 'i', long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Only this node (default: every Ready node).
    #[arg(long)]
    pub node: Option<String>,
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
    /// `delete cluster NAME`: delete it (without --yes, list what would be deleted).
    #[arg(long)]
    pub yes: bool,
    /// `delete cluster --all --older-than DURATION`: every orkops cluster in the region created
    /// longer ago than that (a CI janitor).
    #[arg(long)]
    pub all: bool,
    /// With `--all`: 90s, 30m, 2h, 1d.
    #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
    pub older_than: Option<Duration>,
    /// Wait until objects that stop gracefully (pods on a node) are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub wait: bool,
}
