//! The routers: `/v1`, `/webhook` and `/openapi.json` on the main listener, `/metrics` and
//! `/healthz` on the admin listener.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use waguard::{Guard, GuardError, Store, Timestamp};
use waguard_webhook::{HubQuery, SignedParseError};

use crate::answer::{ContactView, DecisionAnswer};
use crate::apply::{apply, Applied, ApplyError};
use crate::config::Config;
use crate::key::contact_key_from_path;
use crate::line::{parse_body, Kind};
use crate::metrics::Metrics;

/// The store a server works on.
pub type DynStore = Arc<dyn Store>;

/// The header that sets a webhook's receive instant when the server trusts client time.
pub const RECEIVED_AT_HEADER: &str = "waguard-received-at";

/// A guard served over HTTP: cheap to clone, every clone is the same server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use waguard::{Guard, MemoryStore, Policy};
/// use waguard_server::{Config, Server, Tokens};
/// let guard = Guard::new(Arc::new(MemoryStore::new()) as waguard_server::DynStore, Policy::default())?;
/// let server = Server::new(guard, Config::new(Tokens::new(["a-long-token"])?));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let admin = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
/// waguard_server::serve(server, listener, admin, waguard_server::shutdown_signal()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Server {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    guard: Guard<DynStore>,
    config: Config,
    metrics: Arc<Metrics>,
}

type Shared = Arc<Inner>;

/// `{"error": "<what and where>", "path"?: "<JSON path of a webhook item>"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorAnswer {
    /// What is wrong, and where.
    pub error: String,
    /// The JSON path of the webhook item (`entry[0].changes[0].value.statuses[2]`), for item
    /// errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The answer to a webhook body that parses: `{"applied", "ignored", "errors"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    /// Events read from the body and made durable.
    pub applied: usize,
    /// Items that arrived and carry nothing the guard decides by (changes of other fields,
    /// value-level `errors[]`, statuses and preferences the rules do not read).
    pub ignored: usize,
    /// The items that could not be applied, with their JSON paths (Meta would resend them
    /// unchanged, so they do not fail the request).
    pub errors: Vec<ErrorAnswer>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorAnswer {
            error: message.into(),
            path: None,
        }),
    )
        .into_response()
}

impl Server {
    /// A server over `guard` with `config`.
    pub fn new(guard: Guard<DynStore>, config: Config) -> Self {
        Self::with_metrics(guard, config, Arc::default())
    }

    /// A server whose `/metrics` renders `metrics`, which may also time the guard's store:
    /// wrap the store in [`Observed`](waguard::observe::Observed) with the same `metrics`
    /// before building the guard, and `/metrics` shows the time of each store operation.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use waguard::observe::Observed;
    /// use waguard::{Guard, MemoryStore, Policy};
    /// use waguard_server::metrics::Metrics;
    /// use waguard_server::{Config, DynStore, Server, Tokens};
    ///
    /// let metrics = Arc::new(Metrics::default());
    /// let store: DynStore = Arc::new(Observed::new(MemoryStore::new(), metrics.clone()));
    /// let guard = Guard::new(store, Policy::default()).unwrap();
    /// let server = Server::with_metrics(guard, Config::new(Tokens::new(["a-long-token"]).unwrap()), metrics);
    /// # let _ = server;
    /// ```
    pub fn with_metrics(guard: Guard<DynStore>, config: Config, metrics: Arc<Metrics>) -> Self {
        // The region tables now, not in the first request that names a `+1` number.
        waguard::PhoneRegion::prepare();
        Server {
            inner: Arc::new(Inner {
                guard,
                config,
                metrics,
            }),
        }
    }

    /// The guard.
    pub fn guard(&self) -> &Guard<DynStore> {
        &self.inner.guard
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The counters `/metrics` renders.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The main router: the `/v1` calls (bearer token), `/webhook` (signature) and
    /// `/openapi.json`, with the body limit, request timeout, concurrency limit and trace
    /// layers. Mount it as it is, or nest it in a larger application.
    pub fn router(&self) -> Router {
        let inner = self.inner.clone();
        let config = &inner.config;
        let v1 = Router::new()
            .route("/v1/check", post(check))
            .route("/v1/reserve", post(reserve))
            .route("/v1/send-errors", post(send_errors))
            .route("/v1/opt-outs", post(opt_outs))
            .route("/v1/opt-ins", post(opt_ins))
            .route("/v1/forget", post(forget))
            .route("/v1/clear-sender", post(clear_sender))
            .route(
                "/v1/contacts/{business}/{contact}",
                get(contact).delete(erase_contact),
            )
            .route_layer(from_fn_with_state(inner.clone(), require_token));
        Router::new()
            .merge(v1)
            .route("/webhook", get(handshake).post(webhook))
            .route("/openapi.json", get(openapi))
            .route_layer(from_fn_with_state(inner.clone(), record))
            .fallback(not_found)
            .with_state(inner.clone())
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                config.max_concurrent_requests,
            ))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .layer(TraceLayer::new_for_http())
    }

    /// The admin router: `/metrics` (Prometheus text) and `/healthz` (200 while the store
    /// answers, 503 otherwise). Serve it on an address only operators reach.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .with_state(self.inner.clone())
    }
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.guard.clock().now()
    }

    fn store_failed(&self, operation: &'static str, e: &GuardError) -> Response {
        self.metrics.store_failure(operation);
        tracing::error!(operation, error = %e, "the store could not answer");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store could not answer: {e}"),
        )
    }

    /// Runs a guard call; a write on a store that blocks its thread runs in
    /// `block_in_place`, so that the runtime's other tasks go on meanwhile.
    async fn writing<T>(&self, write: bool, call: impl std::future::Future<Output = T>) -> T {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if write && self.config.blocking_store && multi_thread {
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(call))
        } else {
            call.await
        }
    }

    /// The instant a caller gave, honoured only when the server trusts client time.
    fn client_time(&self, given: Option<Timestamp>, what: &str) -> Result<Timestamp, String> {
        match given {
            None => Ok(self.now()),
            Some(at) if self.config.trust_client_time => Ok(at),
            Some(_) => Err(format!("{what}: this server decides with its own clock; it honours a caller's instant only when started with --trust-client-time (for replays and tests)")),
        }
    }
}

