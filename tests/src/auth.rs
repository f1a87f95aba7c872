//! Basic-auth checks shared by the tests of `basic_auth` (in-process stack and compose), and
//! of the faas-cli config file `make login` writes.

use serde_json::Value;

use crate::http_client;

/// Status, `WWW-Authenticate` and body of `GET url` with the given credentials.
pub async fn get(url: &str, credentials: Option<(&str, &str)>) -> (u16, String, String) {
    let mut request = http_client().get(url);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, challenge, response.text().await.unwrap_or_default())
}

/// `url` answers 401 with OpenFaaS' Basic challenge (`realm="Restricted"`) and a JSON
/// message without credentials, with a wrong password and with a wrong user, and 200 with
/// `user` and `password`.
pub async fn assert_protected(url: &str, user: &str, password: &str) {
    let wrong = format!("{password}-wrong");
    for (what, credentials) in [
        ("without credentials", None),
        ("with a wrong password", Some((user, wrong.as_str()))),
        ("with a wrong user", Some(("root", password))),
    ] {
        let (status, challenge, body) = get(url, credentials).await;
        assert_eq!(status, 401, "{url} {what}: {body}");
        assert_eq!(challenge, "Basic realm=\"Restricted\"", "{url} {what}");
        let body: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(body["message"].is_string(), "{url} {what}: {body}");
    }
    let (status, _, body) = get(url, Some((user, password))).await;
    assert_eq!(status, 200, "{url} with the right credentials: {body}");
}

/// faas-cli's config file at `path` has one entry for `gateway` holding `user` and
/// `password`, as `faas-cli login` writes it (`auth: basic`, `token: base64(user:password)`),
/// and is owner-only.
pub fn assert_faas_cli_login(path: &std::path::Path, gateway: &str, user: &str, password: &str) {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt as _;
    let text = std::fs::read_to_string(path).expect("make login wrote config.yml");
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "config.yml is owner-only: {mode:o}");
    let entry = format!("- gateway: {gateway}");
    let mut lines = text.lines().skip_while(|l| *l != entry);
    assert_eq!(lines.next(), Some(entry.as_str()), "{text}");
    assert_eq!(lines.next(), Some("  auth: basic"), "{text}");
    let token = lines
        .next()
        .and_then(|l| l.strip_prefix("  token: "))
        .unwrap_or_else(|| panic!("no token in {text}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64 token");
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("{user}:{password}")
    );
    assert_eq!(text.matches("- gateway:").count(), 1, "{text}");
}

/// A provider and a gateway with `basic_auth=true`, sharing credentials generated in a
/// temporary folder (kept as long as the stack).
pub struct AuthedStack {
    // Fields drop in declaration order: the services stop before their folder goes.
    /// The gateway.
    pub gateway: crate::gateway::TestGateway,
    /// The provider.
    pub provider: crate::provider::TestProvider,
    /// The generated user and password.
    pub credentials: ferry_runtime::auth::Credentials,
    /// `secret_mount_path` of both.
    pub secrets: tempfile::TempDir,
}

impl AuthedStack {
    /// Starts them on `nats`, the provider's containers owned by `guard`.
    pub async fn start(guard: &crate::DockerGuard, nats: &crate::NatsServer) -> AuthedStack {
        AuthedStack::start_with(guard, nats, &[]).await
    }

    /// [`AuthedStack::start`] with `gateway_env` added to the gateway's settings.
    pub async fn start_with(
        guard: &crate::DockerGuard,
        nats: &crate::NatsServer,
        gateway_env: &[(&str, &str)],
    ) -> AuthedStack {
        let secrets = tempfile::tempdir().expect("a folder for the credentials");
        let (credentials, _) =
            ferry_runtime::auth::load_or_generate(secrets.path()).expect("generating credentials");
        let dir = secrets.path().to_str().expect("a UTF-8 temporary path");
        let env = AuthedStack::env_for(dir);
        let provider = crate::provider::TestProvider::start_with(guard, &env).await;
        let mut gateway_settings = env.to_vec();
        gateway_settings.extend_from_slice(gateway_env);
        let gateway =
            crate::gateway::TestGateway::start(&provider.url(""), &nats.url(), &gateway_settings)
                .await;
        AuthedStack {
            gateway,
            provider,
            credentials,
            secrets,
        }
    }

    /// `basic_auth=true` and `secret_mount_path`, for other services of the stack.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        AuthedStack::env_for(
            self.secrets
                .path()
                .to_str()
                .expect("a UTF-8 temporary path"),
        )
    }

    fn env_for(dir: &str) -> [(&'static str, &str); 2] {
        [("basic_auth", "true"), ("secret_mount_path", dir)]
    }
}
