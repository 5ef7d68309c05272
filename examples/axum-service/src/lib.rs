//! # An axum service that embeds waguard
//!
//! The whole loop of a guarded WhatsApp integration in one small service: webhooks in (verified,
//! ingested durably before Meta gets its `200`), a decision before every Cloud API call, and
//! Meta's answer fed back into the guard. Run it with `cargo run -p waguard-example-axum`; the
//! guide that explains each step is [`guide`] (`docs/integration.md` of the repository, whose
//! snippets are compiled as this crate's doctests).
//!
//! ## Routes
//! | route | what it does |
//! | --- | --- |
//! | `GET /webhook` | Meta's verification handshake (H3): `hub.mode=subscribe` and the configured verify token answer `200` with `hub.challenge`; anything else `403`. |
//! | `POST /webhook` | Checks `X-Hub-Signature-256` on the raw body (H2, `401` and nothing applied when missing or wrong), parses, ingests the events durably, then answers `200` (H4). Skipped items are logged and still acknowledged (a retry cannot fix them); a store failure answers `500` so Meta retries. |
//! | `POST /send` | Reserves (rule D3 budget, G1 resend cap), sends free-form when the decision permits it, falls back to the given template when only a template may go, else answers `409` with the decision. Calls the Cloud API and feeds a failure's code back with `record_send_error`. |
//! | `GET /contacts/{business}/{contact}` | The key's stored state and the decision for each kind of message now. |
//! | `DELETE /contacts/{business}/{contact}` | Erasure on request (E4): `forget` at now, leaving a tombstone so Meta's late retries cannot bring the state back. |
//!
//! `POST /send` takes JSON:
//! ```json
//! {"business": "106540352242922", "to": "+33 6 12 34 56 78",
//!  "text": "Your parcel is on its way",
//!  "template": {"name": "order_update", "language": "en_US", "category": "utility"},
//!  "idempotency_key": "order-42"}
//! ```
//! The contact is exactly one of `to` (a phone number), `user_id` (a business-scoped user id)
//! or `group_id`; give `text`, `template` or both. It answers `200` with what was sent, the
//! decision and Meta's message id; `409` with the decision when nothing may go; `502` with
//! Meta's error code and its effect when the Cloud API refused; `400` for a bad request; `500`
//! when the store failed.
//!
//! In `/contacts/{business}/{contact}`, `contact` is `p:PHONE`, `u:USER_ID` or `g:GROUP_ID`;
//! a bare value is read as a phone number, or as a user id when it contains a dot.
//!
//! ## Configuration (environment)
//! | variable | meaning |
//! | --- | --- |
//! | `WAGUARD_APP_SECRET` | required: the Meta app secret webhooks are signed with |
//! | `WAGUARD_VERIFY_TOKEN` | required: the verify token of the webhook settings |
//! | `WAGUARD_ACCESS_TOKEN` | required: the Cloud API bearer token |
//! | `WAGUARD_GRAPH_BASE_URL` | default `https://graph.facebook.com` |
//! | `WAGUARD_GRAPH_VERSION` | default `v23.0` |
//! | `WAGUARD_STORE` | `memory`, `sled:PATH` or `postgres:URL`; default `sled:./waguard.db` |
//! | `WAGUARD_POLICY` | a TOML or JSON policy file; default: the documented defaults |
//! | `WAGUARD_LISTEN` | default `127.0.0.1:8080` |
//! | `RUST_LOG` | the tracing filter, default `info` |
//!
//! A missing or invalid value stops the service at start with a message naming the variable.
//!
//! ## Embedding
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use waguard_example_axum::{app, AppState, Config};
//! let config = Config::from_env()?;
//! let state = AppState::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! axum::serve(listener, app(state)).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{field, Instrument};
use waguard::{
    Bsuid, BusinessId, CodeEffect, ContactId, ContactKey, ConversationState, Decision, GroupId,
    Guard, GuardError, Outgoing, PhoneNumber, SenderState, Store, TemplateCategory, Timestamp,
};
use waguard_webhook::{parse_signed, HubQuery, Limits, ParseError, SignedParseError};

mod config;
mod graph;

