//! Every decision rule, one module per family, applied in the order of rules.md section 7:
//! the first rule that refuses wins.
//!
//! | step | module | rules |
//! |---|---|---|
//! | 1 | [`sender`] | S1 sender_restricted, S2 throughput_limited (S4 in the guard), S2 api_rate_limited, S2 service_unavailable, S3 spam_rate_limited |
//! | 2 | [`Registry`] | T1 template_disabled, template_not_approved, template_paused, template_unknown |
//! | 2 | [`region`] | R1 restricted_region |
//! | 3 | [`consent`] | O1 opted_out |
//! | 4 | [`delivery`] | D1 undeliverable |
//! | 5 | [`delivery`], [`resend`] | D3 pair_rate_limited, G1 resend_limit |
//! | 6 | [`consent`], [`region`], [`delivery`] | O2, R3, D4 (marketing templates); O4 (templates) |
//! | 7 | [`window`] | W2-W4, W7 |

pub mod consent;
pub mod delivery;
pub mod region;
pub mod resend;
pub mod sender;
pub mod window;

use crate::decision::{BlockReason, Decision};
use crate::event::Outgoing;
use crate::id::ContactKey;
use crate::policy::Policy;
use crate::state::{ConversationState, SenderState};
use crate::template::TemplateState;
use crate::time::Timestamp;

/// What the registry knows that a decision may need beyond the contact and its sender: the
/// template a message names (section 7 step 2, rules T1-T3) and the portfolio's messaging
/// limit (step 8, rules L1-L3).
#[derive(Clone, Copy, Debug, Default)]
pub struct Registries<'a> {
    /// The named template.
    pub template: Registry<'a>,
    /// The portfolio of the business number: `None` leaves step 8 out (and counts nothing).
    pub portfolio: Option<&'a crate::PortfolioState>,
}

impl<'a> Registries<'a> {
    fn portfolio(&self) -> Option<&'a crate::PortfolioState> {
        self.portfolio
    }

    fn effective(&self, outgoing: Outgoing) -> Outgoing {
        self.template.effective(outgoing)
    }

    fn refusal(&self, outgoing: Outgoing, now: Timestamp, policy: &Policy) -> Option<Decision> {
        self.template.refusal(outgoing, now, policy)
    }
}

/// What the template registry knows of the template a message names (section 7 step 2, rules
/// T1-T3).
#[derive(Clone, Copy, Debug, Default)]
pub enum Registry<'a> {
    /// The message names no template: rule T never refuses it.
    #[default]
    NotNamed,
    /// It names a template the registry has no record of, or the business number's account
    /// is not known (T4).
    Unknown,
    /// It names a template the registry has a record of.
    Record(&'a TemplateState),
}

impl Registry<'_> {
    /// T3: the message with the category Meta gave its template in place of the caller's.
    pub fn effective(self, outgoing: Outgoing) -> Outgoing {
        match (outgoing, self) {
            (Outgoing::Template(_), Registry::Record(t)) => {
                t.effective_category().map_or(outgoing, Outgoing::Template)
            }
            _ => outgoing,
        }
    }

    /// T1: the refusal of step 2, if any.
    fn refusal(self, outgoing: Outgoing, now: Timestamp, policy: &Policy) -> Option<Decision> {
        if !outgoing.is_template() {
            return None;
        }
        match self {
            Registry::NotNamed => None,
            Registry::Record(t) if t.is_known() => t.refusal(now, policy),
            Registry::Record(_) | Registry::Unknown => policy
                .require_known_templates
                .then(|| blocked(BlockReason::TemplateUnknown, None)),
        }
    }
}

/// Everything one decision looks at. Borrowed, so building one costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The key the message would go to.
    pub key: &'a ContactKey,
    /// The key's state.
    pub state: &'a ConversationState,
    /// The state of the key's business number.
    pub sender: &'a SenderState,
}

pub(crate) fn blocked(reason: BlockReason, until: Option<Timestamp>) -> Decision {
    Decision::Blocked { reason, until }
}

/// Decides whether `outgoing` may go to the subject's key at `now`: pure, allocation-free, and
/// read-only (the pair budget is reported, not consumed; use [`reserve`] to consume it).
///
/// ```
/// use waguard_core::*;
/// let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
/// let policy = Policy::default();
/// let t0 = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
/// let mut state = ConversationState::default();
/// let sender = SenderState::default();
/// let d = decide(Subject { key: &key, state: &state, sender: &sender }, Outgoing::FreeForm, t0, &policy);
/// assert_eq!(d, Decision::TemplateRequired { reason: TemplateReason::FirstContact });
///
/// state.apply(&Event::Inbound { at: t0, text: Some("hi".into()), referral: false }, &policy);
/// let d = decide(Subject { key: &key, state: &state, sender: &sender }, Outgoing::FreeForm, t0, &policy);
/// assert_eq!(d.until().unwrap().to_string(), "2026-03-02T00:00:00Z");
/// ```
pub fn decide(
    subject: Subject<'_>,
    outgoing: Outgoing,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    decide_with(subject, outgoing, Registries::default(), now, policy, None)
}

