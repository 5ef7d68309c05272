//! The server over real HTTP on 127.0.0.1: every endpoint, the refusals (no token, wrong
//! token, bad signature, client time not trusted, body too large, slow body, failing store),
//! the metrics, and the graceful stop.

use waguard_test_support::http as client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use client::{request, Answer};
use serde_json::{json, Value};
use waguard::observe::Observed;
use waguard::{
    Batch, BusinessId, ContactKey, ContactUpdate, Guard, MemoryStore, Policy, ReadFn, ScanStream,
    SenderUpdate, Store, StoreError,
};
use waguard_server::metrics::Metrics;
use waguard_server::{Config, DynStore, Server, Tokens};

const TOKEN: &str = "test-token-0123456789";
const SECRET: &str = "app-secret";
const BIZ: &str = "100000001";
const PHONE: &str = "33612345678";

/// A server running on ephemeral loopback ports, stopped (and awaited) on drop.
struct Running {
    main: SocketAddr,
    admin: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<Result<(), String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Running {
    fn start(store: DynStore, config: Config) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let store: DynStore = Arc::new(Observed::new(store, metrics.clone()));
        let guard = Guard::new(store, Policy::default()).unwrap();
        let server = Server::with_metrics(guard, config, metrics);
        let (main, admin) = runtime.block_on(async {
            (
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            )
        });
        let (main_addr, admin_addr) = (main.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let result = waguard_server::serve(server, main, admin, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string());
            let _ = done_tx.send(result);
        });
        Running {
            main: main_addr,
            admin: admin_addr,
            stop: Some(stop),
            done: Some(done),
            runtime: Some(runtime),
        }
    }

    /// Stops the server and returns what `serve` returned (within 10 s).
    fn stop(&mut self) -> Result<(), String> {
        let _ = self.stop.take().expect("stopped once").send(());
        let result = self
            .done
            .take()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .expect("serve returns within 10 s of the shutdown signal");
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        result
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        request(self.main, "POST", path, &headers, body.as_bytes())
    }

    fn v1(&self, path: &str, body: Value) -> Answer {
        self.post(path, Some(TOKEN), &body.to_string())
    }

    fn authed(&self, method: &str, path: &str) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        request(self.main, method, path, &[("Authorization", &auth)], b"")
    }

    fn webhook(&self, body: &str, signature: Option<&str>, received_at: Option<&str>) -> Answer {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(s) = signature {
            headers.push(("X-Hub-Signature-256", s));
        }
        if let Some(at) = received_at {
            headers.push(("Waguard-Received-At", at));
        }
        request(self.main, "POST", "/webhook", &headers, body.as_bytes())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.stop.is_some() {
            let _ = self.stop();
        }
    }
}

fn config() -> Config {
    Config::new(Tokens::new([TOKEN]).unwrap())
        .with_app_secret(SECRET)
        .with_verify_token("verify-me")
        .with_trust_client_time(true)
        .with_max_body_bytes(64 * 1024)
}

fn memory() -> DynStore {
    Arc::new(MemoryStore::new())
}

fn check_body(at: &str, message: &str) -> Value {
    let mut body = json!({"from": BIZ, "to": PHONE, "message": message, "at": at});
    if message == "template" {
        body["category"] = json!("marketing");
    }
    body
}

/// An inbound text from the contact at `unix` seconds.
fn inbound(unix: i64, text: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "900000001", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": BIZ},
        "contacts": [{"profile": {"name": "X"}, "wa_id": PHONE}],
        "messages": [{"from": PHONE, "id": format!("wamid.in.{unix}"), "timestamp": unix.to_string(), "type": "text", "text": {"body": text}}]
    }}]}]})
    .to_string()
}

const T0: &str = "2026-03-01T00:00:00Z";
const T0_UNIX: i64 = 1_772_323_200;

