//! A test kit for the unit tests of a service that embeds the guard (feature `testing`): a
//! [`GuardFixture`] is a [`Guard`] on a fresh [`MemoryStore`] with a [`ManualClock`] you move
//! by hand, and builders for the events a service feeds it (inbound messages, statuses,
//! opt-outs and opt-ins, send errors), each stamped at the fixture's current instant.
//!
//! Nothing sleeps and nothing reads the system clock: a test sets the scene, moves the clock,
//! and asks the guard what it asks in production.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use waguard::fixture::GuardFixture;
//! use waguard::{Decision, Outgoing, TemplateCategory, TemplateReason};
//!
//! let fx = GuardFixture::new();
//! let key = fx.key("33612345678");
//!
//! // The contact writes: the 24-hour window opens.
//! fx.ingest([fx.inbound(&key, "Hello")]).await.unwrap();
//! fx.advance(Duration::from_secs(23 * 3600));
//! let decision = fx.check(&key, Outgoing::FreeForm).await.unwrap();
//! assert!(matches!(decision, Decision::FreeForm { .. }), "{decision:?}");
//!
//! // 24 hours after the inbound message, only a template may go.
//! fx.advance(Duration::from_secs(3600));
//! let decision = fx.check(&key, Outgoing::FreeForm).await.unwrap();
//! assert_eq!(
//!     decision,
//!     Decision::TemplateRequired { reason: TemplateReason::WindowExpired }
//! );
//! let template = Outgoing::Template(TemplateCategory::Utility);
//! assert!(fx.check(&key, template).await.unwrap().permits(template));
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::{
    BusinessId, ContactKey, Decision, DeliveryStatus, Event, Guard, GuardError, IngestReport,
    KeyedEvent, ManualClock, MemoryStore, Outgoing, Policy, Scope, Timestamp,
};

/// The business phone number id of a fixture's keys unless told otherwise.
pub const BUSINESS: &str = "100000001";

/// The instant a fixture's clock starts at: 2026-03-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_unix_nanos(1_772_323_200 * 1_000_000_000);

/// A [`Guard`] on a fresh [`MemoryStore`] with a [`ManualClock`], and builders for the events
/// a service feeds it. See the [module](self) documentation for an example.
///
/// Every builder stamps its event at [`now`](GuardFixture::now); [`check`](GuardFixture::check)
/// and [`ingest`](GuardFixture::ingest) run at `now` too. Reach the guard itself with
/// [`guard`](GuardFixture::guard) for anything else.
#[derive(Debug)]
pub struct GuardFixture {
    guard: Guard<MemoryStore>,
    clock: Arc<ManualClock>,
    business: BusinessId,
}

impl Default for GuardFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl GuardFixture {
    /// A fixture with [`Policy::default`], its clock at [`START`], its keys on business
    /// number [`BUSINESS`].
    pub fn new() -> Self {
        Self::with_policy(Policy::default()).expect("the default policy is valid")
    }

    /// A fixture with `policy`. Fails when the policy is invalid, as [`Guard::new`] does.
    pub fn with_policy(policy: Policy) -> Result<Self, GuardError> {
        let clock = Arc::new(ManualClock::new(START));
        let guard = Guard::with_clock(MemoryStore::new(), policy, clock.clone())?;
        Ok(GuardFixture {
            guard,
            clock,
            business: BusinessId::parse(BUSINESS).expect("a valid business number id"),
        })
    }

    /// The same fixture with its keys on business number `business` (a phone number id).
    ///
    /// # Panics
    /// When `business` is not a business phone number id (digits only): a test's typo.
    pub fn on_business(mut self, business: &str) -> Self {
        self.business = BusinessId::parse(business)
            .unwrap_or_else(|e| panic!("`{business}` is not a business phone number id: {e}"));
        self
    }

    /// The guard.
    pub fn guard(&self) -> &Guard<MemoryStore> {
        &self.guard
    }

