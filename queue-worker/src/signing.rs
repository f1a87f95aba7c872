//! Signed callbacks: HMAC-SHA256 over each delivery's timestamp and body.
//!
//! Every callback POST whose body is known before it is sent carries
//!
//! | header | value |
//! |---|---|
//! | `X-Ferry-Timestamp` | the delivery attempt's time, Unix seconds (decimal), e.g. `1767225600` |
//! | `X-Ferry-Signature` | `v1=` and the lower-case hex HMAC-SHA256 of the signed bytes |
//!
//! The signed bytes are the timestamp exactly as sent in `X-Ferry-Timestamp` (ASCII digits),
//! one `.` (0x2E), then the request body byte for byte as sent (no decoding, possibly empty):
//! `"<timestamp>.<body>"`. Every attempt, retries included, is signed afresh with its own
//! time, so a receiver can reject old timestamps to stop replays.
//!
//! The key is the worker's `callback_signing_key_file` (default
//! `<secret_mount_path>/callback-signing-key`, which the gateway writes next to the basic-auth
//! credentials), read once at start. Each non-empty line (whitespace trimmed) is one key, used
//! as the HMAC key as is (its bytes, not hex-decoded); the worker signs with the first line.
//! To rotate, put the new key first and keep the old one below it while receivers learn the new
//! one: receivers accept a signature made with any key they know. A missing file at the default
//! path leaves callbacks unsigned (one warning at start); a missing file at a path set
//! explicitly stops the worker. The key never appears in logs or `Debug` output.
//!
//! A result streamed to its callback (larger than `max_buffered_result`, or past
//! `result_memory`) cannot be signed, since its body is not known when the headers go out: it
//! is sent without these headers. A function's own `X-Ferry-*` response headers are never
//! passed on (see `callback::callback_headers`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_runtime::auth::CALLBACK_SIGNING_KEY_FILE;
use ferry_runtime::env::Env;
use http::{HeaderMap, HeaderValue};
use ring::hmac;

use crate::WorkerError;
use crate::error::SigningKeyError;

/// The header with the delivery attempt's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-ferry-timestamp";
/// The header with the signature, `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-ferry-signature";
/// The prefix of the signature's value: the scheme version.
pub const SIGNATURE_VERSION: &str = "v1=";

/// Where the key comes from: `callback_signing_key_file`, or its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The file.
    pub path: PathBuf,
    /// Set explicitly: then a missing file is an error rather than unsigned callbacks.
    pub explicit: bool,
}

/// `callback_signing_key_file`, as declared.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct KeyFileSetting {
    /// Key(s) signing callbacks (X-Ferry-Signature), one per line, the first signs; unset:
    /// <secret_mount_path>/callback-signing-key, and a missing file there means unsigned
    /// callbacks (a missing file set here: the worker does not start).
    #[arg(long = "callback_signing_key_file", env = "callback_signing_key_file",
          value_parser = path)]
    pub callback_signing_key_file: Option<PathBuf>,
}

fn path(v: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(v.trim()))
}

impl KeyFile {
    /// `callback_signing_key_file`, else `callback-signing-key` in `secret_mount_path`.
    pub fn from_env(e: &impl Env, secret_mount_path: &Path) -> KeyFile {
        let setting = ferry_runtime::settings::from_env::<KeyFileSetting>(e).unwrap_or_default();
        KeyFile::resolve(setting, secret_mount_path)
    }

    /// The file `setting` names, else `callback-signing-key` in `secret_mount_path`.
    pub fn resolve(setting: KeyFileSetting, secret_mount_path: &Path) -> KeyFile {
        match setting.callback_signing_key_file {
            Some(path) => KeyFile {
                path,
                explicit: true,
            },
            None => KeyFile {
                path: secret_mount_path.join(CALLBACK_SIGNING_KEY_FILE),
                explicit: false,
            },
        }
    }
}

/// The key callbacks are signed with (the file's first line). `Debug` does not show it.
#[derive(Clone)]
pub struct SigningKey {
    key: hmac::Key,
    /// Keys in the file, the signing one included (for the start-up log).
    listed: usize,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// The key on the first non-empty line of `text` (lines trimmed); `None` if there is none.
    pub fn from_text(text: &str) -> Option<SigningKey> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next()?;
        Some(SigningKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, first.as_bytes()),
            listed: 1 + lines.count(),
        })
    }

    /// How many keys the file lists (the first signs; the others are for receivers).
    pub fn listed(&self) -> usize {
        self.listed
    }

    /// `v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("{SIGNATURE_VERSION}{}", hex::encode(context.sign()))
    }

    /// Sets `X-Ferry-Timestamp: <timestamp>` and its `X-Ferry-Signature` for `body`.
    pub fn sign_headers(&self, headers: &mut HeaderMap, timestamp: u64, body: &[u8]) {
        let signature = self.sign(timestamp, body);
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        if let Ok(value) = HeaderValue::from_str(&signature) {
            headers.insert(SIGNATURE_HEADER, value);
        }
    }
}

/// Now, Unix seconds: the timestamp of a delivery attempt.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the key from `file` once, at start: `None` (callbacks unsigned, with a warning) when
/// the default file is missing; an error when an explicit file is missing, or when the file
/// cannot be read or lists no key.
pub fn load(file: &KeyFile) -> Result<Option<SigningKey>, WorkerError> {
    let path = file.path.display();
    let text = match std::fs::read_to_string(&file.path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.explicit => {
            tracing::warn!(
                "callbacks are unsigned: no signing key at {path} (the default \
                 callback_signing_key_file)"
            );
            return Ok(None);
        }
        Err(source) => {
            let path = file.path.clone();
            return Err(SigningKeyError::Read { path, source }.into());
        }
    };
    let key = SigningKey::from_text(&text).ok_or_else(|| SigningKeyError::Empty {
        path: file.path.clone(),
    })?;
    tracing::info!(
        keys = key.listed(),
        "callbacks are signed (X-Ferry-Signature) with the first key of {path}"
    );
    Ok(Some(key))
}

#[cfg(test)]
mod tests;
