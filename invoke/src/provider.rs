//! Calls to the provider's API (replica endpoints, function status, health, scaling from zero,
//! the list of functions) and its base URL. With basic auth on, every call carries the
//! credentials.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use ferry_proto::routes::{
    HEALTHZ, SYSTEM_ENDPOINTS, SYSTEM_FUNCTION, SYSTEM_FUNCTIONS, SYSTEM_NAMESPACES,
    SYSTEM_SCALE_FUNCTION,
};
use ferry_proto::{
    FunctionEndpoints, FunctionRef, FunctionStatus, Name, ScaleServiceRequest, Wake,
};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Limited};
use serde::de::DeserializeOwned;

use http::Uri;
use http::uri::{Authority, Scheme};

use crate::client::{HttpClient, error_chain};

/// Largest provider answer read.
const MAX_LOOKUP_BODY: usize = 4 * 1024 * 1024;

/// Calls to the provider.
#[derive(Clone)]
pub struct ProviderClient {
    client: HttpClient,
    url: ProviderUrl,
    timeout: Duration,
    /// `Authorization: Basic ...` sent on every call (`basic_auth`), marked sensitive.
    authorization: Option<HeaderValue>,
}

impl ProviderClient {
    pub fn new(
        client: HttpClient,
        url: ProviderUrl,
        timeout: Duration,
        credentials: Option<&ferry_runtime::auth::Credentials>,
    ) -> Self {
        let authorization = credentials.and_then(|c| {
            let mut value = HeaderValue::from_str(&c.header_value()).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        ProviderClient {
            client,
            url,
            timeout,
            authorization,
        }
    }

    /// The `Authorization` value of the credentials, if `basic_auth` is on.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// `GET /system/endpoints/{name}?namespace=`; `None` when the function does not exist.
    pub async fn endpoints(
        &self,
        f: &FunctionRef,
    ) -> Result<Option<FunctionEndpoints>, ProviderCallError> {
        let path = format!(
            "{SYSTEM_ENDPOINTS}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        self.get_json(&path).await
    }

    /// `GET /system/function/{name}?namespace=`; `None` when the function does not exist.
    pub async fn function(
        &self,
        f: &FunctionRef,
    ) -> Result<Option<FunctionStatus>, ProviderCallError> {
        let path = format!(
            "{SYSTEM_FUNCTION}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        self.get_json(&path).await
    }

    /// `POST /system/scale-function/{name}?namespace=` with `{"serviceName", "replicas": 1,
    /// "namespace", "fromZero": true}` (ferry's): only a function at zero desired replicas is
    /// scaled, to `max(com.openfaas.scale.min, 1)`, so racing gateways and operators never
    /// undo each other. The answer says how it came back (`X-Ferry-Wake`) and, for a thawed
    /// replica, where it listens; `Ok(None)` when the function does not exist.
    pub async fn scale_from_zero(
        &self,
        f: &FunctionRef,
    ) -> Result<Option<ScaleAnswer>, ProviderCallError> {
        let path = format!(
            "{SYSTEM_SCALE_FUNCTION}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        let body = serde_json::to_vec(&ScaleServiceRequest {
            service_name: f.name.to_string(),
            replicas: 1,
            namespace: f.namespace.to_string(),
            from_zero: true,
        })
        .map_err(|e| ProviderCallError::Encode(e.to_string()))?;
        let (status, headers, body) = self.exchange(Method::POST, &path, Body::from(body)).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => {
                Ok(Some(ScaleAnswer {
                    wake: headers
                        .get(Wake::HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Wake::parse),
                    // Only a provider that knows the replica's address sends it.
                    endpoints: serde_json::from_slice(&body).ok(),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(answered(Method::POST, &path, status, &body)),
        }
    }

    /// Every function of every namespace (`GET /system/namespaces`, then `GET
    /// /system/functions?namespace=` for each; a provider without namespaces is asked for
    /// its default namespace only).
    pub async fn all_functions(&self) -> Result<Vec<FunctionStatus>, ProviderCallError> {
        let namespaces: Vec<String> = self
            .get_json(SYSTEM_NAMESPACES)
            .await?
            .unwrap_or_else(|| vec![Name::default_namespace().to_string()]);
        let mut all = Vec::new();
        for namespace in namespaces {
            let path = format!("{SYSTEM_FUNCTIONS}?namespace={namespace}");
            let list: Option<Vec<FunctionStatus>> = self.get_json(&path).await?;
            all.extend(list.unwrap_or_default());
        }
        Ok(all)
    }

    /// `GET /healthz` answers 200.
    pub async fn health(&self) -> Result<(), ProviderCallError> {
        match self.get(HEALTHZ).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, body) => Err(answered(Method::GET, HEALTHZ, status, &body)),
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ProviderCallError> {
        match self.get(path).await? {
            (StatusCode::OK, body) => {
                serde_json::from_slice(&body)
                    .map(Some)
                    .map_err(|e| ProviderCallError::Unexpected {
                        path: path.to_string(),
                        reason: e.to_string(),
                    })
            }
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(answered(Method::GET, path, status, &body)),
        }
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), ProviderCallError> {
        self.send(Method::GET, path, Body::empty()).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, Bytes), ProviderCallError> {
        let (status, _, body) = self.exchange(method, path, body).await?;
        Ok((status, body))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ProviderCallError> {
        let uri = self.url.uri(path).map_err(|e| ProviderCallError::Url {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if !body.is_end_stream() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(body)
            .map_err(|e| ProviderCallError::Request(e.to_string()))?;
        let exchange =
            async {
                let response = self.client.request(request).await.map_err(|e| {
                    ProviderCallError::Unreachable {
                        url: self.url.to_string(),
                        reason: error_chain(&e),
                    }
                })?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = Limited::new(response.into_body(), MAX_LOOKUP_BODY)
                    .collect()
                    .await
                    .map_err(|e| ProviderCallError::Read {
                        url: format!("{}{path}", self.url),
                        reason: e.to_string(),
                    })?
                    .to_bytes();
                Ok((status, headers, body))
            };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderCallError::Timeout {
                url: format!("{}{path}", self.url),
                timeout: self.timeout,
            })?
    }
}

/// What a scale request led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleAnswer {
    /// How the function came back from zero, if this request brought it back.
    pub wake: Option<Wake>,
    /// The replica brought back, when the provider knows its address at once (thawed).
    pub endpoints: Option<FunctionEndpoints>,
}

/// What a provider look-up failed with. `Clone`: a cached look-up's failure is shared by the
/// calls that waited for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderCallError {
    /// No request URI could be made of the provider URL and the path.
    #[error("bad provider URL for {path}: {reason}")]
    Url {
        /// The API path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The request body could not be encoded.
    #[error("encoding a scale request: {0}")]
    Encode(String),
    /// The request could not be built.
    #[error("the request to the provider: {0}")]
    Request(String),
    /// The provider could not be reached (the error chain).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The provider URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer's body could not be read.
    #[error("reading the answer of {url}: {reason}")]
    Read {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer within the provider timeout.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL asked.
        url: String,
        /// `provider_timeout`.
        timeout: Duration,
    },
    /// The provider answered with an unexpected status.
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        /// The request's method.
        method: Method,
        /// The API path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The answer's body, as text.
        body: String,
    },
    /// The answer was not the JSON expected.
    #[error("GET {path}: unexpected answer: {reason}")]
    Unexpected {
        /// The API path.
        path: String,
        /// Why.
        reason: String,
    },
}

fn answered(method: Method, path: &str, status: StatusCode, body: &[u8]) -> ProviderCallError {
    ProviderCallError::Status {
        method,
        path: path.to_string(),
        status,
        body: String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// The provider's base URL, split once so that request URIs are built without parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrl {
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl ProviderUrl {
    /// Parses `http://host[:port][/prefix]`. User-info (`user:password@`) is dropped: the
    /// credentials sent to the provider are those of `secret_mount_path`, and what is not
    /// kept cannot reach a log (hyper's connection pool logs its authority at debug level).
    pub fn parse(s: &str) -> Result<ProviderUrl, String> {
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("not a URL ({e}); expected e.g. http://provider:8081"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err("expected an http:// URL, e.g. http://provider:8081".into());
        }
        let authority = uri
            .authority()
            .ok_or("the URL has no host; expected e.g. http://provider:8081")?;
        let authority = match authority.as_str().rsplit_once('@') {
            Some((_, host_port)) => host_port
                .parse::<Authority>()
                .map_err(|e| format!("not a URL ({e}); expected e.g. http://provider:8081"))?,
            None => authority.clone(),
        };
        if uri.query().is_some() {
            return Err("the URL must not have a query string".into());
        }
        Ok(ProviderUrl {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// `http://<authority><prefix><path_and_query>`.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let pq = if self.prefix.is_empty() {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.prefix)
        };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

impl std::fmt::Display for ProviderUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_dropped() {
        let url = ProviderUrl::parse("http://u:s3cret@provider:8081/api/").expect("valid");
        assert_eq!(url.authority.as_str(), "provider:8081");
        assert_eq!(url.to_string(), "http://provider:8081/api");
        assert!(ProviderUrl::parse("http://u:p@/x").is_err());
    }
}
