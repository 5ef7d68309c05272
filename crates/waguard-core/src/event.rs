//! What can happen to a key or a business number, and what the caller wants to send.

use serde::{Deserialize, Serialize};

use crate::code::{CodeEffect, CodeScope};
use crate::time::Timestamp;

/// A 64-bit hash of a message id (`wamid`), enough to match a failure with the delivery of the
/// same message (rule D2). Stable across versions and machines (XXH3-64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WamidHash(u64);

impl WamidHash {
    /// Hashes a message id as Meta writes it (`wamid.HBgL…`).
    ///
    /// ```
    /// use waguard_core::WamidHash;
    /// assert_eq!(WamidHash::of("wamid.ex1"), WamidHash::of("wamid.ex1"));
    /// assert_ne!(WamidHash::of("wamid.ex1"), WamidHash::of("wamid.ex2"));
    /// ```
    pub fn of(wamid: &str) -> Self {
        WamidHash(xxhash_rust::xxh3::xxh3_64(wamid.as_bytes()))
    }

    /// The hash as an integer.
    pub fn get(self) -> u64 {
        self.0
    }

    /// A hash from an integer (for decoding and tests).
    pub fn from_raw(raw: u64) -> Self {
        WamidHash(raw)
    }
}

/// Which register an explicit opt-out or opt-in writes (rules O1, O2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Every outgoing message (O1). The default.
    #[default]
    All,
    /// Marketing templates only (O2).
    Marketing,
}

/// A `user_preferences` webhook value (rule O2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// `stop`: no more marketing messages.
    Stop,
    /// `resume`: marketing messages welcome again.
    Resume,
}

/// A delivery status of an outgoing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Accepted by Meta and sent.
    Sent,
    /// Delivered to the user's device.
    Delivered,
    /// Read by the user.
    Read,
}

/// Something that happened to one (business, contact) key. Built by the webhook crate, by the
/// guard's `record_*` calls, or by hand; validated on construction, so applying one never fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// W1: an inbound message (any type but `system`) or a user-initiated call.
    Inbound {
        /// The webhook timestamp.
        at: Timestamp,
        /// The body of a `text` message or the text of a quick-reply `button`, for keyword
        /// matching (O1); `None` for other types and for calls.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// W5: the conversation came from a click-to-WhatsApp ad or Page button.
        #[serde(default)]
        referral: bool,
    },
    /// W3: a template went out (local record, or a status whose pricing category is a template
    /// category).
    TemplateSent {
        /// When it went out.
        at: Timestamp,
    },
    /// A `sent`, `delivered` or `read` status of an outgoing message (D1, D2, S1).
    Status {
        /// The status timestamp.
        at: Timestamp,
        /// Which status.
        status: DeliveryStatus,
        /// The message's id hash, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wamid: Option<WamidHash>,
    },
    /// A failed send: a `failed` status or the error code of a synchronous send.
    Failure {
        /// When it failed.
        at: Timestamp,
        /// Meta's error code.
        code: u32,
        /// The message's id hash, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wamid: Option<WamidHash>,
    },
    /// O2: a `user_preferences` webhook for `marketing_messages`.
    MarketingPreference {
        /// The preference's timestamp.
        at: Timestamp,
        /// `stop` or `resume`.
        value: Preference,
    },
    /// O1/O2: an explicit opt-out.
    OptOut {
        /// When the contact opted out.
        at: Timestamp,
        /// Which register.
        #[serde(default)]
        scope: Scope,
    },
    /// O1/O2/O4: an explicit opt-in.
    OptIn {
        /// When the contact opted in.
        at: Timestamp,
        /// Which register.
        #[serde(default)]
        scope: Scope,
    },
}

impl Event {
    /// When the event happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::Inbound { at, .. }
            | Event::TemplateSent { at }
            | Event::Status { at, .. }
            | Event::Failure { at, .. }
            | Event::MarketingPreference { at, .. }
            | Event::OptOut { at, .. }
            | Event::OptIn { at, .. } => *at,
        }
    }

    /// Whether the event advances the key's newest event time (rules.md section 8): inbound
    /// messages and calls, delivered and read statuses, templates sent, failures with a code
    /// that acts on the contact, preferences, opt-outs and opt-ins. A `sent` status, a D5 code
    /// and a sender-level code do not.
    pub fn advances_latest(&self) -> bool {
        match self {
            Event::Status { status, .. } => *status != DeliveryStatus::Sent,
            Event::Failure { code, .. } => CodeEffect::of(*code).scope() == CodeScope::Contact,
            _ => true,
        }
    }

    /// E5: the event with its instant moved back to `limit` if it was later (the receive time
    /// plus `Policy::max_clock_skew`). The event is kept, so a STOP is never dropped; its reach
    /// is bounded.
    pub fn clamped(mut self, limit: Timestamp) -> Self {
        let at = match &mut self {
            Event::Inbound { at, .. }
            | Event::TemplateSent { at }
            | Event::Status { at, .. }
            | Event::Failure { at, .. }
            | Event::MarketingPreference { at, .. }
            | Event::OptOut { at, .. }
            | Event::OptIn { at, .. } => at,
        };
        *at = (*at).min(limit);
        self
    }

    /// What this event means for the business number, if anything: a failure with a
    /// sender-level code (S1-S3), or a status (which lifts S1 when strictly newer).
    pub fn sender_event(&self) -> Option<SenderEvent> {
        match *self {
            Event::Status { at, .. } => Some(SenderEvent::Success { at }),
            Event::Failure { at, code, .. }
                if CodeEffect::of(code).scope() == CodeScope::Sender =>
            {
                Some(SenderEvent::Failure { at, code })
            }
            _ => None,
        }
    }
}

