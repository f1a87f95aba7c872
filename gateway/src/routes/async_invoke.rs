//! `/async-function/{name}[.{ns}][/sub/path][?query]`: the call is recorded as a
//! [`QueueRequest`] and stored in JetStream; `202 Accepted` only once JetStream has
//! acknowledged it. Any method is accepted and replayed by the worker.
//!
//! Checks, cheapest first: the name (`400`), `X-Callback-Url` (`400`), `Content-Length`
//! against `max_async_body` (`413`), the function exists (`404`), NATS is connected
//! (`503`), the body while it is read (`413`), then the publish (`503` if not stored).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_proto::routes::ASYNC_FUNCTION;
use ferry_proto::{CallbackUrl, QueueRequest};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use crate::Gateway;
use crate::error::GatewayError;
use crate::headers::{self, CALL_ID, CALLBACK_URL, START_TIME};
use crate::path::FunctionPath;

/// Queues one call.
pub(crate) async fn submit(State(gateway): State<Arc<Gateway>>, req: Request) -> Response {
    let (call_id, _) = headers::call_id(req.headers());
    let start = headers::start_time();
    let mut response = match queue(&gateway, req, &call_id, &start).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(call_id = call_id.to_str().unwrap_or_default(), %error, "call not queued");
            }
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(CALL_ID, call_id);
    headers.insert(START_TIME, start);
    response
}

async fn queue(
    gateway: &Gateway,
    req: Request,
    call_id: &HeaderValue,
    start: &HeaderValue,
) -> Result<(), GatewayError> {
    let (mut parts, body) = req.into_parts();
    let path = FunctionPath::parse(parts.uri.path(), ASYNC_FUNCTION)?;
    let callback_url = callback_url(&parts.headers)?;
    let limit = gateway.config.max_async_body;
    if content_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let function = gateway.functions.get(path.function).await?;
    gateway.queue.check_connected()?;
    let body = read_body(body, limit).await?;

    // The replayed call travels on another connection: this one's hop-by-hop headers
    // (including any named in `Connection`) are not part of it.
    headers::strip_hop_by_hop(&mut parts.headers);
    let mut header = headers::to_go_header(&parts.headers);
    header.insert("X-Call-Id".into(), vec![text(call_id)]);
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
    let ack = gateway
        .queue
        .publish(
            function.value.subject.clone(),
            &request.header["X-Call-Id"][0],
            payload.into(),
        )
        .await?;
    tracing::debug!(
        call_id = %request.header["X-Call-Id"][0], function = %path.function,
        sequence = ack.sequence, duplicate = ack.duplicate, "call queued"
    );
    Ok(())
}

/// `X-Callback-Url`, if present: an absolute `http`/`https` URL with a host.
fn callback_url(headers: &HeaderMap) -> Result<Option<CallbackUrl>, GatewayError> {
    let Some(value) = headers.get(CALLBACK_URL) else {
        return Ok(None);
    };
    let url = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
    let invalid = |reason| GatewayError::InvalidCallbackUrl {
        url: url.clone(),
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
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(Some(CallbackUrl::new(url)))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(e) => Err(GatewayError::BadBody(e.to_string())),
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
        callback_url(&h)
    }

    #[test]
    fn callback_urls() {
        assert!(callback_url(&HeaderMap::new()).unwrap().is_none());
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

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_while_read() {
        assert_eq!(read_body(Body::from("12345"), 5).await.unwrap(), "12345");
        let err = read_body(Body::from("123456"), 5).await.unwrap_err();
        assert_eq!(err.status(), 413);
    }
}
