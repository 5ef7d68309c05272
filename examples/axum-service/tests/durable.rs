//! The service as `main` builds it (`AppState::from_config`) on a sled store: a webhook
//! acknowledged with 200 is in the store after the service is gone (rule H4).

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use waguard::{Clock, ContactKey, Guard, Policy, SystemClock};
use waguard_example_axum::{app, AppState, Config};

#[tokio::test]
async fn an_acknowledged_webhook_survives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("waguard.db");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "window_margin = \"5m\"\n").unwrap();
    let vars = [
        ("WAGUARD_APP_SECRET", "s3cret".to_owned()),
        ("WAGUARD_VERIFY_TOKEN", "verify".to_owned()),
        ("WAGUARD_ACCESS_TOKEN", "token".to_owned()),
        // Never called by this test; a closed loopback port.
        ("WAGUARD_GRAPH_BASE_URL", "http://127.0.0.1:9".to_owned()),
        ("WAGUARD_STORE", format!("sled:{}", db.display())),
        ("WAGUARD_POLICY", policy.display().to_string()),
        ("WAGUARD_LISTEN", "127.0.0.1:0".to_owned()),
    ];
    let config = Config::from_vars(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();

    let state = AppState::from_config(&config).await.unwrap();
    assert_eq!(
        state.guard().policy().window_margin,
        Duration::from_secs(300)
    );
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let at = SystemClock.now().unix_nanos() / 1_000_000_000 - 60;
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "messages": [{"from": "33612345678", "id": "wamid.in1", "timestamp": at.to_string(),
                          "type": "text", "text": {"body": "hello"}}]
        }}]}]
    })
    .to_string();
    let response = http
        .post(format!("{base}/webhook"))
        .header(
            "x-hub-signature-256",
            waguard_webhook::sign(body.as_bytes(), b"s3cret"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Stop the service and let go of the store.
    drop(http);
    stop.send(()).unwrap();
    server.await.unwrap();

    // Reopen the directory: the acknowledged event is there.
    let store = waguard_sled::SledStore::open(&db).unwrap();
    let guard = Guard::new(store, Policy::default()).unwrap();
    let key: ContactKey = "106540352242922/p:33612345678".parse().unwrap();
    let (state, _) = guard.state(&key).await.unwrap();
    assert_eq!(
        state.last_inbound.map(|t| t.unix_nanos() / 1_000_000_000),
        Some(at)
    );
}