pub use config::{
    load_policy, Config, ConfigError, GraphConfig, StoreSpec, DEFAULT_GRAPH_BASE_URL,
    DEFAULT_GRAPH_VERSION, DEFAULT_LISTEN, DEFAULT_STORE,
};
pub use graph::{request_body, GraphAnswer, GraphApi, Message, TemplateMessage};

#[doc = include_str!("../../../docs/integration.md")]
pub mod guide {}

/// The store the service works on, chosen at start.
pub type DynStore = Arc<dyn Store>;

/// The guard the service works with.
pub type DynGuard = Guard<DynStore>;

/// What the handlers share: the guard, the Cloud API client and the webhook secrets.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    guard: DynGuard,
    graph: GraphApi,
    app_secret: Vec<u8>,
    verify_token: String,
    limits: Limits,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("guard", &self.inner.guard)
            .field("graph", &self.inner.graph)
            .finish_non_exhaustive()
    }
}

/// The service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened (`WAGUARD_STORE`).
    #[error("WAGUARD_STORE: {0}")]
    Store(#[from] waguard::StoreError),
    /// The guard refused the policy.
    #[error("WAGUARD_POLICY: {0}")]
    Guard(#[from] GuardError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the Cloud API: {0}")]
    Http(#[from] reqwest::Error),
}

impl AppState {
    /// The state from its parts: the guard (its clock is the service's "now"), the Cloud API
    /// client, the app secret (H2) and the verify token (H3). Webhook bodies are read with
    /// the default [`Limits`].
    pub fn new(
        guard: DynGuard,
        graph: GraphApi,
        app_secret: impl Into<Vec<u8>>,
        verify_token: impl Into<String>,
    ) -> Self {
        AppState {
            inner: Arc::new(Shared {
                guard,
                graph,
                app_secret: app_secret.into(),
                verify_token: verify_token.into(),
                limits: Limits::default(),
            }),
        }
    }

    /// Opens the configured store, loads the policy and builds the Cloud API client; the guard
    /// reads the system clock.
    pub async fn from_config(config: &Config) -> Result<Self, StartError> {
        let policy = config.load_policy()?;
        let store = config.store.open().await?;
        let guard = Guard::new(store, policy)?;
        let graph = GraphApi::new(config.graph.clone())?;
        Ok(AppState::new(
            guard,
            graph,
            config.app_secret.as_bytes(),
            config.verify_token.clone(),
        ))
    }

    /// The guard.
    pub fn guard(&self) -> &DynGuard {
        &self.inner.guard
    }

    fn now(&self) -> Timestamp {
        self.inner.guard.clock().now()
    }
}

/// The service's routes over `state`.
pub fn app(state: AppState) -> Router {
    // Let the webhook crate's own limit answer oversized bodies (413) instead of axum's.
    let body_limit = state.inner.limits.max_body_bytes.saturating_add(1);
    Router::new()
        .route("/webhook", get(webhook_verify).post(webhook_receive))
        .route("/send", axum::routing::post(send))
        .route(
            "/contacts/{business}/{contact}",
            get(contact).delete(forget_contact),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A decision as the service answers it (the CLI's vocabulary): `decision` is `free_form`,
/// `template_required` or `blocked`; `allowed` says whether the message it was asked for may
/// go; `reason` is the rules' `snake_case` reason; `until` is when the answer changes by time
/// alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    /// `free_form`, `template_required` or `blocked`.
    pub decision: &'static str,
    /// Whether the message asked about may go.
    pub allowed: bool,
    /// The reason, absent for `free_form`.
    pub reason: Option<&'static str>,
    /// `closes_at` for `free_form`, the end of a penalty for `blocked`, else absent.
    pub until: Option<Timestamp>,
}

impl DecisionView {
    /// The view of `decision` for `outgoing`.
    pub fn of(decision: Decision, outgoing: Outgoing) -> Self {
        DecisionView {
            decision: decision.kind(),
            allowed: decision.permits(outgoing),
            reason: decision.reason().map(|r| r.as_str()),
            until: decision.until(),
        }
    }
}

/// The body of `POST /send`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The business phone number id that sends.
    pub business: String,
    /// The contact's phone number (K1).
    #[serde(default)]
    pub to: Option<String>,
    /// The contact's business-scoped user id (K3).
    #[serde(default)]
    pub user_id: Option<String>,
    /// A group id (W7).
    #[serde(default)]
    pub group_id: Option<String>,
    /// A free-form text, sent when the window is open.
    #[serde(default)]
    pub text: Option<String>,
    /// A template, sent when only a template may go (or when no text is given).
    #[serde(default)]
    pub template: Option<TemplateMessage>,
    /// One logical message's id across retries (rule G1 caps its attempts).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The answer of a successful `POST /send`.
#[derive(Clone, Debug, Serialize)]
pub struct SendResponse {
    /// The key, `BUSINESS/TAG:ID`.
    pub key: String,
    /// `text` or `template`.
    pub sent: &'static str,
    /// The template's name, when a template went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The decision the message went under.
    pub decision: DecisionView,
    /// Meta's message id (`wamid.…`).
    pub wamid: Option<String>,
}

/// A JSON error answer: `{"error": message}`.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn store_failed(e: &GuardError) -> Response {
    tracing::error!(error = %e, "store failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// `GET /webhook`: the verification handshake (H3).
async fn webhook_verify(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    match HubQuery::parse(&query).verify(&state.inner.verify_token) {
        Ok(challenge) => {
            tracing::info!("webhook subscription verified");
            (StatusCode::OK, challenge.to_owned()).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook verification refused");
            (StatusCode::FORBIDDEN, e.to_string()).into_response()
        }
    }
}

/// `POST /webhook`: verify (H2), parse (H1), ingest durably, then acknowledge (H4).
async fn webhook_receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = tracing::info_span!(
        "webhook",
        bytes = body.len(),
        events = field::Empty,
        skipped = field::Empty
    );
    async move {
        let signature = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let parsed = match parse_signed(
            &body,
            signature,
            &state.inner.app_secret,
            state.now(),
            &state.inner.limits,
        ) {
            Ok(parsed) => parsed,
            Err(SignedParseError::Signature(e)) => {
                tracing::warn!(error = %e, "webhook refused: bad signature");
                return error(StatusCode::UNAUTHORIZED, e);
            }
            Err(SignedParseError::Parse(e @ ParseError::TooLarge { .. })) => {
                tracing::warn!(error = %e, "webhook refused: too large");
                return error(StatusCode::PAYLOAD_TOO_LARGE, e);
            }
            Err(e) => {
                // Signed by Meta but not a payload we can read: a retry would bring the same
                // bytes back, so acknowledge and say so loudly.
                tracing::error!(error = %e, "signed webhook body skipped");
                return (
                    StatusCode::OK,
                    Json(json!({ "events": 0, "skipped": 1, "error": e.to_string() })),
                )
                    .into_response();
            }
        };
        let span = tracing::Span::current();
        span.record("events", parsed.events.len());
        span.record("skipped", parsed.errors.len());
        for item in &parsed.errors {
            tracing::warn!(path = %item.path, error = %item.problem, "webhook item skipped");
        }
        let skipped = parsed.errors.len();
        match state.inner.guard.ingest(parsed.events).await {
            Ok(report) => {
                tracing::info!(
                    events = report.events,
                    contacts_written = report.contacts_written,
                    "webhook ingested"
                );
                (
                    StatusCode::OK,
                    Json(json!({ "events": report.events, "skipped": skipped })),
                )
                    .into_response()
            }
            // Nothing was acknowledged: Meta retries, and E1 makes the retry harmless.
            Err(e) => store_failed(&e),
        }
    }
    .instrument(span)
    .await
}

/// Builds a key from a business id and exactly one of phone, user id or group id; the error
/// names the field.
pub fn key_from_parts(
    business: &str,
    to: Option<&str>,
    user_id: Option<&str>,
    group_id: Option<&str>,
) -> Result<ContactKey, String> {
    let business = BusinessId::parse(business)
        .map_err(|e| format!("`business`: {}", e.with_field("business")))?;
    let contact = match (to, user_id, group_id) {
        (Some(to), None, None) => PhoneNumber::parse(to)
            .map(ContactId::Phone)
            .map_err(|e| format!("`to`: {}", e.with_field("to")))?,
        (None, Some(user), None) => Bsuid::parse(user)
            .map(ContactId::User)
            .map_err(|e| format!("`user_id`: {}", e.with_field("user_id")))?,
        (None, None, Some(group)) => GroupId::parse(group)
            .map(ContactId::Group)
            .map_err(|e| format!("`group_id`: {}", e.with_field("group_id")))?,
        (None, None, None) => {
            return Err("no contact: give one of `to` (phone), `user_id` or `group_id`".into())
        }
        _ => return Err("give exactly one of `to`, `user_id` or `group_id`, not several".into()),
    };
    Ok(ContactKey::new(business, contact))
}

/// `POST /send`.
async fn send(State(state): State<AppState>, body: Bytes) -> Response {
    let request: SendRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad /send body: {e}")),
    };
    let key = match key_from_parts(
        &request.business,
        request.to.as_deref(),
        request.user_id.as_deref(),
        request.group_id.as_deref(),
    ) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if request.text.is_none() && request.template.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "nothing to send: give `text`, `template` or both",
        );
    }
    let span = tracing::info_span!(
        "send",
        key = %key,
        decision = field::Empty,
        reason = field::Empty,
        sent = field::Empty
    );
    send_guarded(state, key, request).instrument(span).await
}

async fn send_guarded(state: AppState, key: ContactKey, request: SendRequest) -> Response {
    let guard = &state.inner.guard;
    let idem = request.idempotency_key.as_deref();
    let now = state.now();
    let span = tracing::Span::current();
    let note = |d: &Decision| {
        span.record("decision", d.kind());
        if let Some(reason) = d.reason() {
            span.record("reason", reason.as_str());
        }
    };

    // Free-form first when a text was given; the template when only a template may go.
    let mut chosen: Option<(Message<'_>, Outgoing, Decision)> = None;
    let mut refusal: Option<(Outgoing, Decision)> = None;
    if let Some(text) = request.text.as_deref() {
        let decision = match guard.reserve(&key, Outgoing::FreeForm, idem, now).await {
            Ok(d) => d,
            Err(e) => return store_failed(&e),
        };
        note(&decision);
        if decision.permits(Outgoing::FreeForm) {
            chosen = Some((Message::Text(text), Outgoing::FreeForm, decision));
        } else {
            refusal = Some((Outgoing::FreeForm, decision));
        }
    }
    let fall_back = match refusal {
        None => chosen.is_none(),
        Some((_, decision)) => matches!(decision, Decision::TemplateRequired { .. }),
    };
    if fall_back {
        if let Some(template) = request.template.as_ref() {
            let outgoing = Outgoing::Template(template.category);
            let decision = match guard.reserve(&key, outgoing, idem, now).await {
                Ok(d) => d,
                Err(e) => return store_failed(&e),
            };
            note(&decision);
            if decision.permits(outgoing) {
                chosen = Some((Message::Template(template), outgoing, decision));
            } else {
                refusal = Some((outgoing, decision));
            }
        }
    }
    let Some((message, outgoing, decision)) = chosen else {
        let (outgoing, decision) = refusal.expect("a refusal when nothing was chosen");
        tracing::info!("send refused by the guard");
        return (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "the guard does not allow this message now",
                "key": key.to_string(),
                "tried": kind_name(outgoing),
                "decision": DecisionView::of(decision, outgoing),
            })),
        )
            .into_response();
    };
    span.record("sent", kind_name(outgoing));

    let answer = match state.inner.graph.send(&key, message).await {
        Ok(answer) => answer,
        Err(e) => {
            // No answer: Meta may or may not have the message; nothing to feed back.
            tracing::error!(error = %e, "Cloud API unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot reach the Cloud API: {e}"),
            );
        }
    };
    if answer.is_success() {
        tracing::info!(wamid = answer.wamid.as_deref().unwrap_or(""), "sent");
        let response = SendResponse {
            key: key.to_string(),
            sent: kind_name(outgoing),
            template: match message {
                Message::Template(t) => Some(t.name.clone()),
                Message::Text(_) => None,
            },
            decision: DecisionView::of(decision, outgoing),
            wamid: answer.wamid,
        };
        return (StatusCode::OK, Json(response)).into_response();
    }

    // Meta refused: feed the code back (rules D1-D5, S1-S3, W4, O2).
    let code = answer.feedback_code();
    let effect = match code {
        Some(code) => match guard.record_send_error(&key, code, None, state.now()).await {
            Ok(effect) => Some(effect),
            Err(e) => return store_failed(&e),
        },
        None => None,
    };
    tracing::warn!(
        status = answer.status,
        code = code.unwrap_or(0),
        effect = ?effect,
        "Cloud API refused the message"
    );
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({
            "error": "the Cloud API refused the message",
            "key": key.to_string(),
            "tried": kind_name(outgoing),
            "decision": DecisionView::of(decision, outgoing),
            "status": answer.status,
            "code": code,
            "effect": effect,
            "retryable": effect.map(CodeEffect::retryable),
            "meta_message": answer.error_message,
        })),
    )
        .into_response()
}

