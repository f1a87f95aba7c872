//! `/async-function/{name}[.{ns}][/sub/path][?query]`: the call is recorded as a
//! [`QueueRequest`] and stored in JetStream; `202 Accepted` only once JetStream has
//! acknowledged it. Any method is accepted and replayed by the worker.
//!
//! Checks, cheapest first: the name (`404`: no function can have it), the call id
//! (`Idempotency-Key` or `X-Call-Id`, `400`), `X-Callback-Url` and its destination
//! (`callback_allow`, `callback_deny`; `400`), `Content-Length` against `max_async_body`
//! (`413`), the function exists (`404`), NATS is connected (`503`), the body while it is read
//! (`413` past `max_async_body`, `408` when it stalls for `read_timeout`: see
//! [`crate::limits`]), then the publish (`503` if not stored).
//!
//! The call's status record is created first (`queued`, create-only), then the message is
//! published with the record's revision in the `Ferry-Status-Revision` header (the worker's
//! `running` write is then one compare-and-set, without reading the record first); if the
//! message is not stored the record is removed again, so a record never stands for a call
//! that was not queued. A submission with an `Idempotency-Key` whose call already has a status
//! record is answered `202` with that call id without storing anything; so is a repeat of a
//! call id submitted to the same function within `nats_duplicate_window`. Any other
//! submission under a call id in use is refused with `409`.
//!
//! Every submission is counted by outcome (`accepted`, `duplicate`, `rejected` for a 4xx,
//! `unavailable` for a 5xx) in [`crate::metrics`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_proto::calls::{CallState, CallStatus};
use ferry_proto::routes::ASYNC_FUNCTION;
use ferry_proto::{CallbackUrl, FunctionRef, Name, QueueRequest};
use ferry_runtime::callback_guard::CallbackGuard;
use http::header::{HOST, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::BodyExt as _;

use crate::Gateway;
use crate::call_id::{self, CallId};
use crate::error::GatewayError;
use crate::headers::{self, CALL_ID, CALLBACK_URL, START_TIME};
use crate::limits::BodyLimit;
use crate::path::FunctionPath;
use crate::status::{Record, Written};

/// Outcomes of a stored submission, as counted in `gateway_async_submissions_total`.
const ACCEPTED: &str = "accepted";
const DUPLICATE: &str = "duplicate";

/// Where a call's status is served: `/system/async-calls/<call_id>`.
pub(crate) const STATUS_PATH: &str = "/system/async-calls/";

/// Queues one call. The `202` carries `X-Call-Id`, `X-Start-Time` and `Location` (the status
/// URL); errors carry `X-Call-Id` once it is known.
pub(crate) async fn submit(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    let start = headers::start_time();
    // The record's `submittedAt` is the `X-Start-Time` the call carries, so that the worker
    // rebuilds the very record from the message (see `store`).
    let received = start
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(SystemTime::now, |nanos| {
            std::time::UNIX_EPOCH + Duration::from_nanos(nanos)
        });
    let mut id = None;
    let mut found = None;
    let queued = queue(&gateway, req, &start, received, &mut id, &mut found).await;
    let outcome = match &queued {
        Ok(outcome) => *outcome,
        Err(error) if error.status().is_server_error() => "unavailable",
        Err(_) => "rejected",
    };
    let function_name = found.as_deref().unwrap_or_default();
    gateway.metrics.async_submission(function_name, outcome);
    let mut response = match queued {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => {
            if error.status().is_server_error() {
                let call_id = id.as_ref().map(CallId::as_str).unwrap_or_default();
                tracing::warn!(call_id, %error, "call not queued");
            }
            error.into_response()
        }
    };
    let accepted = response.status() == StatusCode::ACCEPTED;
    let headers = response.headers_mut();
    if let Some(id) = id {
        if accepted {
            let location = format!("{STATUS_PATH}{}", id.as_str());
            if let Ok(location) = HeaderValue::from_str(&location) {
                headers.insert(LOCATION, location);
            }
        }
        headers.insert(CALL_ID, id.value);
    }
    headers.insert(START_TIME, start);
    response
}

async fn queue(
    gateway: &Gateway,
    req: Request,
    start: &HeaderValue,
    received: SystemTime,
    id: &mut Option<CallId>,
    found: &mut Option<String>,
) -> Result<&'static str, GatewayError> {
    let (mut parts, body) = req.into_parts();
    let path = FunctionPath::parse(parts.uri.path(), ASYNC_FUNCTION)?;
    let f = FunctionRef::parse(path.function, &Name::default_namespace())
        .map_err(|e| GatewayError::invalid_name(path.function, e))?;
    let call_id = id.insert(call_id::resolve(&parts.headers, &f)?).clone();
    let callback_url = callback_url(&parts.headers, &gateway.config.callback_guard)?;
    let config = &gateway.config;
    let limit = BodyLimit::new(config.max_async_body, "max_async_body", config.read_timeout);
    limit.check(&body)?;
    let function = gateway.invoker.functions.get(path.function).await?;
    *found = Some(f.to_string());
    gateway.queue.check_connected()?;
    if call_id.idempotent && recorded(gateway, call_id.as_str()).await {
        tracing::debug!(
            call_id = call_id.as_str(),
            "idempotent repeat of a known call"
        );
        return Ok(DUPLICATE);
    }
    let body = read_body(body, &limit).await?;

    // The replayed call travels on another connection: this one's hop-by-hop headers
    // (including any named in `Connection`) are not part of it.
    headers::strip_hop_by_hop(&mut parts.headers);
    let mut header = headers::to_go_header(&parts.headers);
    header.insert("X-Call-Id".into(), vec![call_id.as_str().to_string()]);
    header.insert("X-Start-Time".into(), vec![text(start)]);
    let request = QueueRequest {
        header,
        host: host(&parts.headers, &parts.uri),
        body: body.into(),
        method: parts.method.as_str().to_string(),
        path: path.sub_path.to_string(),
        query_string: parts.uri.query().unwrap_or_default().to_string(),
        function: path.function.to_string(),
        queue_name: function.value.queue.clone(),
        annotations: function.value.annotations.clone(),
        callback_url,
        ..QueueRequest::default()
    };
    let payload = serde_json::to_vec(&request)
        .map_err(|e| GatewayError::Internal(format!("encoding the queued call: {e}")))?;
    let record = CallStatus::accepted(
        call_id.as_str(),
        &f.to_string(),
        &function.value.queue,
        &ferry_proto::time::rfc3339_millis(received),
        request.callback_url.as_ref().map(CallbackUrl::as_str),
    );
    // A task of its own: a client going away must not leave a record without its call.
    let queue = gateway.queue.clone();
    let (subject, window) = (
        function.value.subject.clone(),
        gateway.config.nats.duplicate_window,
    );
    let function = f.clone();
    let stored = tokio::spawn(async move {
        store(&queue, &function, subject, record, payload.into(), window).await
    });
    stored
        .await
        .map_err(|e| GatewayError::Internal(format!("the submission task failed: {e}")))?
}

