//! # The smallest service that embeds waguard
//!
//! The five lines of the README in a running axum service, and nothing more:
//!
//! 1. once, at start, build a [`Guard`] on a store (`main.rs`, [`App::new`]);
//! 2. on every webhook `POST`, verify the signature, parse and ingest, and answer `200` only
//!    once the events are durable ([`router`]);
//! 3. right before every send, reserve ([`send_guarded`]);
//! 4. send only what the decision permits;
//! 5. when the Cloud API refuses, feed its error code back.
//!
//! Run it with `WAGUARD_APP_SECRET=... WAGUARD_VERIFY_TOKEN=... cargo run -p
//! waguard-example-axum -- ./waguard.db` (a sled store in that directory; `WAGUARD_LISTEN`,
//! default `127.0.0.1:8080`, is the address). The guide that explains each step is
//! [`guide`] (`docs/integration.md` of the repository, whose snippets are compiled as this
//! crate's doctests).
//!
//! What a production sidecar adds (bearer tokens, an admin listener with metrics and health,
//! request timeouts, body limits, the `/v1` API for services in other languages) is `waguard
//! serve`, built from the `waguard-server` crate; a Rust service can mount its router
//! (`waguard_server::Server::router`) instead of writing its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use waguard::{Guard, Policy};
//! use waguard_example_axum::{router, App};
//! use waguard_sled::SledStore;
//!
//! let guard = Guard::new(SledStore::open("./waguard.db")?, Policy::default())?;
//! let app = App::new(guard, "app-secret", "verify-token");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, router(app.clone())).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use waguard::{
    CodeEffect, ContactKey, Decision, Guard, GuardError, Outgoing, Store, TemplateCategory,
};
use waguard_webhook::{parse_signed, HubQuery, Limits, SignedParseError};

#[doc = include_str!("../../../docs/integration.md")]
pub mod guide {}

/// What the webhook handlers share: the guard, the app secret (rule H2) and the verify token
/// (rule H3). Cheap to clone.
pub struct App<S> {
    guard: Guard<S>,
    app_secret: Arc<[u8]>,
    verify_token: Arc<str>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        App {
            guard: self.guard.clone(),
            app_secret: Arc::clone(&self.app_secret),
            verify_token: Arc::clone(&self.verify_token),
        }
    }
}

impl<S: Store> App<S> {
    /// The service's state: its guard (whose clock is the service's "now"), the Meta app
    /// secret webhooks are signed with and the verify token of the webhook settings.
    pub fn new(guard: Guard<S>, app_secret: impl AsRef<[u8]>, verify_token: &str) -> Self {
        App {
            guard,
            app_secret: app_secret.as_ref().into(),
            verify_token: verify_token.into(),
        }
    }

    /// The guard, for the send path ([`send_guarded`]).
    pub fn guard(&self) -> &Guard<S> {
        &self.guard
    }
}

/// `GET /webhook` (the subscription handshake) and `POST /webhook` (signed events in).
pub fn router<S: Store + 'static>(app: App<S>) -> Router {
    Router::new()
        .route("/webhook", get(verify::<S>).post(receive::<S>))
        .with_state(app)
}

/// `GET /webhook`: `hub.challenge` when `hub.mode` is `subscribe` and the token is ours (H3).
async fn verify<S: Store>(
    State(app): State<App<S>>,
    RawQuery(query): RawQuery,
) -> (StatusCode, String) {
    match HubQuery::parse(query.as_deref().unwrap_or_default()).verify(&app.verify_token) {
        Ok(challenge) => (StatusCode::OK, challenge.to_owned()),
        Err(e) => (StatusCode::FORBIDDEN, e.to_string()),
    }
}

/// `POST /webhook`: verify the signature on the raw bytes (H2), parse (H1), ingest, and only
/// then answer `200` (H4). A store failure answers `500` so that Meta retries.
async fn receive<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let now = app.guard.clock().now();
    let parsed = match parse_signed(&body, signature, &app.app_secret, now, &Limits::default()) {
        Ok(parsed) => parsed,
        Err(SignedParseError::Signature(e)) => {
            tracing::warn!(error = %e, "webhook refused: bad signature");
            return StatusCode::UNAUTHORIZED;
        }
        Err(e) => {
            // Signed by Meta but unreadable: a retry would bring the same bytes back.
            tracing::error!(error = %e, "signed webhook body skipped");
            return StatusCode::OK;
        }
    };
    for item in &parsed.errors {
        tracing::warn!(path = %item.path, error = %item.problem, "webhook item skipped");
    }
    match app.guard.ingest(parsed.events).await {
        Ok(_) => StatusCode::OK,
        Err(e) => {
            tracing::error!(error = %e, "store failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// What became of a guarded send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Cloud API accepted this message.
    Sent(Outgoing),
    /// The guard refused: nothing was sent; the decision says why and until when.
    Refused(Decision),
    /// The Cloud API refused with `code`; the guard recorded it and answered its effect.
    Failed {
        /// Meta's error code.
        code: u32,
        /// What the guard does with it ([`CodeEffect::retryable`] says whether to try again).
        effect: CodeEffect,
    },
}

/// Reserves a free-form message to `key` (or, when only a template may go, a template of
/// `fallback`), calls `send` with what may go, and feeds a refusal's code back to the guard.
///
/// `send` is the service's Cloud API call: `Ok(())` when Meta accepted the message,
/// `Err(code)` with the `error.code` of Meta's answer. A refused reservation consumes
/// nothing, so falling back to a template counts the idempotency key once.
pub async fn send_guarded<S, F, Fut>(
    guard: &Guard<S>,
    key: &ContactKey,
    fallback: Option<TemplateCategory>,
    idempotency_key: Option<&str>,
    send: F,
) -> Result<Outcome, GuardError>
where
    S: Store,
    F: FnOnce(Outgoing) -> Fut,
    Fut: Future<Output = Result<(), u32>>,
{
    let mut outgoing = Outgoing::FreeForm;
    let mut decision = guard
        .reserve(key, outgoing, idempotency_key, guard.clock().now())
        .await?;
    if let (Decision::TemplateRequired { .. }, Some(category)) = (decision, fallback) {
        outgoing = Outgoing::Template(category);
        decision = guard
            .reserve(key, outgoing, idempotency_key, guard.clock().now())
            .await?;
    }
    if !decision.permits(outgoing) {
        return Ok(Outcome::Refused(decision));
    }
    match send(outgoing).await {
        Ok(()) => Ok(Outcome::Sent(outgoing)),
        Err(code) => {
            let effect = guard
                .record_send_error(key, code, None, guard.clock().now())
                .await?;
            Ok(Outcome::Failed { code, effect })
        }
    }
}
