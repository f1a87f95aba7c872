use std::collections::HashMap;

use super::*;

/// Computed independently: Python's `hmac.new(b"test-key", b'1700000000.{"ok":true}',
/// hashlib.sha256).hexdigest()`, and `openssl dgst -sha256 -hmac test-key` agrees.
const VECTOR: &str = "5091af1dccc89045d27b1c88722ee77bf52cc6111d54f0c7df43392e4fcf20da";
/// The same key over `1700000000.` (an empty body).
const EMPTY_BODY: &str = "3ef52808c247f2d0327539447d65bce464e91462b457af5cfe7aefb16adaba3a";

fn key(text: &str) -> SigningKey {
    SigningKey::from_text(text).expect("a key")
}

#[test]
fn signatures_match_known_vectors() {
    let k = key("test-key");
    assert_eq!(
        k.sign(1_700_000_000, br#"{"ok":true}"#),
        format!("v1={VECTOR}")
    );
    assert_eq!(k.sign(1_700_000_000, b""), format!("v1={EMPTY_BODY}"));
    assert_ne!(k.sign(1_700_000_001, b""), format!("v1={EMPTY_BODY}"));
    assert_ne!(
        key("other").sign(1_700_000_000, b""),
        format!("v1={EMPTY_BODY}")
    );
}

#[test]
fn the_first_non_empty_line_signs_and_lines_are_trimmed() {
    let rotated = key("\n  test-key \r\n\n old-key\n");
    assert_eq!(rotated.listed(), 2);
    assert_eq!(
        rotated.sign(1_700_000_000, br#"{"ok":true}"#),
        format!("v1={VECTOR}")
    );
    assert_eq!(key("test-key").listed(), 1);
    assert!(SigningKey::from_text(" \n\t\n").is_none());
}

#[test]
fn headers_carry_the_timestamp_and_the_signature() {
    let mut headers = HeaderMap::new();
    key("test-key").sign_headers(&mut headers, 1_700_000_000, b"");
    assert_eq!(headers[TIMESTAMP_HEADER], "1700000000");
    assert_eq!(
        headers[SIGNATURE_HEADER],
        format!("v1={EMPTY_BODY}").as_str()
    );
}

#[test]
fn debug_hides_the_key() {
    let shown = format!("{:?}", key("topsecret"));
    assert!(!shown.contains("topsecret"), "{shown}");
}

#[test]
fn the_key_file_is_explicit_or_in_the_secret_folder() {
    let none = HashMap::<&str, &str>::new();
    assert_eq!(
        KeyFile::from_env(&none, Path::new("/run/secrets")),
        KeyFile {
            path: PathBuf::from("/run/secrets/callback-signing-key"),
            explicit: false
        }
    );
    let set: HashMap<&str, &str> = [("callback_signing_key_file", "/etc/ferry/key")].into();
    assert_eq!(
        KeyFile::from_env(&set, Path::new("/run/secrets")),
        KeyFile {
            path: PathBuf::from("/etc/ferry/key"),
            explicit: true
        }
    );
}

#[test]
fn loading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let file = |explicit| KeyFile {
        path: path.clone(),
        explicit,
    };
    // Missing: unsigned at the default path, an error at an explicit one.
    assert!(load(&file(false)).unwrap().is_none());
    let err = load(&file(true)).unwrap_err();
    assert!(matches!(err, WorkerError::SigningKey(_)), "{err}");
    assert!(err.to_string().contains("key"), "names the file: {err}");
    // Present but empty: an error either way.
    std::fs::write(&path, "\n  \n").unwrap();
    for explicit in [false, true] {
        let err = load(&file(explicit)).unwrap_err();
        assert!(matches!(err, WorkerError::SigningKey(_)), "{err}");
    }
    std::fs::write(&path, "test-key\n").unwrap();
    for explicit in [false, true] {
        let loaded = load(&file(explicit)).unwrap().expect("a key");
        assert_eq!(loaded.sign(1_700_000_000, b""), format!("v1={EMPTY_BODY}"));
    }
    // A folder where the file should be cannot be read.
    let err = load(&KeyFile {
        path: dir.path().to_path_buf(),
        explicit: false,
    })
    .unwrap_err();
    assert!(matches!(err, WorkerError::SigningKey(_)), "{err}");
}
