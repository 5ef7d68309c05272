//! The service over real HTTP on 127.0.0.1, against a fake Graph API (an in-process axum
//! server on 127.0.0.1). The guard's clock is a `ManualClock`: no test sleeps.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use waguard::{
    Batch, BusinessId, Clock, ContactKey, ContactUpdate, Guard, ManualClock, MemoryStore, Policy,
    ReadFn, Records, RegistryKey, ScanStream, SenderUpdate, Store, StoreError, Timestamp,
};
use waguard_example_axum::{app, AppState, GraphApi, GraphConfig};

const BUSINESS: &str = "106540352242922";
const PHONE: &str = "33612345678";
const SECRET: &str = "app-secret-for-tests";
const VERIFY: &str = "verify-token-for-tests";
const TOKEN: &str = "access-token-for-tests";

/// One request the fake Graph API received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: String,
    body: Value,
}

#[derive(Default)]
struct FakeState {
    seen: Vec<Seen>,
    /// Scripted answers, used in order; when empty, a success.
    script: VecDeque<(StatusCode, Value)>,
}

/// A fake Cloud API: records each request and answers from its script.
#[derive(Clone, Default)]
struct FakeGraph {
    state: Arc<Mutex<FakeState>>,
}

impl FakeGraph {
    fn answer_next(&self, status: StatusCode, body: Value) {
        self.state.lock().unwrap().script.push_back((status, body));
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn fake_messages(
    State(fake): State<FakeGraph>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut state = fake.state.lock().unwrap();
    state.seen.push(Seen {
        path: format!("/{version}/{phone_number_id}/messages"),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.clone(),
    });
    let n = state.seen.len();
    match state.script.pop_front() {
        Some((status, answer)) => (status, Json(answer)),
        None => (
            StatusCode::OK,
            Json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": format!("wamid.fake{n}")}]
            })),
        ),
    }
}

/// A store that can be told to fail, to see the service answer 500.
struct FlakyStore {
    inner: MemoryStore,
    fail: AtomicBool,
}

impl FlakyStore {
    fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::backend(operation, None, "disk on fire (test)"))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for FlakyStore {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.check("update")?;
        self.inner.update(key, update).await
    }
    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.check("update_sender")?;
        self.inner.update_sender(business, update).await
    }
    async fn load(&self, key: &ContactKey) -> Result<Records, StoreError> {
        self.check("load")?;
        self.inner.load(key).await
    }
    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        self.check("load")?;
        self.inner.load_with(key, read).await
    }
    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        self.check("load_sender")?;
        self.inner.load_sender(business).await
    }
    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        self.check("remove")?;
        self.inner.remove(key).await
    }
    fn scan(&self) -> ScanStream<'_> {
        self.inner.scan()
    }
    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        self.inner.all_senders().await
    }
    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        self.check("apply_batch")?;
        self.inner.apply_batch(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.check("flush")?;
        self.inner.flush().await
    }
    async fn update_registry(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.check("update_registry")?;
        self.inner.update_registry(key, update).await
    }
    async fn load_registry(&self, key: &RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.check("load_registry")?;
        self.inner.load_registry(key).await
    }
    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.check("registry_records")?;
        self.inner.registry_records().await
    }
}

