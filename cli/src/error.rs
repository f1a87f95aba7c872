//! The crate's one error type and the exit code each kind maps to.
//!
//! Scripts can trust the exit codes (the README's "Exit codes" table is this file):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | any other failure (the gateway answered an unexpected error, a build failed, ...) |
//! | 2 | usage: bad arguments, stack file or config file (clap's own errors are 2 as well) |
//! | 3 | not found: the function, call, dead letter or secret does not exist (`404`) |
//! | 4 | not allowed: missing or wrong credentials (`401`, `403`) |
//! | 5 | unreachable: the gateway or the Docker engine could not be reached |
//! | 6 | the function failed: `invoke` got an error status, or an async call ended other than `succeeded` |
//! | 7 | conflict: it exists already, or is in a state that forbids the request (`409`) |
//! | 8 | timed out waiting (`--timeout`) |

use std::path::PathBuf;

/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage (arguments, stack file, config file).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: not allowed.
pub const EXIT_AUTH: u8 = 4;
/// Exit code: gateway or Docker engine unreachable.
pub const EXIT_UNREACHABLE: u8 = 5;
/// Exit code: the function or the async call failed.
pub const EXIT_FUNCTION_FAILED: u8 = 6;
/// Exit code: conflict.
pub const EXIT_CONFLICT: u8 = 7;
/// Exit code: timed out waiting.
pub const EXIT_TIMEOUT: u8 = 8;

/// Everything that can go wrong in a `ferry` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments that do not go together or cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A stack file that cannot be read or is not valid.
    #[error("{path}: {message}")]
    Stack {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// ferry's config file cannot be read or written.
    #[error("config file {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The gateway could not be reached (or the connection broke).
    #[error("cannot reach the gateway at {url}: {source}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// reqwest's error.
        source: reqwest::Error,
    },
    /// The gateway answered with an error status.
    #[error("{method} {path}: {status} {message}")]
    Api {
        /// The status.
        status: u16,
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// The gateway's message (`{"message"}`) or body.
        message: String,
    },
    /// The gateway's answer is not what its API promises.
    #[error("{path}: unexpected answer: {message}")]
    Protocol {
        /// The request's path.
        path: String,
        /// What could not be understood.
        message: String,
    },
    /// The Docker engine could not be reached or refused a request.
    #[error("Docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// Building a function's image failed.
    #[error("building {function}: {message}")]
    Build {
        /// The function.
        function: String,
        /// Why.
        message: String,
    },
    /// A function answered with an error status, or an async call ended badly.
    #[error("{0}")]
    FunctionFailed(String),
    /// A wait ran out of time.
    #[error("timed out after {0}")]
    Timeout(String),
}

impl Error {
    /// The exit code of this error (see the module's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Stack { .. } | Error::Config { .. } => EXIT_USAGE,
            Error::Api { status, .. } => match status {
                401 | 403 => EXIT_AUTH,
                404 => EXIT_NOT_FOUND,
                409 => EXIT_CONFLICT,
                _ => EXIT_FAILURE,
            },
            Error::Unreachable { .. } => EXIT_UNREACHABLE,
            Error::Docker(e) if is_connection(e) => EXIT_UNREACHABLE,
            Error::FunctionFailed(_) => EXIT_FUNCTION_FAILED,
            Error::Timeout(_) => EXIT_TIMEOUT,
            _ => EXIT_FAILURE,
        }
    }

    /// An [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Whether bollard could not talk to the engine at all (socket missing, refused, ...).
fn is_connection(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::IOError { .. }
            | E::HyperLegacyError { .. }
            | E::SocketNotFoundError(_)
            | E::RequestTimeoutError
    )
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
