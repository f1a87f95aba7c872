//! Golden JSON: pins every wire shape, against JSON written by OpenFaaS's own Go types
//! (faas-cli deploy bodies, faasd list answers, gateway-queued messages) and against ferry's
//! own output, byte for byte.

use ferry_proto::function::DeploymentError;
use ferry_proto::info::{ProviderInfo, VersionInfo};
use ferry_proto::logs::LogMessage;
use ferry_proto::{
    CallbackUrl, DeleteFunctionRequest, FunctionDeployment, FunctionStatus, QueueRequest,
    ScaleServiceRequest, Secret,
};
use serde_json::{Value, json};

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn deployment_from_faas_cli_round_trips() {
    let d: FunctionDeployment = serde_json::from_str(&golden("deployment-faas-cli.json")).unwrap();
    assert_eq!(d.service, "figlet");
    assert_eq!(d.env_process, "figlet");
    assert_eq!(d.labels["com.openfaas.scale.min"], "2");
    assert_eq!(d.annotations["com.openfaas.queue"], "slow-queue");
    assert_eq!(d.limits.as_ref().unwrap().memory, "128Mi");
    assert_eq!(d.limits.as_ref().unwrap().cpu, "100m");
    assert!(d.read_only_root_filesystem);
    let r = d.validate().unwrap();
    assert_eq!(r.to_string(), "figlet.openfaas-fn");
    // Everything present survives a round trip unchanged.
    let again: Value = serde_json::to_value(&d).unwrap();
    let original: Value = serde_json::from_str(&golden("deployment-faas-cli.json")).unwrap();
    assert_eq!(again, original);
}

#[test]
fn deployment_with_nulls_parses_and_zero_values_are_omitted() {
    let d: FunctionDeployment = serde_json::from_str(&golden("deployment-nulls.json")).unwrap();
    assert!(d.env_vars.is_empty() && d.labels.is_empty() && d.secrets.is_empty());
    assert_eq!(d.limits, None);
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"service":"env","image":"ghcr.io/openfaas/alpine:latest","envProcess":"env"}"#
    );
    assert_eq!(d.validate().unwrap().to_string(), "env.openfaas-fn");
}

#[test]
fn process_env_adds_fprocess_unless_env_vars_set_it() {
    let mut d = FunctionDeployment {
        env_process: "cat".into(),
        ..Default::default()
    };
    assert_eq!(d.process_env()["fprocess"], "cat");
    d.env_vars.insert("fprocess".into(), "env".into());
    assert_eq!(d.process_env()["fprocess"], "env");
}

#[test]
fn deployment_validation_names_the_problem() {
    let base = FunctionDeployment {
        service: "ok".into(),
        image: "alpine:3".into(),
        ..Default::default()
    };
    let case = |f: &dyn Fn(&mut FunctionDeployment)| {
        let mut d = base.clone();
        f(&mut d);
        d.validate().unwrap_err()
    };
    assert_eq!(
        case(&|d| d.service.clear()),
        DeploymentError::MissingService
    );
    assert_eq!(case(&|d| d.image.clear()), DeploymentError::MissingImage);
    assert!(matches!(
        case(&|d| d.service = "Bad_Name".into()),
        DeploymentError::InvalidService(_)
    ));
    assert!(matches!(
        case(&|d| d.namespace = "a.b".into()),
        DeploymentError::InvalidNamespace(_)
    ));
    assert!(matches!(
        case(&|d| d.image = "a b".into()),
        DeploymentError::InvalidImage(_)
    ));
    assert!(matches!(
        case(&|d| d.secrets = vec!["../x".into()]),
        DeploymentError::InvalidSecret(_)
    ));
    let msg = case(&|d| d.service = "Bad_Name".into()).to_string();
    assert!(
        msg.contains("Bad_Name") && msg.contains("lower-case"),
        "{msg}"
    );
}

#[test]
fn faasd_function_list_parses() {
    let list: Vec<FunctionStatus> =
        serde_json::from_str(&golden("status-faasd-list.json")).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].replicas, list[0].available_replicas), (1, 1));
    // Zero values are omitted by Go: missing means 0.
    assert_eq!((list[1].replicas, list[1].available_replicas), (0, 0));
    assert_eq!(list[1].invocation_count, 42.0);
    assert_eq!(
        list[1].usage.as_ref().unwrap().total_memory_bytes,
        7_868_416.0
    );
    assert_eq!(list[1].created_at.as_deref(), Some("2024-03-25T15:08:01Z"));
}

#[test]
fn function_status_serialises_like_go_omitempty_but_always_has_labels_and_annotations() {
    let s = FunctionStatus {
        name: "f".into(),
        image: "img".into(),
        namespace: "openfaas-fn".into(),
        replicas: 2,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"name":"f","image":"img","namespace":"openfaas-fn","labels":{},"annotations":{},"replicas":2}"#
    );
}

