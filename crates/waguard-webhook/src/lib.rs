//! # waguard-webhook
//!
//! The door through which waguard learns what happened: Meta's WhatsApp Cloud API webhooks,
//! turned into [`waguard_core::KeyedEvent`]s for the guard to ingest.
//!
//! - [`parse_signed`]: checks `X-Hub-Signature-256` (rule H2) and only then parses: the one
//!   call a webhook endpoint needs for its `POST`s.
//! - [`parse`]: the same without the signature check (tests, replays, bodies verified
//!   elsewhere), built from [`read`] (limits, UTF-8, JSON, `object`) and
//!   [`Notification::to_events`](payload::Notification::to_events) (the mapping).
//! - [`verify_signature`] / [`sign`]: the HMAC-SHA256 check alone, and its inverse.
//! - [`HubQuery`] / [`verify_subscription`]: the verification `GET` (rule H3).
//! - [`payload`]: the serde types of the payloads, borrowed from the body.
//!
//! ## What becomes what
//! | payload item | event |
//! | --- | --- |
//! | `messages[]`, any type but `system` | `Inbound { at, text, referral }` (W1, W5, O1) |
//! | `messages[]` with `group_id` | the same, keyed by the group (W7) |
//! | `statuses[]` `sent`/`delivered`/`read` | `Status`, plus `TemplateSent` when `pricing.category` is a template category (W3) |
//! | `statuses[]` `failed` | one `Failure { code, wamid }` per `errors[]` entry (W4, O2, D1-D5, S1-S3) |
//! | value-level `errors[]` | `KeyedEvent::Sender` `Failure`, dated with the receive time (S1-S3) |
//! | `user_preferences[]` `marketing_messages` `stop`/`resume` | `MarketingPreference` (O2) |
//! | `calls[]` `connect`, `USER_INITIATED` | `Inbound { text: None, referral: false }` (W1) |
//!
//! The business of every key is the change's `metadata.phone_number_id` (K4). The contact is
//! the phone number when one is known, from the item or from the `contacts[]` entry with the
//! same user id, else the business-scoped user id (K3). Message text is passed raw: the core's
//! policy matches opt-out keywords (O1). Other fields, unknown message types and unknown
//! statuses are tolerated; a malformed item is reported in [`Parsed::errors`] with its JSON
//! path and the others are still returned (H1). Duplicated and reordered deliveries (H4) are
//! harmless because the core's state converges (E1); this crate does not deduplicate.
//!
//! ## Hostile input
//! Endpoints are public. The body size and nesting depth are checked before anything is parsed
//! ([`Limits`], 1 MiB and 64 levels by default), the number of array items read is capped
//! (10,000), so memory stays bounded by a few megabytes; a bad signature means nothing is parsed, and
//! no input makes these functions panic (the cargo-fuzz target `fuzz/fuzz_targets/
//! webhook_parse.rs` drives every entry point; `cargo test -p waguard-test-support` replays
//! its corpus).
//!
//! ## Example
//! ```
//! use waguard_core::{Event, KeyedEvent, Timestamp};
//! use waguard_webhook::{parse_signed, sign, Limits};
//!
//! let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398",
//!   "changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
//!   "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
//!   "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
//!   "messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
//!   "timestamp":"1749416383","type":"text","text":{"body":"STOP"}}]}}]}]}"#;
//! let secret = b"app-secret";
//! let header = sign(body, secret); // what Meta sends as X-Hub-Signature-256
//! let received_at = Timestamp::from_unix_seconds(1_749_416_390).unwrap();
//!
//! let parsed = parse_signed(body, Some(&header), secret, received_at, &Limits::default()).unwrap();
//! assert!(parsed.is_clean());
//! match &parsed.events[0] {
//!     KeyedEvent::Contact { key, event: Event::Inbound { at, text, referral } } => {
//!         assert_eq!(key.to_string(), "106540352242922/p:16505551234");
//!         assert_eq!(*at, Timestamp::from_unix_seconds(1_749_416_383).unwrap());
//!         assert_eq!(text.as_deref(), Some("STOP")); // the core's policy decides it is an opt-out
//!         assert!(!referral);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // A tampered body is refused before parsing.
//! let mut tampered = body.to_vec();
//! tampered[10] ^= 1;
//! assert!(parse_signed(&tampered, Some(&header), secret, received_at, &Limits::default()).is_err());
//! ```

mod convert;
mod error;
mod handshake;
mod lenient;
mod limits;
pub mod payload;
mod signature;

pub use convert::{parse, read, Parsed};
pub use error::{
    HandshakeError, ItemError, ItemProblem, ParseError, SignatureError, SignedParseError,
};
pub use handshake::{verify_subscription, HubQuery};
pub use lenient::{Arr, JsonKind, Obj, Value};
pub use limits::Limits;
pub use signature::{sign, verify_signature};

use waguard_core::Timestamp;

/// Verifies the signature (rule H2), then parses (rules H1, H4): what a webhook endpoint calls
/// on each `POST`.
///
/// `signature_header` is the `X-Hub-Signature-256` header (`None` when absent), `app_secret`
/// the Meta app secret, `received_at` the time the request arrived (see [`parse`]). The body
/// size limit is checked first, so that no HMAC is computed over an oversized body; then the
/// signature; only a body with a good signature is parsed at all.
pub fn parse_signed(
    body: &[u8],
    signature_header: Option<&str>,
    app_secret: &[u8],
    received_at: Timestamp,
    limits: &Limits,
) -> Result<Parsed, SignedParseError> {
    limits.check_size(body)?;
    verify_signature(body, signature_header, app_secret)?;
    Ok(parse(body, received_at, limits)?)
}