/// Refuses `/v1` calls without an accepted bearer token, before their body is read.
async fn require_token(State(s): State<Shared>, request: Request, next: Next) -> Response {
    let accepted = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| s.config.tokens.accepts_header(v));
    if accepted {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "missing or unknown bearer token: send `Authorization: Bearer <token>` with a token of the server's tokens file",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Counts every routed request by route pattern and status, with its latency.
async fn record(State(s): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let response = next.run(request).await;
    s.metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: see /openapi.json for the routes",
    )
}

/// Reads, applies and answers the body of one `/v1` call.
async fn call(s: &Inner, kind: Kind, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8 JSON");
    };
    let parsed = match parse_body(kind, text) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let at = match s.client_time(parsed.at, "`at`") {
        Ok(at) => at,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let write = kind != Kind::Check;
    match s.writing(write, apply(&s.guard, parsed.line, at)).await {
        Ok(Applied::Decided { decision, outgoing }) => {
            s.metrics.decision(kind.name(), &decision);
            Json(DecisionAnswer::new(None, &decision, outgoing)).into_response()
        }
        Ok(Applied::SendError { code, effect }) => {
            s.metrics.send_error(code, effect);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(ApplyError::Guard(e)) => s.store_failed(kind.name(), &e),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// A decision now, read-only (the body of a replay `check` line).
#[utoipa::path(post, path = "/v1/check", tag = "v1",
    request_body = crate::openapi::CheckRequest,
    responses(
        (status = 200, description = "The decision, as replay answers it (without `line`)", body = crate::openapi::DecisionResponse),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn check(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::Check, body).await
}

/// An atomic check-and-record (the body of a replay `reserve` line).
#[utoipa::path(post, path = "/v1/reserve", tag = "v1",
    request_body = crate::openapi::ReserveRequest,
    responses(
        (status = 200, description = "The decision, as replay answers it (without `line`)", body = crate::openapi::DecisionResponse),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reserve(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::Reserve, body).await
}

/// The error code of a failed send (the body of a replay `send_error` line, or Meta's error
/// object as the Graph API returned it).
#[utoipa::path(post, path = "/v1/send-errors", tag = "v1",
    request_body = crate::openapi::SendErrorRequest,
    responses(
        (status = 204, description = "Recorded (an unknown or not-retryable code changes nothing)"),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn send_errors(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::SendError, body).await
}

/// An opt-out (the body of a replay `opt_out` line).
#[utoipa::path(post, path = "/v1/opt-outs", tag = "v1",
    request_body = crate::openapi::PreferenceRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn opt_outs(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::OptOut, body).await
}

/// An opt-in (the body of a replay `opt_in` line).
#[utoipa::path(post, path = "/v1/opt-ins", tag = "v1",
    request_body = crate::openapi::PreferenceRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn opt_ins(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::OptIn, body).await
}

/// Erasure on request (the body of a replay `forget` line).
#[utoipa::path(post, path = "/v1/forget", tag = "v1",
    request_body = crate::openapi::ForgetRequest,
    responses(
        (status = 204, description = "Erased, leaving a tombstone"),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn forget(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::Forget, body).await
}

/// Lifts a business number's restriction (the body of a replay `clear_sender` line).
#[utoipa::path(post, path = "/v1/clear-sender", tag = "v1",
    request_body = crate::openapi::SenderRequest,
    responses(
        (status = 204, description = "Cleared"),
        (status = 400, description = "Bad input: what and where", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn clear_sender(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call(&s, Kind::ClearSender, body).await
}

/// One contact's state and the decision for each kind of message now (as `waguard show`).
#[utoipa::path(get, path = "/v1/contacts/{business}/{contact}", tag = "v1",
    params(
        ("business" = String, Path, description = "The business phone number id"),
        ("contact" = String, Path, description = "`p:PHONE`, `u:USER_ID` or `g:GROUP_ID`; a bare value is a phone number (a user id when it has a dot)"),
    ),
    responses(
        (status = 200, description = "The state and the decisions", body = crate::openapi::ContactResponse),
        (status = 400, description = "Bad key", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn contact(
    State(s): State<Shared>,
    Path((business, contact)): Path<(String, String)>,
) -> Response {
    let key = match contact_key_from_path(&business, &contact) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match ContactView::load(&s.guard, &key, s.now()).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => s.store_failed("show", &e),
    }
}

/// Erases one contact (as `forget`).
#[utoipa::path(delete, path = "/v1/contacts/{business}/{contact}", tag = "v1",
    params(
        ("business" = String, Path, description = "The business phone number id"),
        ("contact" = String, Path, description = "`p:PHONE`, `u:USER_ID` or `g:GROUP_ID`"),
    ),
    responses(
        (status = 204, description = "Erased, leaving a tombstone"),
        (status = 400, description = "Bad key", body = ErrorAnswer),
        (status = 401, description = "No or unknown bearer token", body = ErrorAnswer),
        (status = 503, description = "The store could not answer", body = ErrorAnswer),
    ),
    security(("bearer" = [])))]
pub(crate) async fn erase_contact(
    State(s): State<Shared>,
    Path((business, contact)): Path<(String, String)>,
) -> Response {
    let key = match contact_key_from_path(&business, &contact) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match s.writing(true, s.guard.forget(&key, s.now())).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => s.store_failed("forget", &e),
    }
}

/// Meta's verification handshake (rule H3).
#[utoipa::path(get, path = "/webhook", tag = "webhook",
    params(
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "The verify token"),
        ("hub.challenge" = String, Query, description = "Echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge, as text", body = String),
        (status = 403, description = "Refused", body = ErrorAnswer),
    ))]
