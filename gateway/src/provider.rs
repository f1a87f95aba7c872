//! The HTTP client shared by the proxy and the provider look-ups, and the gateway's own
//! calls to the provider (replica endpoints, function status, health, scaling from zero, the
//! replica counts of `gateway_service_count`). With `basic_auth` on, every call carries the
//! gateway's credentials.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use ferry_proto::routes::{
    HEALTHZ, SYSTEM_ENDPOINTS, SYSTEM_FUNCTION, SYSTEM_FUNCTIONS, SYSTEM_NAMESPACES,
    SYSTEM_SCALE_FUNCTION,
};
use ferry_proto::{FunctionEndpoints, FunctionRef, FunctionStatus, Name, ScaleServiceRequest};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::config::ProviderUrl;

/// How long connecting to a replica or the provider may take. Short, because a replica
/// that cannot be connected to quickly is gone (its address is then dropped).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest provider answer the gateway reads for itself.
const MAX_LOOKUP_BODY: usize = 4 * 1024 * 1024;

/// The pooled keep-alive HTTP/1 client used for every outgoing request.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// A client with `TCP_NODELAY`, a connect timeout and a large idle pool per host.
pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// The gateway's own calls to the provider.
#[derive(Clone)]
pub(crate) struct ProviderClient {
    client: HttpClient,
    url: ProviderUrl,
    timeout: Duration,
    /// `Authorization: Basic ...` sent on every call (`basic_auth`), marked sensitive.
    authorization: Option<HeaderValue>,
}

impl ProviderClient {
    pub(crate) fn new(
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

    /// The `Authorization` value of the gateway's credentials, if `basic_auth` is on.
    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// `GET /system/endpoints/{name}?namespace=`; `None` when the function does not exist.
    pub(crate) async fn endpoints(
        &self,
        f: &FunctionRef,
    ) -> Result<Option<FunctionEndpoints>, String> {
        let path = format!(
            "{SYSTEM_ENDPOINTS}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        self.get_json(&path).await
    }

    /// `GET /system/function/{name}?namespace=`; `None` when the function does not exist.
    pub(crate) async fn function(&self, f: &FunctionRef) -> Result<Option<FunctionStatus>, String> {
        let path = format!(
            "{SYSTEM_FUNCTION}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        self.get_json(&path).await
    }

    /// `POST /system/scale-function/{name}?namespace=` with `{"serviceName", "replicas",
    /// "namespace"}`; `Ok(false)` when the function does not exist.
    pub(crate) async fn scale(&self, f: &FunctionRef, replicas: u64) -> Result<bool, String> {
        let path = format!(
            "{SYSTEM_SCALE_FUNCTION}{}?namespace={}",
            f.name.as_str(),
            f.namespace.as_str()
        );
        let body = serde_json::to_vec(&ScaleServiceRequest {
            service_name: f.name.to_string(),
            replicas,
            namespace: f.namespace.to_string(),
        })
        .map_err(|e| format!("encoding a scale request: {e}"))?;
        match self.send(Method::POST, &path, Body::from(body)).await? {
            (StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT, _) => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (status, body) => Err(format!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        }
    }

    /// Every function of every namespace (`GET /system/namespaces`, then `GET
    /// /system/functions?namespace=` for each; a provider without namespaces is asked for
    /// its default namespace only).
    pub(crate) async fn all_functions(&self) -> Result<Vec<FunctionStatus>, String> {
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
    pub(crate) async fn health(&self) -> Result<(), String> {
        match self.get(HEALTHZ).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, body) => Err(format!(
                "GET {HEALTHZ} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, String> {
        match self.get(path).await? {
            (StatusCode::OK, body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| format!("GET {path}: unexpected answer: {e}")),
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (status, body) => Err(format!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        }
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), String> {
        self.send(Method::GET, path, Body::empty()).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, Bytes), String> {
        let uri = self
            .url
            .uri(path)
            .map_err(|e| format!("bad provider URL for {path}: {e}"))?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if !body.is_end_stream() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request.body(body).map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("cannot reach {}: {}", self.url, error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_LOOKUP_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {}{path}: {e}", self.url))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "{}{path} did not answer within {:?}",
                    self.url, self.timeout
                )
            })?
    }
}

/// An error and its sources, `outer: inner: innermost` (hyper's own messages are terse).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