#[test]
fn tokens_guard_every_v1_call_and_nothing_is_applied_without_one() {
    let server = Running::start(memory(), config());
    let opt_out = json!({"from": BIZ, "to": PHONE, "at": T0}).to_string();
    let no_token = server.post("/v1/opt-outs", None, &opt_out);
    assert_eq!(no_token.status, 401, "{}", no_token.body);
    assert_eq!(no_token.header("www-authenticate"), Some("Bearer"));
    assert!(no_token.json()["error"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let wrong = server.post("/v1/opt-outs", Some("test-token-012345678"), &opt_out);
    assert_eq!(wrong.status, 401);
    let basic = request(
        server.main,
        "POST",
        "/v1/opt-outs",
        &[("Authorization", &format!("Basic {TOKEN}"))],
        opt_out.as_bytes(),
    );
    assert_eq!(basic.status, 401);
    for (method, path) in [
        ("GET", "/v1/contacts/100000001/33612345678"),
        ("DELETE", "/v1/contacts/100000001/33612345678"),
    ] {
        assert_eq!(request(server.main, method, path, &[], b"").status, 401);
    }
    // None of those was applied: the contact is not opted out.
    let shown = server.authed("GET", "/v1/contacts/100000001/33612345678");
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json()["state"]["opt_all"]["out_at"], Value::Null);
    // With the token it is.
    assert_eq!(
        server.post("/v1/opt-outs", Some(TOKEN), &opt_out).status,
        204
    );
    let shown = server.authed("GET", "/v1/contacts/100000001/33612345678");
    assert_ne!(shown.json()["state"]["opt_all"]["out_at"], Value::Null);
}

#[test]
fn every_endpoint_answers_as_replay_does() {
    // Writes run as they do on sled: in `block_in_place`.
    let mut server = Running::start(memory(), config().with_blocking_store(true));
    // First contact: only a template may go.
    let first = server.v1("/v1/check", check_body(T0, "free_form"));
    assert_eq!(first.status, 200);
    assert_eq!(
        first.json(),
        json!({"decision": "template_required", "allowed": false, "reason": "first_contact", "until": null})
    );
    // Bad input: 400 with what and where, in replay's words.
    let bad = server.v1(
        "/v1/check",
        json!({"from": BIZ, "to": PHONE, "message": "free_form", "idempotency_key": "k"}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]
        .as_str()
        .unwrap()
        .contains("`check.idempotency_key`"));
    let not_json = server.post("/v1/reserve", Some(TOKEN), "{not json");
    assert_eq!(not_json.status, 400);
    assert!(not_json.json()["error"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    // A webhook with a bad signature: 401 and nothing applied.
    let body = inbound(T0_UNIX + 60, "hello");
    let forged = waguard_webhook::sign(body.as_bytes(), b"another-secret");
    let refused = server.webhook(&body, Some(&forged), Some("2026-03-01T00:01:00Z"));
    assert_eq!(refused.status, 401, "{}", refused.body);
    let unsigned = server.webhook(&body, None, Some("2026-03-01T00:01:00Z"));
    assert_eq!(unsigned.status, 401);
    let still = server.v1("/v1/check", check_body("2026-03-01T00:02:00Z", "free_form"));
    assert_eq!(still.json()["reason"], "first_contact");
    // Signed: applied, durable, answered 200 with the counts.
    let signature = waguard_webhook::sign(body.as_bytes(), SECRET.as_bytes());
    let applied = server.webhook(&body, Some(&signature), Some("2026-03-01T00:01:00Z"));
    assert_eq!(applied.status, 200, "{}", applied.body);
    let applied = applied.json();
    assert!(applied["applied"].as_u64().unwrap() >= 1, "{applied}");
    assert_eq!(applied["ignored"], 0, "{applied}");
    assert_eq!(applied["errors"], json!([]), "{applied}");
    // The same body again is applied again, and changes nothing.
    let again = server.webhook(&body, Some(&signature), Some("2026-03-01T00:01:00Z"));
    assert_eq!(again.json(), applied);
    let open = server.v1("/v1/check", check_body("2026-03-01T00:02:00Z", "free_form"));
    assert_eq!(
        open.json(),
        json!({"decision": "free_form", "allowed": true, "reason": null, "until": "2026-03-02T00:01:00Z"})
    );
    // A bad item is reported with its path while the request succeeds.
    let mut with_bad_item: Value = serde_json::from_str(&inbound(T0_UNIX + 120, "again")).unwrap();
    with_bad_item["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!("soon");
    let text = with_bad_item.to_string();
    let answer = server.webhook(
        &text,
        Some(&waguard_webhook::sign(text.as_bytes(), SECRET.as_bytes())),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let errors = answer.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0]["path"], "entry[0].changes[0].value.messages[0]",
        "{errors:?}"
    );
    // Not a webhook at all: 400.
    let page = r#"{"object": "page", "entry": []}"#;
    let not_webhook = server.webhook(
        page,
        Some(&waguard_webhook::sign(page.as_bytes(), SECRET.as_bytes())),
        None,
    );
    assert_eq!(not_webhook.status, 400, "{}", not_webhook.body);
    // The handshake.
    let ok = request(
        server.main,
        "GET",
        "/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        &[],
        b"",
    );
    assert_eq!((ok.status, ok.body.as_str()), (200, "1158201444"));
    let wrong = request(
        server.main,
        "GET",
        "/webhook?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        &[],
        b"",
    );
    assert_eq!(wrong.status, 403);
    // Reserve, then the send error in Meta's own form, then the decision it causes.
    let reserved = server.v1(
        "/v1/reserve",
        json!({"from": BIZ, "to": PHONE, "message": "free_form", "idempotency_key": "order-1", "at": "2026-03-01T00:03:00Z"}),
    );
    assert_eq!(reserved.status, 200);
    assert_eq!(reserved.json()["decision"], "free_form");
    let graph = server.v1(
        "/v1/send-errors",
        json!({"from": BIZ, "to": PHONE, "at": "2026-03-01T00:03:01Z",
               "error": {"message": "(#131026) Message undeliverable", "type": "OAuthException", "code": 131026, "fbtrace_id": "A1"}}),
    );
    assert_eq!(graph.status, 204, "{}", graph.body);
    let blocked = server.v1("/v1/check", check_body("2026-03-01T00:04:00Z", "free_form"));
    assert_eq!(blocked.json()["decision"], "blocked", "{}", blocked.body);
    assert_eq!(
        server
            .v1(
                "/v1/send-errors",
                json!({"from": BIZ, "to": PHONE, "code": 131047, "at": "2026-03-01T00:04:01Z"})
            )
            .status,
        204
    );
    // Opt-out, opt-in, clear-sender.
    let scope =
        json!({"from": BIZ, "to": PHONE, "scope": "marketing", "at": "2026-03-01T00:05:00Z"});
    assert_eq!(server.v1("/v1/opt-outs", scope.clone()).status, 204);
    assert_eq!(server.v1("/v1/opt-ins", scope).status, 204);
    assert_eq!(
        server
            .v1(
                "/v1/clear-sender",
                json!({"from": BIZ, "at": "2026-03-01T00:05:00Z"})
            )
            .status,
        204
    );
    let bad_scope = server.v1(
        "/v1/opt-outs",
        json!({"from": BIZ, "to": PHONE, "scope": "some"}),
    );
    assert_eq!(bad_scope.status, 400);
    // The contact, then its erasure by DELETE and by POST /v1/forget.
    let shown = server.authed("GET", "/v1/contacts/100000001/p:33612345678");
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(shown["key"], "100000001/p:33612345678");
    for kind in ["free_form", "marketing", "utility", "authentication"] {
        assert!(shown["decisions"][kind]["decision"].is_string(), "{shown}");
    }
    assert_eq!(
        server.authed("GET", "/v1/contacts/100000001/p:12").status,
        400
    );
    assert_eq!(
        server
            .authed("DELETE", "/v1/contacts/100000001/33612345678")
            .status,
        204
    );
    let erased = server.authed("GET", "/v1/contacts/100000001/33612345678");
    assert_ne!(erased.json()["state"]["erased_at"], Value::Null);
    assert_eq!(
        server
            .v1(
                "/v1/forget",
                json!({"from": BIZ, "user_id": "US.13491208655302741918"})
            )
            .status,
        204
    );
    // Unknown routes, and the OpenAPI document.
    assert_eq!(server.authed("GET", "/v1/teleport").status, 404);
    let doc = request(server.main, "GET", "/openapi.json", &[], b"").json();
    for path in [
        "/v1/check",
        "/v1/reserve",
        "/v1/send-errors",
        "/v1/opt-outs",
        "/v1/opt-ins",
        "/v1/forget",
        "/v1/clear-sender",
        "/v1/contacts/{business}/{contact}",
        "/webhook",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The admin listener: metrics of what happened, health; the main one does not serve them.
    let metrics = request(server.admin, "GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    for line in [
        "waguard_http_requests_total{route=\"/v1/check\",status=\"200\"} 4",
        "waguard_http_requests_total{route=\"/webhook\",status=\"401\"} 2",
        "waguard_decisions_total{operation=\"check\",decision=\"blocked\",reason=\"undeliverable\"} 1",
        "waguard_send_errors_total{code=\"131026\",effect=\"undeliverable\"} 1",
        "waguard_webhook_items_total{outcome=\"applied\"} ",
        "waguard_webhook_items_total{outcome=\"refused\"} 1",
        "waguard_store_operation_seconds_count{operation=\"apply_batch\"} ",
        "waguard_store_operation_seconds_count{operation=\"load\"} ",
        "waguard_store_operation_seconds_bucket{operation=\"update\",le=\"+Inf\"}",
    ] {
        assert!(metrics.body.contains(line), "no `{line}` in:\n{}", metrics.body);
    }
    assert_eq!(
        request(server.admin, "GET", "/healthz", &[], b"").status,
        200
    );
    assert_eq!(
        request(server.main, "GET", "/metrics", &[], b"").status,
        404
    );
    assert_eq!(server.stop(), Ok(()));
}

#[test]
fn client_time_is_refused_unless_trusted() {
    let server = Running::start(memory(), config().with_trust_client_time(false));
    let with_at = server.v1("/v1/check", check_body(T0, "free_form"));
    assert_eq!(with_at.status, 400);
    assert!(with_at.json()["error"]
        .as_str()
        .unwrap()
        .contains("--trust-client-time"));
    let body = inbound(T0_UNIX, "hello");
    let signature = waguard_webhook::sign(body.as_bytes(), SECRET.as_bytes());
    let dated = server.webhook(&body, Some(&signature), Some(T0));
    assert_eq!(dated.status, 400);
    assert!(dated.body.contains("--trust-client-time"));
    let now = server.v1(
        "/v1/check",
        json!({"from": BIZ, "to": PHONE, "message": "free_form"}),
    );
    assert_eq!(now.status, 200);
    assert_eq!(now.json()["reason"], "first_contact");
}

#[test]
fn bodies_over_the_limit_answer_413_and_slow_ones_408() {
    let server = Running::start(
        memory(),
        config()
            .with_max_body_bytes(1024)
            .with_request_timeout(Duration::from_millis(500)),
    );
    let big = json!({"from": BIZ, "to": PHONE, "message": "free_form", "idempotency_key": "x".repeat(2000)});
    assert_eq!(server.v1("/v1/check", big).status, 413);
    let big_webhook = format!(
        "{{\"object\": \"whatsapp_business_account\", \"entry\": [], \"pad\": \"{}\"}}",
        "x".repeat(2000)
    );
    assert_eq!(
        server
            .webhook(
                &big_webhook,
                Some(&waguard_webhook::sign(
                    big_webhook.as_bytes(),
                    SECRET.as_bytes()
                )),
                None
            )
            .status,
        413
    );
    // A body announced as 100 bytes of which 10 arrive: answered 408 once the timeout passes.
    use std::io::Write;
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(server.main).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"from\": 1"
    )
    .unwrap();
    let answer = client::read_answer(&mut stream);
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    // Headers that never end: the connection is closed once the timeout passes.
    use std::io::Read;
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(server.main).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bear"
    )
    .unwrap();
    let mut rest = Vec::new();
    let closed = stream.read_to_end(&mut rest);
    assert!(
        closed.is_ok() && started.elapsed() < Duration::from_secs(5),
        "the connection stayed open {:?} ({closed:?})",
        started.elapsed()
    );
}

/// A store whose every operation fails, as a database that went away does.
struct Down;

fn down(operation: &'static str) -> StoreError {
    StoreError::backend(operation, None, "connection refused")
}

#[async_trait]
impl Store for Down {
    async fn update(&self, _: &ContactKey, _: &mut ContactUpdate<'_>) -> Result<(), StoreError> {
        Err(down("update"))
    }
    async fn update_sender(
        &self,
        _: &BusinessId,
        _: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        Err(down("update_sender"))
    }
    async fn load_with(&self, _: &ContactKey, _: &mut ReadFn<'_>) -> Result<(), StoreError> {
        Err(down("load"))
    }
    async fn load_sender(&self, _: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        Err(down("load_sender"))
    }
    async fn remove(&self, _: &ContactKey) -> Result<bool, StoreError> {
        Err(down("remove"))
    }
    fn scan(&self) -> ScanStream<'_> {
        Box::pin(futures_util::stream::once(async { Err(down("scan")) }))
    }
    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        Err(down("all_senders"))
    }
    async fn apply_batch(&self, _: &mut Batch<'_>) -> Result<(), StoreError> {
        Err(down("apply_batch"))
    }
    async fn flush(&self) -> Result<(), StoreError> {
        Err(down("flush"))
    }
}

#[test]
fn a_store_that_cannot_answer_is_503() {
    let mut server = Running::start(Arc::new(Down), config());
    let check = server.v1("/v1/check", check_body(T0, "free_form"));
    assert_eq!(check.status, 503, "{}", check.body);
    assert!(check.json()["error"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    let body = inbound(T0_UNIX, "hello");
    let signature = waguard_webhook::sign(body.as_bytes(), SECRET.as_bytes());
    assert_eq!(server.webhook(&body, Some(&signature), None).status, 503);
    assert_eq!(
        request(server.admin, "GET", "/healthz", &[], b"").status,
        503
    );
    // Bad input is still 400: the body is read before the store is asked.
    assert_eq!(
        server
            .v1("/v1/check", json!({"from": BIZ, "message": "free_form"}))
            .status,
        400
    );
    let metrics = request(server.admin, "GET", "/metrics", &[], b"").body;
    assert!(
        metrics.contains("waguard_store_failures_total{operation=\"check\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waguard_store_errors_total{operation=\"load\"} 1"),
        "{metrics}"
    );
    // The final flush fails too, and serve says so.
    let stopped = server.stop();
    assert!(stopped.unwrap_err().contains("flushed"));
}