/// Stores one call: its `queued` record first (create-only), then the message, carrying the
/// record's revision so that the worker can mark it `running` in one conditional write, then
/// its entry in `function`'s recent calls ([`crate::call_index`]). If the message is not
/// stored, neither is the record. A call id that has a record already is a
/// repeat of that call when it was submitted to the same function within `window` (JetStream's
/// duplicate window: answered as stored, nothing stored again), else `409`.
async fn store(
    queue: &crate::queue::Queue,
    function: &FunctionRef,
    subject: String,
    record: CallStatus,
    payload: Bytes,
    window: Duration,
) -> Result<&'static str, GatewayError> {
    let statuses = queue.statuses().await?;
    let id = record.call_id.clone();
    let revision = match create(queue, &statuses, &record).await? {
        Written::Stored(revision) => revision,
        Written::Conflict => {
            let existing = statuses.get(&id).await?;
            return match existing {
                Some(r)
                    if r.status.function == record.function
                        && repeated_within(&r.status, window) =>
                {
                    tracing::debug!(call_id = %id, "repeated submission of a known call");
                    publish_unclaimed(queue, subject, &r, payload).await?;
                    Ok(DUPLICATE)
                }
                Some(Record { status: s, .. }) => Err(GatewayError::Conflict(format!(
                    "call id {id} is already in use (by a call to {}, {}); use a new X-Call-Id, \
                     or an Idempotency-Key to make a submission safe to repeat",
                    s.function,
                    s.state.as_str()
                ))),
                // Gone meanwhile (expired): the caller may try again.
                None => Err(GatewayError::Conflict(format!(
                    "call id {id} changed while it was submitted; try again"
                ))),
            };
        }
    };
    let published = queue
        .publish(subject, &id, &id, Some(revision), payload)
        .await;
    let forget = |why: &'static str| {
        let statuses = statuses.clone();
        let id = id.clone();
        async move {
            if let Err(error) = statuses.delete_at(&id, revision).await {
                tracing::warn!(call_id = %id, %error, "{why}, and its status record could not be removed");
            }
        }
    };
    match published {
        Ok(ack) if ack.duplicate => {
            // The message was stored before, under a record that has expired since.
            forget("a repeated call was not stored again").await;
            Ok(DUPLICATE)
        }
        Ok(ack) => {
            tracing::debug!(call_id = %id, sequence = ack.sequence, "call queued");
            queue.index_call(function, &id).await;
            Ok(ACCEPTED)
        }
        Err(error) => {
            forget("the call was not queued").await;
            Err(error)
        }
    }
}

