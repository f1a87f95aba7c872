//! A typed client of the gateway's API (reqwest and ferry-proto's wire types): every request
//! the commands make, with error statuses turned into [`Error::Api`] (the gateway's
//! `{"message"}` when it sent one) and connection failures into [`Error::Unreachable`].

use std::time::Duration;

use ferry_proto::calls::{CallStatus, DeadLetter, DeadLetterPage};
use ferry_proto::info::GatewayInfo;
use ferry_proto::{
    DeleteFunctionRequest, ErrorBody, FunctionDeployment, FunctionStatus, ScaleServiceRequest,
    Secret,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// How a request proves who sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Basic auth: `base64(user:password)`, as stored.
    Basic(String),
    /// `Authorization: Bearer <token>` (an API token).
    Bearer(String),
}

/// Whether a deploy created the function or updated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployed {
    /// `POST /system/functions` created it.
    Created,
    /// It existed (`409`): `PUT /system/functions` updated it.
    Updated,
}

/// The gateway at one URL, with the credentials to send.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Option<Credentials>,
}

/// What is percent-encoded in a path segment or query value: all but RFC 3986's unreserved
/// characters (function names keep their `-` and `.`).
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` percent-encoded for a path segment or query value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, ENCODED).to_string()
}

/// `?namespace=NS` or nothing.
fn ns_query(namespace: Option<&str>) -> String {
    namespace.map_or_else(String::new, |ns| format!("?namespace={}", encode(ns)))
}

impl Client {
    /// A client of `base` (no trailing `/`).
    pub fn new(base: &str, credentials: Option<Credentials>, tls_no_verify: bool) -> Result<Self> {
        ferry_runtime::tls::install();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tls_danger_accept_invalid_certs(tls_no_verify)
            .build()
            .map_err(|source| Error::Unreachable {
                url: base.to_owned(),
                source,
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credentials,
        })
    }

    /// The gateway's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`), with credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.credentials {
            Some(Credentials::Basic(token)) => {
                request.header(reqwest::header::AUTHORIZATION, format!("Basic {token}"))
            }
            Some(Credentials::Bearer(token)) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; a connection failure is [`Error::Unreachable`]. Any status is `Ok`.
    pub async fn send_raw(&self, request: RequestBuilder) -> Result<Response> {
        request.send().await.map_err(|source| Error::Unreachable {
            url: source
                .url()
                .map_or_else(|| self.base.clone(), ToString::to_string),
            source,
        })
    }

    /// Sends `method path` with an optional JSON body; an error status is [`Error::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<Response> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send_raw(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(method.as_str(), path, response).await)
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.send(Method::GET, path, None::<&()>).await?;
        json(path, response).await
    }

    /// `GET /system/functions`.
    pub async fn functions(&self, namespace: Option<&str>) -> Result<Vec<FunctionStatus>> {
        let mut list: Vec<FunctionStatus> = self
            .get(&format!("/system/functions{}", ns_query(namespace)))
            .await?;
        list.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(list)
    }

    /// `GET /system/function/{name}`.
    pub async fn function(&self, name: &str, namespace: Option<&str>) -> Result<FunctionStatus> {
        let path = format!("/system/function/{}{}", encode(name), ns_query(namespace));
        self.get(&path).await
    }

    /// `POST /system/functions`, and `PUT` when the function exists (`409`).
    pub async fn deploy(&self, deployment: &FunctionDeployment) -> Result<Deployed> {
        match self
            .send(Method::POST, "/system/functions", Some(deployment))
            .await
        {
            Ok(_) => Ok(Deployed::Created),
            Err(Error::Api { status: 409, .. }) => {
                self.send(Method::PUT, "/system/functions", Some(deployment))
                    .await?;
                Ok(Deployed::Updated)
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /system/functions`.
    pub async fn remove(&self, name: &str, namespace: Option<&str>) -> Result<()> {
        let body = DeleteFunctionRequest {
            function_name: name.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
        };
        self.send(Method::DELETE, "/system/functions", Some(&body))
            .await?;
        Ok(())
    }

    /// `POST /system/scale-function/{name}`.
    pub async fn scale(&self, name: &str, namespace: Option<&str>, replicas: u64) -> Result<()> {
        let body = ScaleServiceRequest {
            service_name: name.to_owned(),
            replicas,
            namespace: namespace.unwrap_or_default().to_owned(),
            from_zero: false,
        };
        let path = format!(
            "/system/scale-function/{}{}",
            encode(name),
            ns_query(namespace)
        );
        self.send(Method::POST, &path, Some(&body)).await?;
        Ok(())
    }

    /// `GET /system/secrets`.
    pub async fn secrets(&self, namespace: Option<&str>) -> Result<Vec<Secret>> {
        let mut list: Vec<Secret> = self
            .get(&format!("/system/secrets{}", ns_query(namespace)))
            .await?;
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    /// `POST` (create) or `PUT` (update) `/system/secrets`; `DELETE` with `method` DELETE.
    pub async fn secret(&self, method: Method, secret: &Secret) -> Result<()> {
        self.send(method, "/system/secrets", Some(secret)).await?;
        Ok(())
    }

    /// `GET /system/async-calls/{id}`.
    pub async fn call(&self, id: &str) -> Result<CallStatus> {
        self.get(&format!("/system/async-calls/{}", encode(id)))
            .await
    }

    /// `DELETE /system/async-calls/{id}`: the cancelled call.
    pub async fn cancel(&self, id: &str) -> Result<CallStatus> {
        let path = format!("/system/async-calls/{}", encode(id));
        let response = self.send(Method::DELETE, &path, None::<&()>).await?;
        json(&path, response).await
    }

    /// `GET /system/async-calls?function=NAME[&namespace=NS][&limit=N]`, newest first.
    pub async fn calls(
        &self,
        function: &str,
        namespace: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<CallStatus>> {
        let mut path = format!("/system/async-calls?function={}", encode(function));
        if let Some(ns) = namespace {
            path.push_str(&format!("&namespace={}", encode(ns)));
        }
        if let Some(limit) = limit {
            path.push_str(&format!("&limit={limit}"));
        }
        self.get(&path).await
    }

    /// `GET /system/dead-letters`.
    pub async fn dead_letters(&self, query: &[(&str, String)]) -> Result<DeadLetterPage> {
        self.get(&format!("/system/dead-letters{}", query_string(query)))
            .await
    }

    /// `GET /system/dead-letters/{id}`.
    pub async fn dead_letter(&self, id: &str) -> Result<DeadLetter> {
        self.get(&format!("/system/dead-letters/{}", encode(id)))
            .await
    }

    /// `POST /system/dead-letters/{id}/redrive` (the call's new status), or
    /// `POST /system/dead-letters/redrive?function=` (`{"redriven": n}`) with `query`.
    pub async fn redrive(&self, path: &str) -> Result<serde_json::Value> {
        let response = self.send(Method::POST, path, None::<&()>).await?;
        json(path, response).await
    }

    /// `GET /system/info`.
    pub async fn info(&self) -> Result<GatewayInfo> {
        self.get("/system/info").await
    }
}

/// `?k=v&...` (percent-encoded), or nothing.
pub fn query_string(query: &[(&str, String)]) -> String {
    let parts: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The body of `response` as `T`, or [`Error::Protocol`].
pub async fn json<T: DeserializeOwned>(path: &str, response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|source| Error::Unreachable {
            url: path.to_owned(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// [`Error::Api`] of an error `response`: its `{"message"}`, else its body as text.
pub async fn api_error(method: &str, path: &str, response: Response) -> Error {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.message)
        .unwrap_or_else(|_| text.trim().to_owned());
    Error::Api {
        status,
        method: method.to_owned(),
        path: path.to_owned(),
        message,
    }
}
