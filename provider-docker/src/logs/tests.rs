use bollard::container::LogOutput;

use super::lines::Splitter;
use super::*;

fn query(pairs: &[(&str, &str)]) -> Result<LogQuery, ProviderError> {
    let q: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogQuery::parse(&q)
}

#[test]
fn query_parameters() {
    let q = query(&[("name", "echo")]).unwrap();
    assert_eq!(q.function.to_string(), "echo.openfaas-fn");
    assert_eq!(
        (q.tail, q.since, q.follow, q.instance),
        (None, None, false, None)
    );

    let q = query(&[
        ("name", "echo"),
        ("namespace", "team"),
        ("tail", "5"),
        ("since", "2024-05-01T12:00:00.5Z"),
        ("follow", "true"),
        ("instance", "abc123"),
    ])
    .unwrap();
    assert_eq!(q.function.to_string(), "echo.team");
    assert_eq!(q.tail, Some(5));
    assert_eq!(q.since.unwrap().unix_timestamp(), 1_714_564_800);
    assert!(q.follow);
    assert!(q.wants("abc1234567890") && !q.wants("def"));
    assert_eq!(
        query(&[("name", "echo.team")])
            .unwrap()
            .function
            .to_string(),
        "echo.team"
    );
    for t in ["0", "-1"] {
        assert_eq!(
            query(&[("name", "e"), ("tail", t)]).unwrap().tail,
            None,
            "{t}"
        );
    }
    assert!(query(&[("name", "e"), ("follow", "1")]).unwrap().follow);
    assert!(!query(&[("name", "e"), ("follow", "False")]).unwrap().follow);
}

#[test]
fn bad_parameters_are_400_naming_them() {
    for (pairs, mentions) in [
        (vec![], "name"),
        (vec![("name", "Bad_Name")], "Bad_Name"),
        (vec![("name", "e"), ("tail", "ten")], "tail"),
        (vec![("name", "e"), ("since", "yesterday")], "since"),
        (vec![("name", "e"), ("follow", "yes please")], "follow"),
    ] {
        let e = query(&pairs).unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains(mentions), "{e}");
    }
}

fn splitter() -> Splitter {
    Splitter {
        frames: Box::pin(futures_util::stream::empty()),
        partial: [None, None],
        ready: VecDeque::new(),
        done: false,
    }
}

fn out(s: &str) -> LogOutput {
    LogOutput::StdOut {
        message: Bytes::from(s.to_string()),
    }
}

fn err(s: &str) -> LogOutput {
    LogOutput::StdErr {
        message: Bytes::from(s.to_string()),
    }
}

#[test]
fn frames_become_lines() {
    let mut s = splitter();
    s.push(out("2024-05-01T12:00:00.000000001Z hello\n"));
    s.push(err("2024-05-01T12:00:01.5Z part one, "));
    s.push(out("2024-05-01T12:00:02Z windows\r\n"));
    s.push(err("2024-05-01T12:00:03Z part two\n"));
    s.push(out("2024-05-01T12:00:04Z unfinished"));
    s.finish();
    let lines: Vec<(String, String)> = s
        .ready
        .iter()
        .map(|l| (l.timestamp.clone(), l.text.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("2024-05-01T12:00:00.000000001Z", "hello"),
            ("2024-05-01T12:00:02Z", "windows"),
            ("2024-05-01T12:00:01.5Z", "part one, part two"),
            ("2024-05-01T12:00:04Z", "unfinished"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(s.ready[0].at.nanosecond(), 1);
}

#[test]
fn messages_are_one_json_line() {
    let f = FunctionRef::resolve("echo", None).unwrap();
    let line = Line {
        at: OffsetDateTime::UNIX_EPOCH,
        timestamp: "1970-01-01T00:00:00Z".into(),
        text: "say \"hi\"".into(),
    };
    let bytes = encode(&f, "0123456789abcdef", line);
    assert!(bytes.ends_with(b"}\n"));
    let m: LogMessage = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        m,
        LogMessage {
            name: "echo".into(),
            namespace: "openfaas-fn".into(),
            instance: "0123456789ab".into(),
            timestamp: "1970-01-01T00:00:00Z".into(),
            text: "say \"hi\"".into(),
        }
    );
}