/// [`decide`] with what the registry knows: step 2 asks it about the named template (T1), the
/// category Meta gave the template replaces the caller's for every rule that looks at
/// categories (T3), and step 8 looks at the portfolio's messaging limit (L3).
pub fn decide_named(
    subject: Subject<'_>,
    outgoing: Outgoing,
    registry: Registries<'_>,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    decide_with(subject, outgoing, registry, now, policy, None)
}

/// The chain of section 7, with the G1 check of a reservation slotted in at step 5.
fn decide_with(
    s: Subject<'_>,
    outgoing: Outgoing,
    registry: Registries<'_>,
    now: Timestamp,
    policy: &Policy,
    idempotency: Option<u64>,
) -> Decision {
    if let Some(d) = sender::refusal(s.sender, now, policy) {
        return d;
    }
    if let Some(d) = registry.refusal(outgoing, now, policy) {
        return d;
    }
    let outgoing = registry.effective(outgoing);
    if let Some(d) = region::restricted(s.key, policy) {
        return d;
    }
    if let Some(d) = consent::opted_out(s.state) {
        return d;
    }
    if let Some(d) = delivery::undeliverable(s.state, now, policy) {
        return d;
    }
    if let Some(d) = delivery::pair_rate_limited(s.state, now, policy) {
        return d;
    }
    if let Some(hash) = idempotency {
        if let Some(d) = resend::resend_limit(s.state, hash, now, policy) {
            return d;
        }
    }
    if outgoing.is_marketing() {
        if let Some(d) = consent::marketing_opted_out(s.state) {
            return d;
        }
        if let Some(d) = region::marketing_unavailable(s.key, policy) {
            return d;
        }
        if let Some(d) = delivery::marketing_limited(s.state, now) {
            return d;
        }
    }
    if outgoing.is_template() {
        if let Some(d) = consent::no_opt_in(s.state, outgoing, policy) {
            return d;
        }
    }
    let window = window::decide(s.state, now, policy);
    // Step 8 (L3): a template that would count against the portfolio's messaging limit.
    if let Some(portfolio) = registry.portfolio() {
        if would_count(s.state, outgoing, &window, now) {
            if let Some(d) = portfolio.refusal(now, policy) {
                return d;
            }
        }
    }
    window
}

/// L3: whether a template reserved now would count against the portfolio: the window is not
/// open, and the key was not counted in the last 24 hours.
pub fn would_count(
    state: &ConversationState,
    outgoing: Outgoing,
    window: &Decision,
    now: Timestamp,
) -> bool {
    outgoing.is_template()
        && !matches!(window, Decision::FreeForm { .. })
        && state
            .counted_at
            .map_or(true, |c| c.saturating_add(crate::policy::DAY) <= now)
}

/// Atomically checks and records one send (the pure half of `Guard::reserve`): decides with the
/// resend cap (G1) when an idempotency key is given, and when the message may go, consumes one
/// slot of the pair budget (D3), counts the attempt (G1) and records a template as sent (W3). A
/// refused reservation changes nothing.
///
/// ```
/// use waguard_core::*;
/// let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
/// let policy = Policy { max_attempts: 1, ..Policy::default() };
/// let now = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
/// let mut state = ConversationState::default();
/// let sender = SenderState::default();
/// let tpl = Outgoing::Template(TemplateCategory::Utility);
/// let first = reserve(&key, &mut state, &sender, tpl, Some("order-42"), now, &policy);
/// assert!(first.permits(tpl));
/// let again = reserve(&key, &mut state, &sender, tpl, Some("order-42"), now, &policy);
/// assert_eq!(again.reason().unwrap().as_str(), "resend_limit");
/// ```
pub fn reserve(
    key: &ContactKey,
    state: &mut ConversationState,
    sender: &SenderState,
    outgoing: Outgoing,
    idempotency_key: Option<&str>,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    reserve_named(
        key,
        state,
        sender,
        outgoing,
        Registries::default(),
        idempotency_key,
        now,
        policy,
    )
}

/// [`reserve`] with what the registry knows (see [`decide_named`]); a template that counts
/// against the portfolio (L3) records the key as counted (`counted_at`), and the caller adds
/// the count to the portfolio's record in the same step.
#[allow(clippy::too_many_arguments)]
pub fn reserve_named(
    key: &ContactKey,
    state: &mut ConversationState,
    sender: &SenderState,
    outgoing: Outgoing,
    registry: Registries<'_>,
    idempotency_key: Option<&str>,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    let hash = idempotency_key.map(resend::hash_key);
    let subject = Subject { key, state, sender };
    let decision = decide_with(subject, outgoing, registry, now, policy, hash);
    if decision.permits(outgoing) {
        delivery::consume_pair_budget(state, now, policy);
        if let Some(hash) = hash {
            state.record_attempt(hash, now, crate::policy::DAY);
        }
        if outgoing.is_template() {
            if registry.portfolio().is_some()
                && would_count(state, outgoing, &window::decide(state, now, policy), now)
            {
                state.counted_at = Some(now);
            }
            state.record_template(now);
        }
    }
    decision
}
