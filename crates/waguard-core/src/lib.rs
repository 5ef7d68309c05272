//! # waguard-core
//!
//! The pure rules of waguard, the pre-send guard for WhatsApp Business messages sent through
//! Meta's Cloud API: may this message go to this contact now, and how?
//!
//! This crate does no I/O, has no async and never reads a clock: every instant is an argument
//! (rule E3). It holds
//! - validated identifiers ([`BusinessId`], [`ContactId`], [`ContactKey`]; rules K1-K4),
//! - the [`Event`]s that change state and the [`ConversationState`] / [`SenderState`] they
//!   change (join-semilattices, so duplicated and reordered events converge: rule E1),
//! - the [`Policy`] with every tunable, and [`decide`] / [`reserve`], which turn state into a
//!   [`Decision`]: `free_form`, `template_required` or `blocked`, with a reason and the instant
//!   the answer changes,
//! - the error-code table ([`CodeEffect`]) and the stored form of records ([`FORMAT_VERSION`]).
//!
//! Each rule id (`W2`, `O3`, ...) is explained in `docs/rules.md` of the repository; the code
//! that implements it is in [`rules`], one module per family.
//!
//! ```
//! use waguard_core::*;
//! let policy = Policy::default();
//! let key: ContactKey = "100000001/p:+33 6 12 34 56 78".parse().unwrap();
//! let mut state = ConversationState::default();
//! let sender = SenderState::default();
//! let now = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
//!
//! // The contact wrote two hours ago: the window is open.
//! let inbound = Event::Inbound { at: Timestamp::parse_rfc3339("2026-03-01T10:00:00Z").unwrap(), text: Some("hi".into()), referral: false };
//! state.apply(&inbound, &policy);
//! let d = decide(Subject { key: &key, state: &state, sender: &sender }, Outgoing::FreeForm, now, &policy);
//! assert!(d.permits(Outgoing::FreeForm));
//! assert_eq!(d.until().unwrap().to_string(), "2026-03-02T10:00:00Z");
//! ```

mod code;
mod decision;
mod encode;
mod error;
mod event;
mod id;
mod meta_error;
mod policy;
mod portfolio;
pub mod rules;
mod state;
mod template;
mod time;

pub use code::{CodeEffect, CodeScope};
pub use decision::{BlockReason, Decision, Reason, TemplateReason};
pub use encode::FORMAT_VERSION;
pub use error::{
    DecodeError, IdError, IdProblem, MalformedRecord, PolicyError, RecordProblem, TimeError,
};
pub use event::{
    DeliveryStatus, Event, KeyedEvent, Outgoing, Preference, Scope, SenderEvent, TemplateCategory,
    WamidHash,
};
pub use id::{
    AccountId, Bsuid, BusinessId, ContactId, ContactKey, GroupId, KeyParseError, PhoneNumber,
    PhoneRegion,
};
pub use meta_error::{MetaError, MetaErrorParseError};
pub use policy::{
    Keyword, PairRate, Policy, DAY, DEFAULT_RESTRICTED_COUNTRIES, DEFAULT_RESTRICTED_PREFIXES,
    WINDOW,
};
pub use portfolio::{MessagingLimit, PortfolioState};
pub use rules::{
    decide, decide_named, reserve, reserve_named, would_count, Registries, Registry, Subject,
};
pub use state::{
    Attempts, ConversationState, DeliveryEntry, FailureEntry, Feedback, Link, OptRegister,
    SenderState,
};
pub use template::{
    PauseKind, TemplateEvent, TemplateId, TemplateName, TemplateState, TemplateStatus,
};
pub use time::Timestamp;