#[test]
fn queue_request_written_by_the_openfaas_gateway() {
    let q: QueueRequest = serde_json::from_str(&golden("queue-request-go.json")).unwrap();
    assert_eq!(q.body, b"hello world");
    assert_eq!(q.method, "POST");
    assert_eq!(q.path, "/sub/path");
    assert_eq!(q.query_string, "a=1&b=two");
    assert_eq!(q.function, "figlet.openfaas-fn");
    assert_eq!(
        q.header_value("x-call-id"),
        Some("9e6f8dd8-7d3b-4d5e-b6c1-0f0c5a0a1b2c")
    );
    assert_eq!(q.header["Accept-Encoding"], vec!["gzip".to_string()]);
    assert_eq!(
        q.callback_url.as_ref().unwrap().as_str(),
        "http://request-bin:8080/callback?id=7"
    );
    // ferry writes the callback back as the same Go URL object.
    let ours: Value = serde_json::to_value(&q).unwrap();
    let theirs: Value = serde_json::from_str(&golden("queue-request-go.json")).unwrap();
    assert_eq!(ours["CallbackUrl"], theirs["CallbackUrl"]);
    assert_eq!(ours["Body"], theirs["Body"]);
    assert_eq!(ours["Header"], theirs["Header"]);
    // Empty fields are omitted.
    assert!(ours.get("QueueName").is_none() && ours.get("Annotations").is_none());
}

#[test]
fn queue_request_with_nulls_and_no_callback() {
    let q: QueueRequest = serde_json::from_str(&golden("queue-request-minimal.json")).unwrap();
    assert!(q.body.is_empty() && q.header.is_empty() && q.callback_url.is_none());
    assert_eq!(
        serde_json::to_string(&q).unwrap(),
        r#"{"Method":"GET","Function":"nodeinfo"}"#
    );
}

#[test]
fn callback_url_is_accepted_as_a_plain_string() {
    let q: QueueRequest = serde_json::from_value(
        json!({"Method":"POST","Function":"f","CallbackUrl":"https://h:1/p?q=1"}),
    )
    .unwrap();
    assert_eq!(q.callback_url, Some(CallbackUrl::new("https://h:1/p?q=1")));
    let err = serde_json::from_value::<QueueRequest>(json!({"Method":"POST","CallbackUrl":5}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CallbackUrl"), "{err}");
}

#[test]
fn queue_request_body_is_standard_base64() {
    let q = QueueRequest {
        body: vec![0xff, 0xfe, 0x00, b'a'],
        method: "PUT".into(),
        ..Default::default()
    };
    let v = serde_json::to_value(&q).unwrap();
    assert_eq!(v["Body"], "//4AYQ==");
    let back: QueueRequest = serde_json::from_value(v).unwrap();
    assert_eq!(back.body, q.body);
}

#[test]
fn scale_and_delete_requests() {
    let s: ScaleServiceRequest =
        serde_json::from_str(r#"{"serviceName":"f","replicas":3,"namespace":"openfaas-fn"}"#)
            .unwrap();
    assert_eq!((s.service_name.as_str(), s.replicas), ("f", 3));
    assert_eq!(
        serde_json::to_string(&ScaleServiceRequest {
            service_name: "f".into(),
            replicas: 0,
            namespace: String::new(),
            from_zero: false,
        })
        .unwrap(),
        r#"{"serviceName":"f","replicas":0}"#
    );
    let s: ScaleServiceRequest =
        serde_json::from_str(r#"{"serviceName":"f","replicas":1,"fromZero":true}"#).unwrap();
    assert!(s.from_zero);
    let d: DeleteFunctionRequest = serde_json::from_str(r#"{"functionName":"f"}"#).unwrap();
    assert_eq!((d.function_name.as_str(), d.namespace.as_str()), ("f", ""));
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"functionName":"f"}"#
    );
}

#[test]
fn secrets_take_value_or_base64_raw_value_and_never_debug_print_it() {
    let s: Secret = serde_json::from_str(r#"{"name":"k","value":"s3cret"}"#).unwrap();
    assert_eq!(s.bytes(), b"s3cret");
    let s: Secret = serde_json::from_str(r#"{"name":"k","rawValue":"AAEC"}"#).unwrap();
    assert_eq!(s.bytes(), &[0, 1, 2]);
    assert!(!format!("{s:?}").contains("AAEC"));
    let listed = Secret {
        name: "k".into(),
        namespace: "openfaas-fn".into(),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&listed).unwrap(),
        r#"{"name":"k","namespace":"openfaas-fn"}"#
    );
}

#[test]
fn provider_info_and_log_message_shapes() {
    let info = ProviderInfo {
        provider: "ferry-provider-docker".into(),
        orchestration: "docker".into(),
        version: VersionInfo {
            commit_message: String::new(),
            sha: "abc".into(),
            release: "0.1.0".into(),
        },
    };
    assert_eq!(
        serde_json::to_string(&info).unwrap(),
        r#"{"provider":"ferry-provider-docker","orchestration":"docker","version":{"sha":"abc","release":"0.1.0"}}"#
    );
    let faasd: ProviderInfo = serde_json::from_str(
        r#"{"provider":"faasd-ce","orchestration":"containerd","version":{"commit_message":"Release","sha":"13f03f3d","release":"0.19.6"}}"#,
    )
    .unwrap();
    assert_eq!(faasd.version.release, "0.19.6");
    let line: LogMessage = serde_json::from_str(
        r#"{"name":"figlet","namespace":"openfaas-fn","instance":"1234","timestamp":"2024-03-25T15:07:39.514516466Z","text":"Forked function"}"#,
    )
    .unwrap();
    assert_eq!(line.text, "Forked function");
}