/// Creates `record`, sending the create again when an attempt gets no answer within a third of
/// `publish_timeout` (the NATS node it went to was lost, or the bucket is electing a leader).
/// If an attempt was applied but its answer lost, the next one conflicts with it: that is
/// handled as a repeated submission (same function, within the window), which publishes the
/// message if it is missing ([`publish_unclaimed`]), so nothing is lost or stored twice.
async fn create(
    queue: &crate::queue::Queue,
    statuses: &crate::status::StatusStore,
    record: &CallStatus,
) -> Result<Written, GatewayError> {
    use crate::queue::{PUBLISH_ATTEMPT_MIN, PUBLISH_RETRY_PAUSE};
    let deadline = tokio::time::Instant::now() + queue.timeout();
    let per_attempt = (queue.timeout() / 3).max(PUBLISH_ATTEMPT_MIN);
    loop {
        let until = deadline.min(tokio::time::Instant::now() + per_attempt);
        let failed: GatewayError =
            match tokio::time::timeout_at(until, statuses.create(record)).await {
                Ok(Ok(written)) => return Ok(written),
                Ok(Err(error)) => error.into(),
                Err(_) => GatewayError::QueueUnavailable(format!(
                    "the call-status bucket did not answer within {:?}",
                    queue.timeout()
                )),
            };
        if tokio::time::Instant::now() + PUBLISH_RETRY_PAUSE >= deadline {
            return Err(failed);
        }
        tracing::debug!(call_id = %record.call_id, error = %failed, "creating the status record again");
        tokio::time::sleep(PUBLISH_RETRY_PAUSE).await;
    }
}

/// Publishes a repeated call again while its record says no worker has picked it up yet
/// (`queued`, no attempt): the first submission may have stored the record and then lost its
/// publish with the NATS node it went to (its client got a `503` or no answer, and repeats).
/// The message id (the call id) makes this safe: if the first message was stored, JetStream
/// answers "duplicate" and stores nothing.
async fn publish_unclaimed(
    queue: &crate::queue::Queue,
    subject: String,
    existing: &Record,
    payload: Bytes,
) -> Result<(), GatewayError> {
    let s = &existing.status;
    if s.state != CallState::Queued || s.attempts > 0 || s.next_attempt_at.is_some() {
        return Ok(());
    }
    let ack = queue
        .publish(subject, &s.call_id, &s.call_id, existing.revision, payload)
        .await?;
    if !ack.duplicate {
        tracing::info!(call_id = %s.call_id, "a repeated call had no message: stored it now");
    }
    Ok(())
}

/// Whether `existing` was submitted less than `window` ago.
fn repeated_within(existing: &CallStatus, window: Duration) -> bool {
    ferry_proto::time::parse_rfc3339(&existing.submitted_at)
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age <= window)
}

/// Whether call `id` has a status record (a failed look-up counts as no).
async fn recorded(gateway: &Gateway, id: &str) -> bool {
    match async { Ok::<_, GatewayError>(gateway.queue.statuses().await?.get(id).await?) }.await {
        Ok(record) => record.is_some(),
        Err(error) => {
            tracing::debug!(call_id = id, %error, "status look-up failed; publishing");
            false
        }
    }
}