/// The service and the fake Graph API, both on 127.0.0.1 with ephemeral ports.
struct Harness {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    graph: FakeGraph,
    store: Arc<FlakyStore>,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn loopback_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn start_time() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap()
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(Policy::default()).await
    }

    async fn start_with(policy: Policy) -> Self {
        let graph = FakeGraph::default();
        let graph_base = serve(
            Router::new()
                .route("/{version}/{phone_number_id}/messages", post(fake_messages))
                .with_state(graph.clone()),
        )
        .await;

        let clock = Arc::new(ManualClock::new(start_time()));
        let store = Arc::new(FlakyStore {
            inner: MemoryStore::new(),
            fail: AtomicBool::new(false),
        });
        let dyn_store: Arc<dyn Store> = store.clone();
        let guard = Guard::with_clock(dyn_store, policy, clock.clone()).unwrap();
        let api = GraphApi::with_client(
            GraphConfig {
                base_url: graph_base,
                version: "v23.0".into(),
                access_token: TOKEN.into(),
            },
            loopback_client(),
        );
        let state = AppState::new(guard, api, SECRET.as_bytes(), VERIFY);
        let base = serve(app(state)).await;
        Harness {
            base,
            http: loopback_client(),
            clock,
            graph,
            store,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn send(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/send", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// A text with a utility template as fallback, to PHONE.
    async fn send_text_or_template(&self) -> (StatusCode, Value) {
        self.send(json!({
            "business": BUSINESS,
            "to": PHONE,
            "text": "Your parcel is on its way",
            "template": {"name": "order_update", "language": "en_US", "category": "utility"}
        }))
        .await
    }

    async fn webhook(&self, body: &[u8], signature: Option<&str>) -> (StatusCode, String) {
        let mut request = self
            .http
            .post(format!("{}/webhook", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn signed_webhook(&self, body: &[u8]) -> (StatusCode, String) {
        let signature = waguard_webhook::sign(body, SECRET.as_bytes());
        self.webhook(body, Some(&signature)).await
    }

    async fn contact(&self, contact: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/contacts/{BUSINESS}/{contact}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn unix(t: Timestamp) -> i64 {
    t.unix_nanos() / 1_000_000_000
}

/// A `messages` webhook: one inbound text from PHONE at `at`.
fn inbound(text: &str, at: Timestamp) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": BUSINESS},
            "contacts": [{"profile": {"name": "Camille"}, "wa_id": PHONE}],
            "messages": [{"from": PHONE, "id": format!("wamid.in{}", unix(at)),
                          "timestamp": unix(at).to_string(), "type": "text",
                          "text": {"body": text}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

/// A `failed` status for `wamid` with `code`, at `at`.
fn failed_status(wamid: &str, code: u32, at: Timestamp) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": BUSINESS},
            "statuses": [{"id": wamid, "status": "failed", "timestamp": unix(at).to_string(),
                          "recipient_id": PHONE,
                          "errors": [{"code": code, "title": "Re-engagement message"}]}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn get_webhook_answers_the_handshake_only_with_the_verify_token() {
    let h = Harness::start().await;
    let get = |query: &str| {
        let url = format!("{}/webhook?{query}", h.base);
        let http = h.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, body) = get(&format!(
        "hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "1158201444");

    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY}&hub.challenge=1"),
        format!("hub.verify_token={VERIFY}&hub.challenge=1"),
        String::new(),
    ] {
        let (status, _) = get(&query).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}");
    }
}

#[tokio::test]
async fn first_contact_goes_as_a_template_and_text_alone_is_refused() {
    let h = Harness::start().await;

    // Text alone: the guard refuses (first contact), nothing reaches Meta.
    let (status, body) = h
        .send(json!({"business": BUSINESS, "to": "+33 6 12 34 56 78", "text": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["decision"]["decision"], "template_required");
    assert_eq!(body["decision"]["reason"], "first_contact");
    assert_eq!(body["decision"]["allowed"], false);
    assert!(h.graph.seen().is_empty());

    // Text with a template: the template goes.
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(body["template"], "order_update");
    assert_eq!(body["decision"]["decision"], "template_required");
    assert_eq!(body["decision"]["reason"], "first_contact");
    assert_eq!(body["decision"]["allowed"], true);
    assert_eq!(body["wamid"], "wamid.fake1");
    assert_eq!(body["key"], format!("{BUSINESS}/p:{PHONE}"));

    let seen = h.graph.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("/v23.0/{BUSINESS}/messages"));
    assert_eq!(seen[0].authorization, format!("Bearer {TOKEN}"));
    assert_eq!(seen[0].body["messaging_product"], "whatsapp");
    assert_eq!(seen[0].body["to"], PHONE);
    assert_eq!(seen[0].body["type"], "template");
    assert_eq!(seen[0].body["template"]["name"], "order_update");
    assert_eq!(seen[0].body["template"]["language"]["code"], "en_US");

    // The template was recorded as sent (W3): the contact view says so.
    let (status, view) = h.contact(&format!("p:{PHONE}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"]["last_template_at"], start_time().to_string());
    assert_eq!(view["decisions"]["free_form"]["reason"], "awaiting_reply");
}

#[tokio::test]
async fn a_signed_inbound_opens_the_window_and_the_next_send_is_free_form() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(60));
    let (status, body) = h.signed_webhook(&inbound("Where is my parcel?", at)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["events"], 1);

    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "text");
    assert_eq!(body["decision"]["decision"], "free_form");
    let closes_at = at.saturating_add(Duration::from_secs(24 * 3600));
    assert_eq!(body["decision"]["until"], closes_at.to_string());
    let seen = h.graph.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["type"], "text");
    assert_eq!(seen[0].body["text"]["body"], "Your parcel is on its way");

    let (_, view) = h.contact(PHONE).await;
    assert_eq!(view["state"]["last_inbound"], at.to_string());
    assert_eq!(view["decisions"]["free_form"]["decision"], "free_form");
    assert_eq!(view["decisions"]["marketing"]["allowed"], true);

    // 24 hours later the window has closed: back to the template (no sleeping: the clock moves).
    h.clock.set(closes_at);
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(body["decision"]["reason"], "window_expired");
}

#[tokio::test]
async fn a_131047_answer_from_the_cloud_api_makes_the_next_send_a_template() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(3600));
    assert_eq!(
        h.signed_webhook(&inbound("hello", at)).await.0,
        StatusCode::OK
    );

    // Our arithmetic says the window is open; Meta says otherwise.
    h.graph.answer_next(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
                         "code": 131047, "error_data": {"messaging_product": "whatsapp"},
                         "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}),
    );
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["tried"], "text");
    assert_eq!(body["code"], 131047);
    assert_eq!(body["effect"], "window_closed");
    assert_eq!(body["retryable"], true);

    // The next send falls back to the template (W4).
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(body["decision"]["reason"], "window_closed_by_platform");
    let seen = h.graph.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body["type"], "template");
}

#[tokio::test]
async fn a_131047_failed_status_webhook_makes_the_next_send_a_template() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(3600));
    assert_eq!(
        h.signed_webhook(&inbound("hello", at)).await.0,
        StatusCode::OK
    );
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "text");
    let wamid = body["wamid"].as_str().unwrap().to_owned();

    // Later, the status webhook says that message failed with 131047.
    h.clock.advance(Duration::from_secs(30));
    let (status, _) = h
        .signed_webhook(&failed_status(&wamid, 131047, h.now()))
        .await;
    assert_eq!(status, StatusCode::OK);

    h.clock.advance(Duration::from_secs(30));
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(body["decision"]["reason"], "window_closed_by_platform");
}

