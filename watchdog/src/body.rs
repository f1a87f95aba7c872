//! Response and request body types; [`Deadline`] (ferry-runtime's) enforces a deadline and
//! holds resources (a concurrency permit, a child process) until the body ends.

use bytes::Bytes;
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// Errors carried by bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type used for requests handed to runners and for every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with all of `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body cut at a deadline and holding what must live as long as it (ferry-runtime's).
pub(crate) use ferry_runtime::body::{Deadline, Expired};

/// Boxes a [`Deadline`] body.
pub(crate) fn guarded<H: Unpin + Send + 'static>(body: Deadline<Body, H>) -> Body {
    UnsyncBoxBody::new(body)
}