/// `X-Callback-Url`, if present: an absolute `http`/`https` URL with a host that `guard`
/// allows (checked as written: no DNS on the submission path; the worker checks every address
/// a name resolves to).
fn callback_url(
    headers: &HeaderMap,
    guard: &CallbackGuard,
) -> Result<Option<CallbackUrl>, GatewayError> {
    let Some(value) = headers.get(CALLBACK_URL) else {
        return Ok(None);
    };
    let url = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
    let invalid = |reason| GatewayError::InvalidCallbackUrl {
        url: ferry_runtime::redact::callback_url(&url),
        reason,
    };
    if url.is_empty() {
        return Err(invalid("the header is empty"));
    }
    if !url.contains("://") {
        return Err(invalid("must be an absolute URL such as http://host/path"));
    }
    let without_fragment = url.split('#').next().unwrap_or_default();
    let uri: Uri = without_fragment
        .parse()
        .map_err(|_| invalid("not a valid URL"))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(_) => return Err(invalid("only http:// and https:// callbacks are supported")),
        None => return Err(invalid("must be an absolute URL such as http://host/path")),
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(invalid("the URL has no host"));
    };
    if let Err(source) = guard.check_host(host) {
        return Err(GatewayError::CallbackRefused {
            url: ferry_runtime::redact::callback_url(&url),
            source,
        });
    }
    Ok(Some(CallbackUrl::new(url)))
}

/// The whole body, within `limit` (`413` once it grows past it, `408` when it stalls).
async fn read_body(body: Body, limit: &BodyLimit) -> Result<Bytes, GatewayError> {
    let (body, watch) = limit.guard(body);
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(watch.or(GatewayError::BadBody(e.to_string()))),
    }
}

/// The original `Host`: the header, or the authority of an absolute-form request.
fn host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(HOST)
        .map(text)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn text(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<Option<CallbackUrl>, GatewayError> {
        let mut h = HeaderMap::new();
        h.insert(CALLBACK_URL, HeaderValue::from_str(url).unwrap());
        callback_url(&h, &CallbackGuard::default())
    }

    #[test]
    fn callback_urls() {
        let none = callback_url(&HeaderMap::new(), &CallbackGuard::default());
        assert!(none.unwrap().is_none());
        for ok in [
            "http://127.0.0.1:9000/cb",
            "https://example.com/a/b?x=1#frag",
            "HTTP://gateway:8080/function/next",
            "http://user:pw@host/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(check(ok).unwrap().unwrap().as_str(), ok);
        }
        for (bad, why) in [
            ("", "empty"),
            ("/relative/path", "absolute"),
            ("example.com/cb", "absolute"),
            ("ftp://example.com/x", "http"),
            ("http://", "valid URL"),
            ("http://exa mple.com/", "valid URL"),
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn callback_destinations_are_checked_without_dns() {
        let strict = CallbackGuard::new("", "127.0.0.0/8, *.internal").unwrap();
        let check_with = |guard: &CallbackGuard, url: &str| {
            let mut h = HeaderMap::new();
            h.insert(CALLBACK_URL, HeaderValue::from_str(url).unwrap());
            callback_url(&h, guard)
        };
        for (url, why) in [
            ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
            ("http://metadata.google.internal/", "cloud metadata"),
            ("http://0.0.0.0:8080/", "unspecified"),
        ] {
            let err = check(url).unwrap_err();
            assert!(matches!(err, GatewayError::CallbackRefused { .. }), "{url}");
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(why), "{url}: {err}");
        }
        for url in ["http://127.0.0.1:9/cb?token=secret", "http://db.internal/"] {
            assert!(check(url).is_ok(), "{url}: allowed by default");
            let err = check_with(&strict, url).unwrap_err();
            assert!(err.to_string().contains("callback_deny"), "{url}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        // A name is not resolved: what it points to is the worker's to check.
        assert!(check_with(&strict, "http://localhost:9/cb").is_ok());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_while_read() {
        let limit = BodyLimit::new(5, "max_async_body", Duration::from_secs(5));
        assert_eq!(
            read_body(Body::from("12345"), &limit).await.unwrap(),
            "12345"
        );
        let chunked = Body::from_stream(futures_util::stream::iter(
            ["123", "456"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        ));
        let err = read_body(chunked, &limit).await.unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(err.to_string().contains("max_async_body"), "{err}");
    }
}
