//! NATS JetStream set-up shared by the gateway and the queue-worker.
//!
//! Both processes connect the same way (reconnecting forever, starting even when NATS is not
//! up yet) and both create the calls stream if it is absent, with the same settings, so
//! either may start first.
//!
//! Credentials in `nats_url` (`nats://user:password@host:4222`, or a token as in
//! `nats://token@host:4222`, as the NATS Go client reads them) are taken out of the URL and
//! given to the client as its user and password (or token): async-nats does not read them
//! from the URL itself, and the URL it keeps (and logs at debug level) then holds none.
//!
//! **Clusters.** `nats_url` may list several servers, comma-separated
//! (`nats://n1:4222,nats://n2:4222,nats://n3:4222`): the client connects to one of them and,
//! when it is lost, reconnects to another (and to servers the cluster announces). Every
//! object ferry creates here takes `nats_replicas` replicas (R3 in a three-node cluster);
//! an object that exists with another replica count is updated to it (JetStream moves its
//! data), and if the cluster refuses (too few servers), a warning says so and the object is
//! used as it is.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use ferry_proto::jetstream::{
    CALL_INDEX_STREAM, CALL_INDEX_SUBJECT_PREFIX, CALLBACK_STREAM, CALLBACK_SUBJECT_PREFIX,
    CALLS_STREAM, CALLS_SUBJECT_PREFIX, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT_PREFIX,
    RECENT_CALLS_KEPT, RETRY_SUBJECT_PREFIX, STATUS_BUCKET, TOKEN_BUCKET,
};

use crate::env::{Env, EnvError};
use crate::settings;

/// Connection and stream settings: `nats_url`, `nats_replicas`, `nats_duplicate_window`,
/// `nats_max_age`, `call_status_ttl`, `dead_letter_max_age`, declared once for the gateway
/// and the queue-worker.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct NatsConfig {
    /// NATS server, or several comma-separated (a cluster); `user:password@` or `token@` in
    /// it authenticate.
    ///
    /// Credentials included: log or show it only through [`crate::redact::url`].
    #[arg(
        long = "nats_url",
        env = "nats_url",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// Replicas of every stream and bucket ferry creates (3 in a three-node NATS cluster;
    /// JetStream keeps 1 to 5); `nats_stream_replicas` is its older name.
    #[arg(long = "nats_replicas", env = "nats_replicas", visible_alias = "nats_stream_replicas",
          default_value = "1", value_parser = replicas)]
    pub stream_replicas: usize,
    /// How long JetStream remembers message ids: a re-submitted call id is stored once
    /// within it.
    #[arg(long = "nats_duplicate_window", env = "nats_duplicate_window", default_value = "2m",
          value_parser = settings::duration)]
    pub duplicate_window: Duration,
    /// How long an unprocessed call may stay in the calls stream, 0 = forever.
    #[arg(long = "nats_max_age", env = "nats_max_age", default_value = "0",
          value_parser = settings::duration)]
    pub max_age: Duration,
    /// How long a call's status record is kept after its last change.
    #[arg(long = "call_status_ttl", env = "call_status_ttl", default_value = "24h",
          value_parser = settings::duration)]
    pub call_status_ttl: Duration,
    /// How long a dead letter is kept (14 days), 0 = until deleted.
    #[arg(long = "dead_letter_max_age", env = "dead_letter_max_age", default_value = "336h",
          value_parser = settings::duration)]
    pub dead_letter_max_age: Duration,
}

impl NatsConfig {
    /// Reads `nats_url`, `nats_replicas` (or `nats_stream_replicas`), `nats_duplicate_window`,
    /// `nats_max_age`, `call_status_ttl`, `dead_letter_max_age`.
    pub fn from_env(e: &impl Env) -> Result<NatsConfig, EnvError> {
        settings::from_env(e)
    }
}

/// `nats_replicas`: 1 to 5, JetStream's range.
fn replicas(v: &str) -> Result<usize, String> {
    match settings::number::<usize>(v)? {
        n @ 1..=5 => Ok(n),
        _ => Err("JetStream keeps 1 to 5 replicas".to_string()),
    }
}

/// Connects to NATS as `name`, at one server or any of a comma-separated list of servers
/// (a cluster). Never fails because the servers are down: the client keeps trying in the
/// background (check [`async_nats::Client::connection_state`]), and reconnects to another
/// server of the list (or one the cluster announced) when it loses its own; connection changes
/// are logged. Credentials in `url` are sent as the user and password (or token): one set for
/// all the servers, the first found.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let name_for_log = name.to_string();
    let mut servers = Vec::new();
    let mut credentials = None;
    for item in url.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (server, found) = split_credentials(item);
        servers.push(server);
        credentials = credentials.or(found);
    }
    let options = match credentials {
        Some(UrlCredentials::UserPassword(user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        Some(UrlCredentials::Token(token)) => async_nats::ConnectOptions::with_token(token),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        // A server that vanished without closing the connection (a partition) is noticed
        // after two unanswered pings, and the client moves on to another one.
        .ping_interval(Duration::from_secs(10))
        .event_callback(move |event| {
            let name = name_for_log.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(client = %name, "connected to NATS")
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(client = %name, "disconnected from NATS")
                    }
                    other => tracing::warn!(client = %name, event = %other, "NATS event"),
                }
            }
        })
        .connect(servers)
        .await
}

