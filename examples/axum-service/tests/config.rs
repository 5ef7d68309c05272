//! Configuration from the environment: every missing or bad value is named; the store choices
//! open; a policy file is read and validated.

use std::collections::HashMap;

use waguard_example_axum::{load_policy, Config, ConfigError, StoreSpec};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut map: HashMap<String, String> = [
        ("WAGUARD_APP_SECRET", "s3cret"),
        ("WAGUARD_VERIFY_TOKEN", "verify"),
        ("WAGUARD_ACCESS_TOKEN", "token"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        map.insert(k.to_string(), v.to_string());
    }
    move |name| map.get(name).cloned()
}

#[test]
fn defaults() {
    let config = Config::from_vars(env(&[])).unwrap();
    assert_eq!(config.store, StoreSpec::Sled("./waguard.db".into()));
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.graph.base_url, "https://graph.facebook.com");
    assert_eq!(config.graph.version, "v23.0");
    assert!(config.policy.is_none());
    // Secrets never show in debug output.
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("token\""),
        "{debug}"
    );
}

#[test]
fn every_value_is_read() {
    let config = Config::from_vars(env(&[
        ("WAGUARD_GRAPH_BASE_URL", "http://127.0.0.1:9999/"),
        ("WAGUARD_GRAPH_VERSION", "v24.0"),
        ("WAGUARD_STORE", "sled:/var/lib/waguard"),
        ("WAGUARD_POLICY", "/etc/waguard/policy.toml"),
        ("WAGUARD_LISTEN", "0.0.0.0:3000"),
    ]))
    .unwrap();
    assert_eq!(
        config.graph.messages_url("1"),
        "http://127.0.0.1:9999/v24.0/1/messages"
    );
    assert_eq!(config.store, StoreSpec::Sled("/var/lib/waguard".into()));
    assert_eq!(config.listen.port(), 3000);
}

#[test]
fn missing_and_bad_values_are_named() {
    for var in [
        "WAGUARD_APP_SECRET",
        "WAGUARD_VERIFY_TOKEN",
        "WAGUARD_ACCESS_TOKEN",
    ] {
        let err = Config::from_vars(env(&[(var, " ")])).unwrap_err();
        assert!(
            matches!(err, ConfigError::Missing { var: v, .. } if v == var),
            "{err}"
        );
        assert!(err.to_string().starts_with(var), "{err}");
    }
    for (var, value) in [
        ("WAGUARD_STORE", "redis://x"),
        ("WAGUARD_STORE", "sled:"),
        ("WAGUARD_STORE", "postgres:mysql://x"),
        ("WAGUARD_GRAPH_BASE_URL", "graph.facebook.com"),
        ("WAGUARD_GRAPH_VERSION", "23"),
        ("WAGUARD_LISTEN", "localhost"),
    ] {
        let err = Config::from_vars(env(&[(var, value)])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var),
            "{var}={value}: {err}"
        );
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn policy_files_in_toml_and_json_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("policy.toml");
    std::fs::write(&toml, "window_margin = \"10m\"\nmax_attempts = 5\n").unwrap();
    let policy = load_policy(&toml).unwrap();
    assert_eq!(policy.window_margin.as_secs(), 600);
    assert_eq!(policy.max_attempts, 5);

    let json = dir.path().join("policy.json");
    std::fs::write(&json, r#"{"require_opt_in": true}"#).unwrap();
    assert!(load_policy(&json).unwrap().require_opt_in);

    let unknown = dir.path().join("bad.toml");
    std::fs::write(&unknown, "windw_margin = \"10m\"\n").unwrap();
    let err = load_policy(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("WAGUARD_POLICY") && err.contains("windw_margin"),
        "{err}"
    );

    let missing = dir.path().join("absent.toml");
    let config = Config::from_vars(env(&[("WAGUARD_POLICY", missing.to_str().unwrap())])).unwrap();
    let err = config.load_policy().unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
}

#[tokio::test]
async fn memory_and_sled_stores_open() {
    StoreSpec::Memory.open().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::parse(&format!("sled:{}", dir.path().join("db").display())).unwrap();
    let store = spec.open().await.unwrap();
    store.flush().await.unwrap();
}
