//! The command line, declared once with clap's derive: global options, then one variant per
//! command with its own options. `ferry <command> --help` is generated from the doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ferry: build, deploy and call functions on a ferry (or OpenFaaS) gateway.
///
/// The gateway is `--gateway`, else the stack file's `provider.gateway`, else `OPENFAAS_URL`,
/// else http://127.0.0.1:8080. Credentials come from `--token`, else `ferry login`'s entry for
/// that gateway in ~/.ferry/config.yml, else faas-cli's ~/.openfaas/config.yml.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Gateway URL (http:// is added when no scheme is given).
    #[arg(short, long, global = true)]
    pub gateway: Option<String>,
    /// API token, sent as `Authorization: Bearer` (instead of the stored credentials).
    #[arg(
        short = 'k',
        long,
        global = true,
        env = "FERRY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Accept any TLS certificate of the gateway (a self-signed one of `make up TLS=1`).
    #[arg(long, global = true)]
    pub tls_no_verify: bool,
    /// Stack file (default: stack.yaml, else stack.yml, when present).
    #[arg(short = 'f', long = "yaml", global = true, value_name = "FILE")]
    pub stack: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (read commands).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new function from a built-in template: its handler folder and stack file.
    New(NewArgs),
    /// Build the stack's function images on the local Docker engine.
    Build(BuildArgs),
    /// Deploy functions (create, or update those that exist).
    Deploy(DeployArgs),
    /// Build, then deploy.
    Up(UpArgs),
    /// Store credentials for a gateway in ~/.ferry/config.yml.
    Login(LoginArgs),
    /// List the functions.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show one function.
    Describe(NameArgs),
    /// Call a function (the body is read from stdin).
    Invoke(InvokeArgs),
    /// Remove functions.
    #[command(alias = "rm")]
    Remove(RemoveArgs),
    /// Set a function's replica count.
    Scale(ScaleArgs),
    /// Print a function's logs.
    Logs(LogsArgs),
    /// Manage secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Async calls: status, cancellation, recent calls of a function.
    #[command(subcommand)]
    Calls(CallsCommand),
    /// Dead letters: list, inspect, redrive.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// Print the client's version and the gateway's.
    Version,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Which functions of the stack file a command works on.
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Only functions whose name matches this wildcard (`*`, `?`).
    #[arg(long, conflicts_with = "regex")]
    pub filter: Option<String>,
    /// Only functions whose name matches this regular expression.
    #[arg(long)]
    pub regex: Option<String>,
}

/// `ferry new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Function name.
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// Template: shell, dockerfile or rust.
    #[arg(long, required_unless_present = "list")]
    pub lang: Option<String>,
    /// List the templates.
    #[arg(long)]
    pub list: bool,
    /// Image repository prefix (`PREFIX/NAME:latest`).
    #[arg(long, env = "OPENFAAS_PREFIX")]
    pub prefix: Option<String>,
    /// Add the function to this existing stack file instead of writing NAME.yml.
    #[arg(long, value_name = "FILE")]
    pub append: Option<PathBuf>,
    /// Handler folder (default: ./NAME).
    #[arg(long)]
    pub handler: Option<PathBuf>,
}

/// `ferry build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Which functions.
    #[command(flatten)]
    pub selection: Selection,
    /// Image the templates take the watchdog (and busybox) from.
    #[arg(
        long,
        env = "FERRY_WATCHDOG_IMAGE",
        default_value = "ferry/watchdog:latest"
    )]
    pub watchdog_image: String,
    /// A label for the built images (`KEY=VALUE`, repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Extra build argument (`KEY=VALUE`, repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build without the engine's layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not show the build's progress.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `ferry deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Which functions of the stack file.
    #[command(flatten)]
    pub selection: Selection,
    /// Deploy this image instead of the stack file's functions (needs --name).
    #[arg(long, requires = "name")]
    pub image: Option<String>,
    /// Function name, with --image.
    #[arg(long, requires = "image")]
    pub name: Option<String>,
    /// Namespace (overrides the stack file's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The watchdog's fprocess, with --image.
    #[arg(long)]
    pub fprocess: Option<String>,
    /// Environment variable (`KEY=VALUE`, repeatable; wins over the stack file).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Label (`KEY=VALUE`, repeatable; wins over the stack file).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Annotation (`KEY=VALUE`, repeatable; wins over the stack file).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Secret name (repeatable; added to the stack file's).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Do not wait until each function has a ready replica.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for ready replicas.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
}