#[tokio::test]
async fn a_stop_inbound_blocks_everything() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(60));
    assert_eq!(
        h.signed_webhook(&inbound("stop!", at)).await.0,
        StatusCode::OK
    );

    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["decision"]["decision"], "blocked");
    assert_eq!(body["decision"]["reason"], "opted_out");
    assert_eq!(body["decision"]["until"], Value::Null);
    let (status, body) = h
        .send(json!({"business": BUSINESS, "to": PHONE,
                     "template": {"name": "promo", "language": "en", "category": "marketing"}}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["tried"], "template");
    assert_eq!(body["decision"]["reason"], "opted_out");
    assert!(h.graph.seen().is_empty(), "nothing reached the Cloud API");

    let (_, view) = h.contact(PHONE).await;
    for kind in ["free_form", "marketing", "utility", "authentication"] {
        assert_eq!(view["decisions"][kind]["reason"], "opted_out", "{kind}");
    }
}

#[tokio::test]
async fn a_bad_or_missing_signature_gets_401_and_changes_nothing() {
    let h = Harness::start().await;
    let body = inbound("hello", h.now().saturating_sub(Duration::from_secs(60)));
    let (_, before) = h.contact(PHONE).await;

    let wrong = waguard_webhook::sign(&body, b"another-app-secret");
    let mut tampered = body.clone();
    let i = tampered.len() - 10;
    tampered[i] = b' ';
    let good_for_original = waguard_webhook::sign(&body, SECRET.as_bytes());
    for (body, signature) in [
        (&body, None),
        (&body, Some(wrong.as_str())),
        (&body, Some("sha256=not-hex")),
        (&tampered, Some(good_for_original.as_str())),
    ] {
        let (status, answer) = h.webhook(body, signature).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}: {answer}");
    }

    let (_, after) = h.contact(PHONE).await;
    assert_eq!(before["state"], after["state"]);
    assert_eq!(after["state"]["last_inbound"], Value::Null);
    let (status, body) = h
        .send(json!({"business": BUSINESS, "to": PHONE, "text": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["decision"]["reason"], "first_contact");
}

#[tokio::test]
async fn bad_items_are_acknowledged_and_the_good_ones_applied() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(60));
    let mut payload: Value = serde_json::from_slice(&inbound("hello", at)).unwrap();
    // A second message whose sender is not a phone number (K1): skipped, the first applied.
    let mut bad = payload["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    bad["from"] = json!("not-a-number");
    payload["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap()
        .push(bad);
    let (status, body) = h.signed_webhook(payload.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["events"], 1);
    assert_eq!(body["skipped"], 1);
    let (_, view) = h.contact(PHONE).await;
    assert_eq!(view["state"]["last_inbound"], at.to_string());
}

#[tokio::test]
async fn a_store_failure_answers_500_so_meta_retries() {
    let h = Harness::start().await;
    let body = inbound("hello", h.now().saturating_sub(Duration::from_secs(60)));
    h.store.fail.store(true, Ordering::SeqCst);
    let (status, _) = h.signed_webhook(&body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(h.graph.seen().is_empty(), "no send without a decision");

    // Meta's retry, once the store is back, is applied.
    h.store.fail.store(false, Ordering::SeqCst);
    let (status, _) = h.signed_webhook(&body).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "text");
}

#[tokio::test]
async fn a_5xx_without_a_code_is_fed_back_as_code_1_and_lifts_after_the_penalty() {
    let h = Harness::start().await;
    h.graph.answer_next(
        StatusCode::SERVICE_UNAVAILABLE,
        json!("upstream unavailable"),
    );
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], 1);
    assert_eq!(body["effect"], "service_unavailable");

    // The business number is paused for the service penalty (S2, 60 s by default).
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["decision"]["reason"], "service_unavailable");
    let until = h.now().saturating_add(Duration::from_secs(60));
    assert_eq!(body["decision"]["until"], until.to_string());

    h.clock.set(until);
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(h.graph.seen().len(), 2);
}