    /// The guard's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The instant the clock shows.
    pub fn now(&self) -> Timestamp {
        crate::Clock::now(&*self.clock)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Sets the clock to `at`.
    pub fn set_now(&self, at: Timestamp) {
        self.clock.set(at);
    }

    /// The key of the contact with phone number `phone` (digits, `+` and separators allowed)
    /// on the fixture's business number.
    ///
    /// # Panics
    /// When `phone` is not a valid phone number (rule K1): a test's typo.
    pub fn key(&self, phone: &str) -> ContactKey {
        let text = format!("{}/p:{phone}", self.business.as_str());
        text.parse()
            .unwrap_or_else(|e| panic!("`{phone}` is not a contact phone number: {e}"))
    }

    /// The guard's decision for `outgoing` to `key` now.
    pub async fn check(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
    ) -> Result<Decision, GuardError> {
        self.guard.check(key, outgoing, self.now()).await
    }

    /// Feeds events to the guard as a webhook would, received now.
    pub async fn ingest(
        &self,
        events: impl IntoIterator<Item = KeyedEvent>,
    ) -> Result<IngestReport, GuardError> {
        self.guard.ingest_at(events, self.now()).await
    }

    /// An inbound text message from `key`'s contact now (it opens the 24-hour window; a stop
    /// or start keyword also opts out or in, rule O1).
    pub fn inbound(&self, key: &ContactKey, text: &str) -> KeyedEvent {
        self.event(
            key,
            Event::Inbound {
                at: self.now(),
                text: Some(text.to_owned()),
                referral: false,
            },
        )
    }

    /// An inbound message without text (media, a location, a call) from `key`'s contact now.
    pub fn inbound_media(&self, key: &ContactKey) -> KeyedEvent {
        self.event(
            key,
            Event::Inbound {
                at: self.now(),
                text: None,
                referral: false,
            },
        )
    }

    /// A delivery status of a message to `key` now.
    pub fn status(&self, key: &ContactKey, status: DeliveryStatus) -> KeyedEvent {
        self.event(
            key,
            Event::Status {
                at: self.now(),
                status,
                wamid: None,
            },
        )
    }

    /// A template sent to `key` now.
    pub fn template_sent(&self, key: &ContactKey) -> KeyedEvent {
        self.event(key, Event::TemplateSent { at: self.now() })
    }

    /// A failed send to `key` now, with Meta's error `code` (as a `failed` status or a send
    /// error reports it).
    pub fn send_error(&self, key: &ContactKey, code: u32) -> KeyedEvent {
        self.event(
            key,
            Event::Failure {
                at: self.now(),
                code,
                wamid: None,
            },
        )
    }

    /// An explicit opt-out of `key`'s contact now, of every message ([`Scope::All`]) or of
    /// marketing ([`Scope::Marketing`]).
    pub fn opt_out(&self, key: &ContactKey, scope: Scope) -> KeyedEvent {
        self.event(
            key,
            Event::OptOut {
                at: self.now(),
                scope,
            },
        )
    }

    /// An explicit opt-in of `key`'s contact now.
    pub fn opt_in(&self, key: &ContactKey, scope: Scope) -> KeyedEvent {
        self.event(
            key,
            Event::OptIn {
                at: self.now(),
                scope,
            },
        )
    }

    fn event(&self, key: &ContactKey, event: Event) -> KeyedEvent {
        KeyedEvent::Contact {
            key: key.clone(),
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockReason, TemplateCategory, TemplateReason};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn each_builder_reaches_the_rule_it_feeds() {
        run(async {
            let fx = GuardFixture::new().on_business("100000002");
            let key = fx.key("+33 6 12 34 56 78");
            assert_eq!(key.business.as_str(), "100000002");
            assert_eq!(fx.now(), START);
            assert_eq!(
                fx.check(&key, Outgoing::FreeForm).await.unwrap(),
                Decision::TemplateRequired {
                    reason: TemplateReason::FirstContact
                }
            );
            fx.ingest([fx.inbound_media(&key)]).await.unwrap();
            assert!(fx
                .check(&key, Outgoing::FreeForm)
                .await
                .unwrap()
                .permits(Outgoing::FreeForm));

            // W4: Meta closed the window early.
            fx.advance(Duration::from_secs(60));
            fx.ingest([fx.send_error(&key, 131047)]).await.unwrap();
            assert_eq!(
                fx.check(&key, Outgoing::FreeForm).await.unwrap(),
                Decision::TemplateRequired {
                    reason: TemplateReason::WindowClosedByPlatform
                }
            );

            // O2: a marketing opt-out blocks marketing templates only.
            let marketing = Outgoing::Template(TemplateCategory::Marketing);
            let utility = Outgoing::Template(TemplateCategory::Utility);
            fx.advance(Duration::from_secs(60));
            fx.ingest([fx.opt_out(&key, Scope::Marketing)])
                .await
                .unwrap();
            assert!(matches!(
                fx.check(&key, marketing).await.unwrap(),
                Decision::Blocked {
                    reason: BlockReason::MarketingOptedOut,
                    ..
                }
            ));
            assert!(fx.check(&key, utility).await.unwrap().permits(utility));
            fx.advance(Duration::from_secs(60));
            fx.ingest([fx.opt_in(&key, Scope::Marketing)])
                .await
                .unwrap();
            assert!(fx.check(&key, marketing).await.unwrap().permits(marketing));

            // O1: a STOP keyword blocks everything.
            fx.advance(Duration::from_secs(60));
            fx.ingest([fx.inbound(&key, "STOP")]).await.unwrap();
            assert!(matches!(
                fx.check(&key, utility).await.unwrap(),
                Decision::Blocked {
                    reason: BlockReason::OptedOut,
                    ..
                }
            ));

            // Statuses and templates sent are recorded without error.
            let report = fx
                .ingest([
                    fx.status(&key, DeliveryStatus::Delivered),
                    fx.template_sent(&key),
                ])
                .await
                .unwrap();
            assert_eq!(report.events, 2);
            fx.set_now(START);
            assert_eq!(fx.now(), START);
        });
    }
}