/// Credentials found in a NATS URL's user-info (no `Debug`: they must not reach a log).
#[derive(PartialEq, Eq)]
enum UrlCredentials {
    /// `user:password@`.
    UserPassword(String, String),
    /// `token@`.
    Token(String),
}

/// `url` without its user-info, and the credentials that were there, percent-decoded. A URL
/// that does not parse is returned as it is (async-nats then rejects it without quoting it).
fn split_credentials(url: &str) -> (String, Option<UrlCredentials>) {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("nats://{url}")
    };
    let Ok(mut parsed) = url::Url::parse(&full) else {
        return (url.to_string(), None);
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = match (parsed.username(), parsed.password()) {
        ("", None) => return (url.to_string(), None),
        (user, Some(password)) => UrlCredentials::UserPassword(decode(user), decode(password)),
        (token, None) => UrlCredentials::Token(decode(token)),
    };
    if parsed.set_password(None).is_err() || parsed.set_username("").is_err() {
        return (url.to_string(), None);
    }
    (parsed.into(), Some(credentials))
}

/// The calls stream's configuration: queued calls on `ferry.calls.>`, and the message
/// schedules of calls waiting for a retry on `ferry.retry.>` (NATS 2.12+), which JetStream
/// publishes to `ferry.calls.>` when they are due.
pub fn calls_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: CALLS_STREAM.to_string(),
        description: Some("ferry: queued async function calls".to_string()),
        subjects: vec![
            format!("{CALLS_SUBJECT_PREFIX}.>"),
            format!("{RETRY_SUBJECT_PREFIX}.>"),
        ],
        allow_message_schedules: true,
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: config.stream_replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        ..Default::default()
    }
}

/// Returns the calls stream, creating it if it does not exist; a stream made by an earlier
/// ferry (without the retry subjects or message schedules) is updated.
pub async fn ensure_calls_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let wanted = calls_stream_config(config);
    let mut stream = js.get_or_create_stream(wanted.clone()).await?;
    let current = &stream.cached_info().config;
    let outdated = !current.allow_message_schedules
        || wanted
            .subjects
            .iter()
            .any(|s| !current.subjects.contains(s));
    if outdated {
        let mut updated = current.clone();
        updated.allow_message_schedules = true;
        for subject in &wanted.subjects {
            if !updated.subjects.contains(subject) {
                updated.subjects.push(subject.clone());
            }
        }
        tracing::info!(
            stream = CALLS_STREAM,
            "adding retry schedules to the calls stream"
        );
        js.update_stream(updated).await?;
        stream = js.get_or_create_stream(wanted).await?;
    }
    reconcile_replicas(js, &mut stream, config.stream_replicas).await;
    Ok(stream)
}

/// Brings an existing stream (or the stream behind a bucket) to `wanted` replicas: JetStream
/// adds or removes copies itself. A cluster that cannot (fewer servers than `wanted`, a
/// stream made elsewhere with other limits) leaves the stream as it is, with a warning: the
/// platform keeps working with fewer copies rather than not at all.
async fn reconcile_replicas(js: &jetstream::Context, stream: &mut stream::Stream, wanted: usize) {
    let current = stream.cached_info().config.clone();
    if current.num_replicas == wanted || current.num_replicas == 0 && wanted == 1 {
        return;
    }
    let name = current.name.clone();
    let from = current.num_replicas;
    let updated = stream::Config {
        num_replicas: wanted,
        ..current
    };
    match js.update_stream(updated).await {
        Ok(_) => {
            tracing::info!(stream = %name, from, to = wanted, "changed the stream's replica count (nats_replicas)");
            if let Ok(fresh) = js.get_stream(&name).await {
                *stream = fresh;
            }
        }
        Err(error) => tracing::warn!(
            stream = %name, replicas = from, nats_replicas = wanted, %error,
            "the stream keeps its replica count: JetStream refused to change it"
        ),
    }
}

/// [`reconcile_replicas`] for the stream behind key-value bucket `bucket` (`KV_<bucket>`).
async fn reconcile_bucket_replicas(js: &jetstream::Context, bucket: &str, wanted: usize) {
    match js.get_stream(format!("KV_{bucket}")).await {
        Ok(mut stream) => reconcile_replicas(js, &mut stream, wanted).await,
        Err(error) => {
            tracing::warn!(bucket, %error, "cannot read the bucket's stream to check its replicas")
        }
    }
}

