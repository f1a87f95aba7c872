//! Forwarding one request upstream (to a function replica or to the provider) and its
//! response back, bodies streamed both ways. Sending itself is `ferry_invoke::client`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use ferry_invoke::InFlight;
use ferry_invoke::client::deadline_body;
use http::header::HOST;
use http::{Request, Response, Version, request};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::headers::{set_forwarded, strip_hop_by_hop};

/// The client's address, when the server recorded it.
pub(crate) fn client_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Makes a request ready to be sent upstream: hop-by-hop headers removed,
/// `X-Forwarded-For`/`-Host` added when absent, `Host` left to the client (the upstream's
/// address), HTTP/1.1.
pub(crate) fn prepare(parts: &mut request::Parts, client: Option<SocketAddr>) {
    strip_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, client);
    parts.headers.remove(HOST);
    parts.version = Version::HTTP_11;
}

/// The upstream response as ours: status and headers copied (hop-by-hop ones removed), the
/// body streamed, and cut at `deadline` if one is given. `in_flight` (the call's count on
/// its replica) is released when the body is finished or dropped.
pub(crate) fn response(
    upstream: Response<Incoming>,
    deadline: Option<(Instant, Duration)>,
    in_flight: Option<InFlight>,
) -> Response<Body> {
    let (mut parts, body) = upstream.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = match deadline {
        Some((at, timeout)) => Body::new(deadline_body(body, at, timeout, in_flight)),
        None => Body::new(body),
    };
    Response::from_parts(parts, body)
}