fn kind_name(outgoing: Outgoing) -> &'static str {
    if outgoing.is_template() {
        "template"
    } else {
        "text"
    }
}

/// The answer of `GET /contacts/{business}/{contact}`.
#[derive(Clone, Debug, Serialize)]
pub struct ContactView {
    /// The key, `BUSINESS/TAG:ID`.
    pub key: String,
    /// The instant the decisions are for.
    pub now: Timestamp,
    /// The contact's stored state (empty for an unknown contact).
    pub state: ConversationState,
    /// The business number's stored state.
    pub sender: SenderState,
    /// The decision for each kind of message now (read-only: nothing is reserved).
    pub decisions: Decisions,
}

/// The decision for each kind of message.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Decisions {
    /// A free-form message.
    pub free_form: DecisionView,
    /// A marketing template.
    pub marketing: DecisionView,
    /// A utility template.
    pub utility: DecisionView,
    /// An authentication template.
    pub authentication: DecisionView,
}

/// Reads the `{contact}` path segment: `p:`, `u:` or `g:` with the id, or a bare phone number
/// (a bare value with a dot is a business-scoped user id).
pub fn contact_key_from_path(business: &str, contact: &str) -> Result<ContactKey, String> {
    match contact.split_once(':') {
        Some(("p", id)) => key_from_parts(business, Some(id), None, None),
        Some(("u", id)) => key_from_parts(business, None, Some(id), None),
        Some(("g", id)) => key_from_parts(business, None, None, Some(id)),
        _ if contact.contains('.') => key_from_parts(business, None, Some(contact), None),
        _ => key_from_parts(business, Some(contact), None, None),
    }
}