#[tokio::test]
async fn an_undeliverable_answer_is_not_retryable_and_blocks_the_contact() {
    let h = Harness::start().await;
    h.graph.answer_next(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": "Message undeliverable", "code": 131026}}),
    );
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["effect"], "undeliverable");
    assert_eq!(body["retryable"], false);
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["decision"]["reason"], "undeliverable");
}

#[tokio::test]
async fn user_ids_and_groups_are_addressed_as_meta_expects() {
    let h = Harness::start().await;
    let (status, body) = h
        .send(
            json!({"business": BUSINESS, "user_id": "FR.13491208655302741918",
                     "template": {"name": "hello", "language": "fr", "category": "utility"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .send(
            json!({"business": BUSINESS, "group_id": "120363025246125486",
                     "template": {"name": "hello", "language": "fr", "category": "utility",
                                  "components": [{"type": "body", "parameters": []}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.graph.seen();
    assert_eq!(seen[0].body["recipient"], "FR.13491208655302741918");
    assert_eq!(seen[0].body["recipient_type"], "individual");
    assert!(seen[0].body.get("to").is_none());
    assert_eq!(seen[1].body["recipient_type"], "group");
    assert_eq!(seen[1].body["to"], "120363025246125486");
    assert_eq!(seen[1].body["template"]["components"][0]["type"], "body");

    let (status, view) = h.contact("u:FR.13491208655302741918").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["key"], format!("{BUSINESS}/u:FR.13491208655302741918"));
}

#[tokio::test]
async fn bad_requests_are_400_with_the_field_named() {
    let h = Harness::start().await;
    for (request, needle) in [
        (json!({"business": BUSINESS, "text": "hi"}), "no contact"),
        (
            json!({"business": BUSINESS, "to": PHONE}),
            "nothing to send",
        ),
        (
            json!({"business": BUSINESS, "to": "0033612345678", "text": "hi"}),
            "`to`",
        ),
        (
            json!({"business": "abc", "to": PHONE, "text": "hi"}),
            "`business`",
        ),
        (
            json!({"business": BUSINESS, "to": PHONE, "user_id": "FR.1", "text": "hi"}),
            "exactly one",
        ),
        (
            json!({"business": BUSINESS, "to": PHONE, "template": {"name": "x", "language": "en", "category": "promo"}}),
            "promo",
        ),
    ] {
        let (status, body) = h.send(request.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{request}: {message}");
    }
    let (status, body) = h.contact("p:123").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(h.graph.seen().is_empty());
}

#[tokio::test]
async fn the_policy_is_the_one_given() {
    // A one-hour margin (W2): the window counts as closed an hour early.
    let policy = Policy {
        window_margin: Duration::from_secs(3600),
        ..Policy::default()
    };
    let h = Harness::start_with(policy).await;
    let at = h.now().saturating_sub(Duration::from_secs(23 * 3600 + 1));
    assert_eq!(h.signed_webhook(&inbound("hi", at)).await.0, StatusCode::OK);
    let (status, body) = h.send_text_or_template().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], "template");
    assert_eq!(body["decision"]["reason"], "window_expired");
}

#[tokio::test]
async fn delete_erases_the_contact_and_late_retries_stay_out() {
    let h = Harness::start().await;
    let at = h.now().saturating_sub(Duration::from_secs(60));
    let stop = inbound("STOP", at);
    assert_eq!(h.signed_webhook(&stop).await.0, StatusCode::OK);

    let response = h
        .http
        .delete(format!("{}/contacts/{BUSINESS}/{PHONE}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, view) = h.contact(PHONE).await;
    assert_eq!(view["state"]["last_inbound"], Value::Null);
    assert_eq!(view["state"]["erased_at"], h.now().to_string());
    // E4: the erasure keeps the objection.
    assert_eq!(view["decisions"]["utility"]["allowed"], false);
    assert_eq!(view["decisions"]["utility"]["reason"], "opted_out");

    // Meta retries the old webhook: its window part is ignored, its STOP still counts (E4).
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(h.signed_webhook(&stop).await.0, StatusCode::OK);
    let (_, view) = h.contact(PHONE).await;
    assert_eq!(view["state"]["last_inbound"], Value::Null);
    assert_eq!(view["decisions"]["utility"]["reason"], "opted_out");
}