/// `ferry up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Build options.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Do not wait until each function has a ready replica.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for ready replicas.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
}

/// `ferry login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(short, long, default_value = "admin")]
    pub username: String,
    /// Password (prefer --password-stdin: arguments are visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password (or, with --store-token, the token) from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store --token (or the token read from stdin) instead of a user and password.
    #[arg(long)]
    pub store_token: bool,
}

/// `ferry list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// More columns: image, namespace, available replicas.
    #[arg(short, long)]
    pub verbose: bool,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// A function name and namespace.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Function name (`name` or `name.namespace`).
    pub name: String,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `ferry invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function.
    #[command(flatten)]
    pub function: NameArgs,
    /// Queue the call (`/async-function/`) and print its call id.
    #[arg(short, long)]
    pub r#async: bool,
    /// With --async: where the result is POSTed.
    #[arg(long, requires = "async")]
    pub callback_url: Option<String>,
    /// With --async: wait until the call is final and print its status.
    #[arg(long, requires = "async")]
    pub wait: bool,
    /// With --wait: how long to wait.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// Request header (`KEY=VALUE` or `KEY: VALUE`, repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Query parameter (`KEY=VALUE`, repeatable).
    #[arg(long = "query", value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// HTTP method.
    #[arg(short, long, default_value = "POST")]
    pub method: String,
    /// Content-Type of the body.
    #[arg(long, default_value = "text/plain")]
    pub content_type: String,
}

/// `ferry remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Functions (default: the stack file's).
    pub names: Vec<String>,
    /// Which functions of the stack file.
    #[command(flatten)]
    pub selection: Selection,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `ferry scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The function.
    #[command(flatten)]
    pub function: NameArgs,
    /// Replicas wanted (0 parks the function).
    #[arg(short, long)]
    pub replicas: u64,
}

/// `ferry logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function.
    #[command(flatten)]
    pub function: NameArgs,
    /// Keep printing new lines.
    #[arg(long)]
    pub follow: bool,
    /// Only lines newer than this: a duration (`5m`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<i64>,
}

/// `ferry secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret (value from --from-literal, --from-file or stdin).
    Create(SecretValueArgs),
    /// Replace a secret's value.
    Update(SecretValueArgs),
    /// List secret names.
    #[command(alias = "ls")]
    List {
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Remove a secret.
    #[command(alias = "rm")]
    Remove {
        /// Secret name.
        name: String,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
    },
}

/// A secret and where its value comes from.
#[derive(Debug, Args)]
pub struct SecretValueArgs {
    /// Secret name.
    pub name: String,
    /// The value.
    #[arg(long, conflicts_with = "from_file")]
    pub from_literal: Option<String>,
    /// A file holding the value (binary is fine).
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `ferry calls ...`.
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// Show an async call's status.
    Get {
        /// Call id.
        id: String,
    },
    /// Cancel a queued async call.
    Cancel {
        /// Call id.
        id: String,
    },
    /// A function's recent async calls, newest first.
    #[command(alias = "ls")]
    List {
        /// The function.
        #[arg(long)]
        function: String,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// `ferry dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead letters, oldest first.
    #[command(alias = "ls")]
    List {
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this sequence (the `next` of the previous page).
        #[arg(long)]
        after: Option<u64>,
    },
    /// Show one dead letter.
    Show {
        /// Call id.
        id: String,
    },
    /// Queue dead calls again: one by call id, or every one of --function.
    Redrive {
        /// Call id.
        #[arg(required_unless_present = "function", conflicts_with = "function")]
        id: Option<String>,
        /// Every dead letter of this function.
        #[arg(long)]
        function: Option<String>,
        /// Namespace, with --function.
        #[arg(short, long)]
        namespace: Option<String>,
    },
}