/// `GET /contacts/{business}/{contact}`.
async fn contact(
    State(state): State<AppState>,
    Path((business, contact)): Path<(String, String)>,
) -> Response {
    let key = match contact_key_from_path(&business, &contact) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let span = tracing::info_span!("contact", key = %key);
    async move {
        let guard = &state.inner.guard;
        let now = state.now();
        let (contact_state, sender) = match guard.state(&key).await {
            Ok(s) => s,
            Err(e) => return store_failed(&e),
        };
        let mut views = Vec::with_capacity(4);
        for outgoing in [
            Outgoing::FreeForm,
            Outgoing::Template(TemplateCategory::Marketing),
            Outgoing::Template(TemplateCategory::Utility),
            Outgoing::Template(TemplateCategory::Authentication),
        ] {
            match guard.check(&key, outgoing, now).await {
                Ok(d) => views.push(DecisionView::of(d, outgoing)),
                Err(e) => return store_failed(&e),
            }
        }
        let view = ContactView {
            key: key.to_string(),
            now,
            state: contact_state,
            sender,
            decisions: Decisions {
                free_form: views[0],
                marketing: views[1],
                utility: views[2],
                authentication: views[3],
            },
        };
        (StatusCode::OK, Json(view)).into_response()
    }
    .instrument(span)
    .await
}

/// `DELETE /contacts/{business}/{contact}`: erasure (E4).
async fn forget_contact(
    State(state): State<AppState>,
    Path((business, contact)): Path<(String, String)>,
) -> Response {
    let key = match contact_key_from_path(&business, &contact) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let span = tracing::info_span!("forget", key = %key);
    async move {
        let now = state.now();
        match state.inner.guard.forget(&key, now).await {
            Ok(()) => {
                tracing::info!("contact erased");
                (
                    StatusCode::OK,
                    Json(json!({ "key": key.to_string(), "forgotten_at": now })),
                )
                    .into_response()
            }
            Err(e) => store_failed(&e),
        }
    }
    .instrument(span)
    .await
}