/// Returns the dead-letter stream, creating it if it does not exist. File storage, limits
/// retention (kept until deleted, redriven, or older than `dead_letter_max_age`).
pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let wanted = stream::Config {
        name: DEAD_LETTER_STREAM.to_string(),
        description: Some("ferry: async calls that could not complete".to_string()),
        subjects: vec![format!("{DEAD_LETTER_SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        max_age: config.dead_letter_max_age,
        allow_direct: true,
        ..Default::default()
    };
    ensure_stream(js, config, wanted).await
}

/// Returns the stream of callbacks waiting for a retry, creating it if it does not exist.
pub async fn ensure_callback_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let wanted = stream::Config {
        name: CALLBACK_STREAM.to_string(),
        description: Some("ferry: callbacks of finished calls, waiting for delivery".to_string()),
        subjects: vec![format!("{CALLBACK_SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    };
    ensure_stream(js, config, wanted).await
}

/// Returns the call index, creating it if it does not exist: limits retention, at most
/// [`RECENT_CALLS_KEPT`] messages per function (the oldest dropped), each kept as long as a
/// status record (`call_status_ttl`).
pub async fn ensure_call_index_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let wanted = stream::Config {
        name: CALL_INDEX_STREAM.to_string(),
        description: Some("ferry: the recent async calls of each function".to_string()),
        subjects: vec![format!("{CALL_INDEX_SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_messages_per_subject: RECENT_CALLS_KEPT as i64,
        max_age: config.call_status_ttl,
        ..Default::default()
    };
    ensure_stream(js, config, wanted).await
}

/// Returns stream `wanted` (file storage, `nats_replicas` copies), creating it if it does not
/// exist; an existing one is brought to `nats_replicas` ([`reconcile_replicas`]).
async fn ensure_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
    wanted: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let wanted = stream::Config {
        storage: stream::StorageType::File,
        num_replicas: config.stream_replicas,
        ..wanted
    };
    let mut stream = js.get_or_create_stream(wanted).await?;
    reconcile_replicas(js, &mut stream, config.stream_replicas).await;
    Ok(stream)
}

/// Returns the call-status bucket, creating it if it does not exist (history 1, file storage,
/// records expire `call_status_ttl` after their last change).
pub async fn ensure_status_bucket(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<kv::Store, jetstream::context::CreateKeyValueError> {
    if let Ok(store) = js.get_key_value(STATUS_BUCKET).await {
        reconcile_bucket_replicas(js, STATUS_BUCKET, config.stream_replicas).await;
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: STATUS_BUCKET.to_string(),
        description: "ferry: status of async calls, by call id".to_string(),
        history: 1,
        max_age: config.call_status_ttl,
        storage: stream::StorageType::File,
        num_replicas: config.stream_replicas,
        ..Default::default()
    })
    .await
}

/// Returns the gateway's API-token bucket, creating it if it does not exist (history 1, file
/// storage, no expiry: a deleted token leaves a delete marker, which every gateway's watch
/// sees, so a revocation also reaches a gateway that was disconnected when it happened).
pub async fn ensure_token_bucket(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<kv::Store, jetstream::context::CreateKeyValueError> {
    if let Ok(store) = js.get_key_value(TOKEN_BUCKET).await {
        reconcile_bucket_replicas(js, TOKEN_BUCKET, config.stream_replicas).await;
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: TOKEN_BUCKET.to_string(),
        description: "ferry: the gateway's API tokens (SHA-256 of each), by name".to_string(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: config.stream_replicas,
        ..Default::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_come_from_nats_replicas_or_its_older_name() {
        use std::collections::HashMap;
        let read = |pairs: &[(&'static str, &'static str)]| {
            let e: HashMap<&str, &str> = pairs.iter().copied().collect();
            NatsConfig::from_env(&e).map(|c| c.stream_replicas)
        };
        assert_eq!(read(&[]), Ok(1));
        assert_eq!(read(&[("nats_replicas", "3")]), Ok(3));
        assert_eq!(read(&[("nats_stream_replicas", "3")]), Ok(3));
        assert_eq!(
            read(&[("nats_replicas", "5"), ("nats_stream_replicas", "3")]),
            Ok(5)
        );
        for bad in ["0", "6", "three"] {
            let err = read(&[("nats_replicas", bad)]).unwrap_err();
            assert_eq!(err.name, "nats_replicas", "{err}");
        }
        let err = read(&[("nats_stream_replicas", "7")]).unwrap_err();
        assert_eq!(err.name, "nats_stream_replicas");
    }

    #[tokio::test]
    async fn a_list_of_servers_is_accepted() {
        // Nothing listens there: the client is made and keeps trying in the background.
        let client = connect("nats://u:p@127.0.0.1:1, nats://127.0.0.1:2,", "test")
            .await
            .expect("a client for a list of servers");
        assert_ne!(
            client.connection_state(),
            async_nats::connection::State::Connected
        );
    }

    #[test]
    fn credentials_leave_the_url() {
        let (server, credentials) = split_credentials("nats://ferry:p%40ss@nats:4222");
        assert_eq!(server, "nats://nats:4222");
        assert!(credentials == Some(UrlCredentials::UserPassword("ferry".into(), "p@ss".into())));
        let (server, credentials) = split_credentials("s3cret@127.0.0.1:4222");
        assert_eq!(server, "nats://127.0.0.1:4222");
        assert!(credentials == Some(UrlCredentials::Token("s3cret".into())));
        let (server, credentials) = split_credentials("nats://[::1]:4222");
        assert_eq!(server, "nats://[::1]:4222");
        assert!(credentials.is_none());
    }
}
