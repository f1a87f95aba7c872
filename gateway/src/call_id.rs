//! The call id of an async submission: derived from an `Idempotency-Key`, the caller's
//! `X-Call-Id`, or a new UUID v4, in that order of precedence.
//!
//! The id becomes a key of the call-status bucket, a URL path segment
//! (`/system/async-calls/{call_id}`) and the JetStream message id, so a caller's id must pass
//! [`valid_call_id`]. An idempotency key maps to a UUID v5 of `"name.namespace\n" + key` in
//! [`IDEMPOTENCY_NAMESPACE`]: the same key for the same function always gives the same id,
//! hence the same `Nats-Msg-Id`, which JetStream stores once within its duplicate window.

use ferry_proto::FunctionRef;
use ferry_proto::calls::valid_call_id;
use ferry_proto::headers::IDEMPOTENCY_KEY;
use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::error::GatewayError;
use crate::headers::CALL_ID;

/// `Idempotency-Key`.
const IDEMPOTENCY: HeaderName = HeaderName::from_static(IDEMPOTENCY_KEY);
/// Longest idempotency key.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 256;
/// The UUID v5 namespace of ids derived from idempotency keys. Never change it: ids of
/// submissions in flight would change with it.
pub(crate) const IDEMPOTENCY_NAMESPACE: Uuid =
    Uuid::from_u128(0x608dffd2_9bbb_43d5_9d81_71e940ca6055);

/// A resolved call id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallId {
    /// The id, as a header value.
    pub(crate) value: HeaderValue,
    /// Whether it was derived from an `Idempotency-Key`.
    pub(crate) idempotent: bool,
}

impl CallId {
    /// The id as text (always ASCII).
    pub(crate) fn as_str(&self) -> &str {
        self.value.to_str().unwrap_or_default()
    }
}

/// The call id of an async submission to `function`: from `Idempotency-Key` if present (it
/// wins over `X-Call-Id`), else the caller's non-empty `X-Call-Id`, else a new UUID v4.
pub(crate) fn resolve(headers: &HeaderMap, function: &FunctionRef) -> Result<CallId, GatewayError> {
    let mut keys = headers.get_all(IDEMPOTENCY).iter();
    if let Some(key) = keys.next() {
        if keys.next().is_some() {
            return Err(GatewayError::InvalidIdempotencyKey(
                "send one Idempotency-Key header, not several",
            ));
        }
        let key = idempotency_key(key)?;
        return Ok(CallId {
            value: uuid_value(derive(function, key)),
            idempotent: true,
        });
    }
    match headers.get(CALL_ID).filter(|v| !v.is_empty()) {
        Some(id) => {
            let text = id.to_str().unwrap_or_default();
            if !valid_call_id(text) {
                return Err(GatewayError::InvalidCallId(
                    String::from_utf8_lossy(id.as_bytes()).into_owned(),
                ));
            }
            Ok(CallId {
                value: id.clone(),
                idempotent: false,
            })
        }
        None => Ok(CallId {
            value: uuid_value(Uuid::new_v4()),
            idempotent: false,
        }),
    }
}

/// The id of every submission to `function` with idempotency key `key`.
pub(crate) fn derive(function: &FunctionRef, key: &str) -> Uuid {
    let name = format!("{function}\n{key}");
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes())
}

/// The key, if it is 1–256 printable ASCII characters (space included).
fn idempotency_key(value: &HeaderValue) -> Result<&str, GatewayError> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(GatewayError::InvalidIdempotencyKey("the key is empty"));
    }
    if bytes.len() > MAX_IDEMPOTENCY_KEY {
        return Err(GatewayError::InvalidIdempotencyKey(
            "the key is longer than 256 characters",
        ));
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(GatewayError::InvalidIdempotencyKey(
            "the key must be printable ASCII",
        ));
    }
    Ok(value.to_str().unwrap_or_default())
}

fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use ferry_proto::Name;

    use super::*;

    fn f(s: &str) -> FunctionRef {
        FunctionRef::parse(s, &Name::default_namespace()).unwrap()
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ids_derive_from_function_and_key() {
        let a = derive(&f("echo"), "order-7");
        assert_eq!(
            a,
            derive(&f("echo.openfaas-fn"), "order-7"),
            "same function"
        );
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(a, derive(&f("echo"), "order-8"));
        assert_ne!(a, derive(&f("echo.dev"), "order-7"));
        assert_ne!(a, derive(&f("other"), "order-7"));
        // The separator keeps "a" + "b\nc" apart from "a\nb" + "c".
        assert_ne!(derive(&f("a.b"), "c"), derive(&f("a"), "b\nc"));
        // Pinned: ids must not change between releases.
        assert_eq!(
            derive(&f("echo"), "order-7"),
            Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, b"echo.openfaas-fn\norder-7")
        );
    }

    #[test]
    fn precedence_key_then_call_id_then_new() {
        let echo = f("echo");
        let id = resolve(
            &headers(&[("idempotency-key", b"k1"), ("x-call-id", b"mine")]),
            &echo,
        )
        .unwrap();
        assert!(id.idempotent);
        assert_eq!(id.as_str(), derive(&echo, "k1").to_string());
        let id = resolve(&headers(&[("x-call-id", b"mine")]), &echo).unwrap();
        assert_eq!((id.as_str(), id.idempotent), ("mine", false));
        let id = resolve(&HeaderMap::new(), &echo).unwrap();
        assert_eq!(Uuid::parse_str(id.as_str()).unwrap().get_version_num(), 4);
    }

    #[test]
    fn keys_are_validated() {
        let echo = f("echo");
        let long = "k".repeat(256);
        for ok in [
            &b"a"[..],
            b"order 7/2024-01-01T00:00:00Z",
            b"~!@#$%^&*()",
            long.as_bytes(),
        ] {
            assert!(
                resolve(&headers(&[("idempotency-key", ok)]), &echo).is_ok(),
                "{ok:?}"
            );
        }
        let too_long = "k".repeat(257);
        for bad in [&b""[..], too_long.as_bytes(), b"tab\there", b"caf\xc3\xa9"] {
            let err = resolve(&headers(&[("idempotency-key", bad)]), &echo).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
            assert!(err.to_string().contains("Idempotency-Key"), "{err}");
        }
        let two = headers(&[("idempotency-key", b"a"), ("idempotency-key", b"b")]);
        assert_eq!(resolve(&two, &echo).unwrap_err().status(), 400);
    }

    #[test]
    fn caller_ids_must_be_usable_as_keys_and_path_segments() {
        let echo = f("echo");
        for bad in [&b"a/b"[..], b"a b", b"..", b".a", b"a*", b"caf\xc3\xa9"] {
            let err = resolve(&headers(&[("x-call-id", bad)]), &echo).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
        }
        let id = resolve(&headers(&[("x-call-id", b"")]), &echo).unwrap();
        assert!(Uuid::parse_str(id.as_str()).is_ok(), "an empty id is no id");
    }
}