pub(crate) async fn handshake(State(s): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let Some(expected) = s.config.verify_token.as_deref() else {
        return error(
            StatusCode::FORBIDDEN,
            "no verify token is configured: start the server with --verify-token (or WAGUARD_VERIFY_TOKEN)",
        );
    };
    match HubQuery::parse(&query).verify(expected) {
        Ok(challenge) => challenge.to_owned().into_response(),
        Err(e) => error(StatusCode::FORBIDDEN, e.to_string()),
    }
}

/// A webhook from Meta: signature (H2), then ingestion, answered once durable (H4).
#[utoipa::path(post, path = "/webhook", tag = "webhook",
    request_body(content = String, description = "Meta's payload as sent, signed in `X-Hub-Signature-256`", content_type = "application/json"),
    params(
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the HMAC-SHA256 of the body with the app secret"),
        ("Waguard-Received-At" = Option<String>, Header, description = "The receive instant (RFC 3339); honoured only with --trust-client-time"),
    ),
    responses(
        (status = 200, description = "Applied and durable; item errors listed", body = WebhookAnswer),
        (status = 400, description = "Not a webhook at all", body = ErrorAnswer),
        (status = 401, description = "Missing or wrong signature: nothing applied", body = ErrorAnswer),
        (status = 503, description = "The store could not answer: nothing acknowledged, Meta retries", body = ErrorAnswer),
    ))]
pub(crate) async fn webhook(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let given = match headers.get(RECEIVED_AT_HEADER) {
        None => None,
        Some(value) => match value
            .to_str()
            .ok()
            .and_then(|v| Timestamp::parse_rfc3339(v).ok())
        {
            Some(at) => Some(at),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Waguard-Received-At: not an RFC 3339 instant such as 2026-03-01T00:00:00Z",
                )
            }
        },
    };
    let at = match s.client_time(given, "Waguard-Received-At") {
        Ok(at) => at,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(secret) = s.config.app_secret.as_deref() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "no app secret is configured, so no signature can be checked: start the server with --app-secret (or WAGUARD_APP_SECRET); nothing of this body was applied",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let parsed = match waguard_webhook::parse_signed(
        &body,
        signature,
        secret,
        at,
        &s.config.limits.with_max_body_bytes(s.config.max_body_bytes),
    ) {
        Ok(parsed) => parsed,
        Err(SignedParseError::Signature(e)) => {
            return error(
                StatusCode::UNAUTHORIZED,
                format!("{e}; nothing of this body was applied"),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let errors: Vec<ErrorAnswer> = parsed
        .errors
        .iter()
        .map(|item| ErrorAnswer {
            error: item.problem.to_string(),
            path: Some(item.path.clone()),
        })
        .collect();
    let ignored = parsed.ignored;
    match s.writing(true, s.guard.ingest_at(parsed.events, at)).await {
        Ok(report) => {
            s.metrics.webhook(report.events, ignored, errors.len());
            Json(WebhookAnswer {
                applied: report.events,
                ignored,
                errors,
            })
            .into_response()
        }
        Err(e) => s.store_failed("ingest", &e),
    }
}

/// The OpenAPI document of the main listener.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    // A read of one sender record: cheap, and it goes through the store like every call.
    let probe = waguard::BusinessId::parse("1").expect("a valid business id");
    match s.guard.sender_state(&probe).await {
        Ok(_) => "ok\n".into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {e}"),
        ),
    }
}