/// Something that happened to a business number as a whole (rules S1-S3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SenderEvent {
    /// A failure with a sender-level code (other codes are ignored here).
    Failure {
        /// When it failed.
        at: Timestamp,
        /// Meta's error code.
        code: u32,
    },
    /// A `sent`, `delivered` or `read` status: lifts S1 when strictly newer than the failure.
    Success {
        /// The status timestamp.
        at: Timestamp,
    },
    /// An explicit `clear_sender`: lifts S1 when newer than the failure.
    Clear {
        /// When the operator cleared it.
        at: Timestamp,
    },
}

impl SenderEvent {
    /// E5: the event with its instant moved back to `limit` if it was later.
    pub fn clamped(mut self, limit: Timestamp) -> Self {
        let (SenderEvent::Failure { at, .. }
        | SenderEvent::Success { at }
        | SenderEvent::Clear { at }) = &mut self;
        *at = (*at).min(limit);
        self
    }

    /// When the event happened.
    pub fn at(&self) -> Timestamp {
        match *self {
            SenderEvent::Failure { at, .. }
            | SenderEvent::Success { at }
            | SenderEvent::Clear { at } => at,
        }
    }
}

/// A template's category, as approved by Meta.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateCategory {
    /// Marketing (O2, R3, D4 apply).
    Marketing,
    /// Utility.
    Utility,
    /// Authentication.
    Authentication,
}

/// The message the caller wants to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "message", content = "category", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outgoing {
    /// Anything that is not a template: text, media, interactive, reaction, ...
    FreeForm,
    /// An approved template of the given category.
    Template(TemplateCategory),
}

impl Outgoing {
    /// Whether this is a template.
    pub fn is_template(self) -> bool {
        matches!(self, Outgoing::Template(_))
    }

    /// Whether this is a marketing template.
    pub fn is_marketing(self) -> bool {
        matches!(self, Outgoing::Template(TemplateCategory::Marketing))
    }
}

/// An event together with what it is about: one contact key, or one business number as a
/// whole. This is what the webhook crate produces and what `Guard::ingest` consumes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyedEvent {
    /// An event of one (business, contact) key. Its sender-level part, if any, is found with
    /// [`Event::sender_event`].
    Contact {
        /// The key.
        key: crate::id::ContactKey,
        /// The event.
        event: Event,
    },
    /// An event of a business number with no contact (`clear_sender`, a send error that names
    /// no contact).
    Sender {
        /// The business number.
        business: crate::id::BusinessId,
        /// The event.
        event: SenderEvent,
    },
    /// K5: an item carried both a BSUID and a phone of one business number: they are one
    /// person, and the BSUID's state joins the phone's key.
    Link {
        /// The business number.
        business: crate::id::BusinessId,
        /// The business-scoped user id (never a parent id).
        user: crate::id::Bsuid,
        /// The phone it belongs to.
        phone: crate::id::PhoneNumber,
        /// The item's own time (the register's order).
        at: Timestamp,
    },
    /// K6: a `user_changed_number` system message: the person behind `from` now uses `to`;
    /// `from`'s objections follow them.
    NumberChanged {
        /// The business number.
        business: crate::id::BusinessId,
        /// The old number.
        from: crate::id::PhoneNumber,
        /// The new number.
        to: crate::id::PhoneNumber,
        /// The system message's time.
        at: Timestamp,
    },
    /// T1-T3: something Meta said about a template (a status or category update, from the
    /// account-level webhook fields).
    Template {
        /// The template identity.
        template: crate::template::TemplateId,
        /// What was said.
        event: crate::template::TemplateEvent,
    },
    /// L2: a `business_capability_update` or `phone_number_quality_update` set the messaging
    /// limit of the account's portfolio.
    PortfolioLimit {
        /// The account the webhook named (`entry[].id`); its portfolio is the policy's.
        account: crate::id::AccountId,
        /// The limit.
        limit: crate::portfolio::MessagingLimit,
        /// The event's time (`entry[].time`, else the receive time).
        at: Timestamp,
    },
    /// T4: a webhook carrying this business number's `metadata.phone_number_id` named its
    /// account in `entry[].id`.
    AccountLink {
        /// The business number.
        business: crate::id::BusinessId,
        /// The account it belongs to.
        account: crate::id::AccountId,
        /// The receive time (T4 orders links by it).
        at: Timestamp,
    },
}

impl KeyedEvent {
    /// E5: the event with every instant moved back to `limit` if it was later.
    pub fn clamped(self, limit: Timestamp) -> Self {
        match self {
            KeyedEvent::Contact { key, event } => KeyedEvent::Contact {
                key,
                event: event.clamped(limit),
            },
            KeyedEvent::Sender { business, event } => KeyedEvent::Sender {
                business,
                event: event.clamped(limit),
            },
            KeyedEvent::Link {
                business,
                user,
                phone,
                at,
            } => KeyedEvent::Link {
                business,
                user,
                phone,
                at: at.min(limit),
            },
            KeyedEvent::NumberChanged {
                business,
                from,
                to,
                at,
            } => KeyedEvent::NumberChanged {
                business,
                from,
                to,
                at: at.min(limit),
            },
            KeyedEvent::Template { template, event } => KeyedEvent::Template {
                template,
                event: event.clamped(limit),
            },
            KeyedEvent::AccountLink {
                business,
                account,
                at,
            } => KeyedEvent::AccountLink {
                business,
                account,
                at: at.min(limit),
            },
            KeyedEvent::PortfolioLimit {
                account,
                limit: l,
                at,
            } => KeyedEvent::PortfolioLimit {
                account,
                limit: l,
                at: at.min(limit),
            },
        }
    }
}
