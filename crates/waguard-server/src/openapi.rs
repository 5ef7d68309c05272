//! The OpenAPI document of the main listener, served at `/openapi.json`.
//!
//! The request schemas below describe the bodies; the bodies themselves are read by
//! [`parse_body`](crate::line::parse_body), the code that reads replay lines.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::server::{ErrorAnswer, WebhookAnswer};

/// The contact: exactly one of `to`, `user_id` or `group_id`.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ContactRequest {
    /// The business phone number id (`metadata.phone_number_id`).
    from: String,
    /// The contact's phone number (`+33 6 12 34 56 78` and `33612345678` are the same).
    to: Option<String>,
    /// The contact's business-scoped user id.
    user_id: Option<String>,
    /// A group id.
    group_id: Option<String>,
    /// The instant (RFC 3339); honoured only by a server started with `--trust-client-time`.
    at: Option<String>,
}

/// The template a message names: its name and language code (rules T1-T3).
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct TemplateRef {
    /// The template's name (`order_shipped`).
    name: String,
    /// Its language code (`en_US`).
    language: String,
}

/// A `check` body.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct CheckRequest {
    #[serde(flatten)]
    contact: ContactRequest,
    /// `free_form` or `template`.
    message: String,
    /// For templates: `marketing`, `utility` or `authentication`.
    category: Option<String>,
    /// For templates: the template sent, when known.
    template: Option<TemplateRef>,
}

/// A `reserve` body.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ReserveRequest {
    #[serde(flatten)]
    contact: ContactRequest,
    /// `free_form` or `template`.
    message: String,
    /// For templates: `marketing`, `utility` or `authentication`.
    category: Option<String>,
    /// For templates: the template sent, when known.
    template: Option<TemplateRef>,
    /// The caller's key for one logical message: a retry with the same key is not counted
    /// twice (rule G1).
    idempotency_key: Option<String>,
}

/// Meta's error object, as the Graph API returned it.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct GraphError {
    /// Meta's error code (`131047`); the object's other fields are ignored.
    code: u32,
}

/// A `send_error` body: `code`, or Meta's `error` object.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct SendErrorRequest {
    #[serde(flatten)]
    contact: ContactRequest,
    /// Meta's error code.
    code: Option<u32>,
    /// Meta's error object instead of `code`.
    error: Option<GraphError>,
    /// The message id, if known.
    wamid: Option<String>,
    /// The template the failed send named, if any (T2).
    template: Option<TemplateRef>,
}

/// A `forget` body.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ForgetRequest {
    #[serde(flatten)]
    contact: ContactRequest,
    /// Erase the consent registers (opt-outs and opt-ins) too (E4); default false.
    include_opt_out: Option<bool>,
}

/// An `opt_out` or `opt_in` body.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct PreferenceRequest {
    #[serde(flatten)]
    contact: ContactRequest,
    /// `all` (the default) or `marketing`.
    scope: Option<String>,
}

/// A `clear_sender` body.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct SenderRequest {
    /// The business phone number id.
    from: String,
    /// The instant (RFC 3339); honoured only with `--trust-client-time`.
    at: Option<String>,
}

/// A decision, as replay answers a `check` or `reserve` line (without `line`).
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct DecisionResponse {
    /// `free_form`, `template_required` or `blocked`.
    decision: String,
    /// Whether the message asked about may go.
    allowed: bool,
    /// The rules.md reason; null for `free_form`.
    reason: Option<String>,
    /// When the answer changes by time alone (RFC 3339), or null.
    until: Option<String>,
}

/// The decisions for each kind of message.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct DecisionsResponse {
    free_form: DecisionResponse,
    marketing: DecisionResponse,
    utility: DecisionResponse,
    authentication: DecisionResponse,
}

/// One contact's state and the decision for each kind of message now.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ContactResponse {
    /// The key (`BUSINESS/p:PHONE`).
    key: String,
    /// The instant of the decisions.
    at: String,
    /// The contact's stored state.
    #[schema(value_type = Object)]
    state: (),
    /// The business number's stored state.
    #[schema(value_type = Object)]
    sender: (),
    /// The business number's portfolio (rules L1-L3): `name`, `limit`, `live_count`,
    /// `next_expiry`.
    #[schema(value_type = Object)]
    portfolio: (),
    decisions: DecisionsResponse,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "waguard serve",
        description = "The pre-send guard for WhatsApp Business messages as an HTTP sidecar: the answers of `waguard replay`, over HTTP."
    ),
    paths(
        crate::server::check,
        crate::server::reserve,
        crate::server::send_errors,
        crate::server::opt_outs,
        crate::server::opt_ins,
        crate::server::forget,
        crate::server::clear_sender,
        crate::server::contact,
        crate::server::erase_contact,
        crate::server::handshake,
        crate::server::webhook,
    ),
    components(schemas(
        ContactRequest,
        CheckRequest,
        ReserveRequest,
        SendErrorRequest,
        PreferenceRequest,
        SenderRequest,
        ForgetRequest,
        TemplateRef,
        DecisionResponse,
        ContactResponse,
        ErrorAnswer,
        WebhookAnswer
    )),
    modifiers(&BearerAuth)
)]
struct Document;

/// The OpenAPI document as JSON text (built once).
pub fn document() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        Document::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
    })
}
