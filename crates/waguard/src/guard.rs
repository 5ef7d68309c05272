//! [`Guard`]: store, policy and clock tied together for services.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod ingest;

use ingest::PendingSuccesses;
mod registry;
mod reserve;

use registry::registry_of;

use crate::clock::{Clock, SystemClock};
use crate::store::{Batch, RecordKey, Store, StoreError, UpdateAction};
use crate::{
    decide_named, AccountId, Bsuid, BusinessId, CodeEffect, CodeScope, ContactId, ContactKey,
    ConversationState, Decision, Event, KeyedEvent, Outgoing, PhoneNumber, Policy, PolicyError,
    PortfolioState, Registries, Scope, SenderEvent, SenderState, Subject, TemplateEvent,
    TemplateId, TemplateName, TemplateState, Timestamp, WamidHash,
};

/// A guard call failed. Refusing to send is never a `GuardError`: it is a [`Decision`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The store failed, or a stored record could not be decoded (the error names the key).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy given to [`Guard::new`] is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// What [`Guard::ingest`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestReport {
    /// Events received.
    pub events: usize,
    /// Distinct contact keys the events were about.
    pub contacts: usize,
    /// Contact records written (a duplicate or stale event changes nothing and writes nothing).
    pub contacts_written: usize,
    /// Sender records written (a success is written only while it lifts a restriction).
    pub senders_written: usize,
}

/// Decodes a contact record; an absent record is the empty state.
pub(crate) fn decode_contact(
    key: &ContactKey,
    bytes: Option<&[u8]>,
) -> Result<ConversationState, StoreError> {
    let mut state = ConversationState::default();
    decode_contact_into(key, bytes, &mut state)?;
    Ok(state)
}

/// Decodes a contact record into `state` (the empty state when absent), reusing its lists; a
/// damaged record is an error naming the key.
fn decode_contact_into(
    key: &ContactKey,
    bytes: Option<&[u8]>,
    state: &mut ConversationState,
) -> Result<(), StoreError> {
    match bytes {
        None => state.clear(),
        Some(b) => state.decode_into(b).map_err(|source| StoreError::Decode {
            record: RecordKey::Contact(key.clone()),
            source,
        })?,
    }
    Ok(())
}

thread_local! {
    /// A contact state reused by the guard's read paths on this thread: decoding into it
    /// allocates nothing once its lists have grown, and no 300-byte state is copied through
    /// `Result`s (a profile of `check` showed a fifth of its time in those copies).
    static SCRATCH: RefCell<ConversationState> = RefCell::new(ConversationState::default());
}

/// Runs `f` on the decoded contact record (the empty state when absent), decoded into this
/// thread's scratch state. `f` must not call back into the guard (it never does: closures
/// here are pure); if the scratch state is busy anyway, a fresh one is used.
pub(crate) fn with_contact_state<R>(
    key: &ContactKey,
    bytes: Option<&[u8]>,
    f: impl FnOnce(&mut ConversationState) -> R,
) -> Result<R, StoreError> {
    let decode = |state: &mut ConversationState| -> Result<R, StoreError> {
        decode_contact_into(key, bytes, state)?;
        Ok(f(state))
    };
    let mut decode = Some(decode);
    let mut result = None;
    // `try_with`: the thread may be tearing down its locals.
    let _ = SCRATCH.try_with(|cell| {
        if let Ok(mut state) = cell.try_borrow_mut() {
            result = decode.take().map(|decode| decode(&mut state));
        }
    });
    match decode {
        Some(decode) => decode(&mut ConversationState::default()),
        None => result.expect("the scratch state ran the closure"),
    }
}

/// Decodes a sender record; an absent record is the empty state.
pub(crate) fn decode_sender(
    business: &BusinessId,
    bytes: Option<&[u8]>,
) -> Result<SenderState, StoreError> {
    match bytes {
        None => Ok(SenderState::default()),
        Some(b) => SenderState::decode(b).map_err(|source| StoreError::Decode {
            record: RecordKey::Sender(business.clone()),
            source,
        }),
    }
}

struct Inner<S> {
    store: S,
    policy: Policy,
    clock: Arc<dyn Clock>,
    /// S1: the newest success per business number not yet written (it lifted nothing when it
    /// came), and when the last batch of them was written.
    successes: Mutex<PendingSuccesses>,
    /// S4: each business number's pace (the GCRA's theoretical arrival time), kept by this
    /// guard alone: it is about the next milliseconds, and one row written by every send of a
    /// busy number would serialise them.
    pace: Mutex<HashMap<BusinessId, Timestamp>>,
    /// T4: the account each business number was last seen with, so that a template decision
    /// names its registry records in the same read as the contact's (see `template_view`).
    accounts: Mutex<HashMap<BusinessId, Option<AccountId>>>,
    /// L3: counting reservations queued per portfolio behind the group being written.
    counting: Mutex<reserve::CountingQueues>,
}

/// Locks a mutex of this module, whose data stays consistent even if a holder panicked (each
/// critical section writes one value).
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A record whose encoding the store writes when it changed, else keeps.
trait Encode {
    fn encode_record(&self) -> Vec<u8>;
}

impl Encode for ConversationState {
    fn encode_record(&self) -> Vec<u8> {
        self.encode()
    }
}

impl Encode for SenderState {
    fn encode_record(&self) -> Vec<u8> {
        self.encode()
    }
}

impl Encode for TemplateState {
    fn encode_record(&self) -> Vec<u8> {
        self.encode()
    }
}

impl Encode for PortfolioState {
    fn encode_record(&self) -> Vec<u8> {
        self.encode()
    }
}

/// `Write` of the record's new encoding when it changed, `Keep` otherwise (nothing written).
fn write_if(changed: bool, record: &impl Encode) -> UpdateAction {
    if changed {
        UpdateAction::Write(record.encode_record())
    } else {
        UpdateAction::Keep
    }
}

/// The phone a stored contact record links to (K5), if it is a link record.
fn link_of(bytes: Option<&[u8]>) -> Option<PhoneNumber> {
    let bytes = bytes?;
    ConversationState::decode(bytes)
        .ok()
        .and_then(|s| s.link.map(|l| l.phone))
}

fn phone_key(business: &BusinessId, phone: PhoneNumber) -> ContactKey {
    ContactKey::new(business.clone(), ContactId::Phone(phone))
}

/// What a service calls before and after sending: ties a [`Store`], a validated [`Policy`] and
/// a [`Clock`] together.
///
/// Cheap to clone (one `Arc`) and safe to share between tasks. Every method takes its instant
/// explicitly (`now` for decisions, `at` for facts; rule E3); [`check_now`](Guard::check_now)
/// and [`reserve_now`](Guard::reserve_now) read the guard's clock instead.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use waguard::*;
/// let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
/// let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
/// let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
///
/// // Nobody wrote yet: only a template may go.
/// let d = guard.check(&key, Outgoing::FreeForm, t("2026-03-01T12:00:00Z")).await.unwrap();
/// assert_eq!(d.kind(), "template_required");
///
/// // The contact writes (from a webhook): the window opens for 24h.
/// let inbound = Event::Inbound { at: t("2026-03-01T12:00:00Z"), text: Some("hi".into()), referral: false };
/// guard.ingest([KeyedEvent::Contact { key: key.clone(), event: inbound }]).await.unwrap();
/// let d = guard.reserve(&key, Outgoing::FreeForm, None, t("2026-03-01T12:05:00Z")).await.unwrap();
/// assert!(d.permits(Outgoing::FreeForm));
/// assert_eq!(d.until(), Some(t("2026-03-02T12:00:00Z")));
/// # });
/// ```
pub struct Guard<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Guard {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.inner.policy)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Guard<S> {
    /// A guard over `store` deciding by `policy` (validated here), with the system clock.
    pub fn new(store: S, policy: Policy) -> Result<Self, GuardError> {
        Self::with_clock(store, policy, Arc::new(SystemClock))
    }

    /// A guard with its own clock (for the `*_now` conveniences; e.g. a
    /// [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(store: S, policy: Policy, clock: Arc<dyn Clock>) -> Result<Self, GuardError> {
        policy.validate()?;
        Ok(Guard {
            inner: Arc::new(Inner {
                store,
                policy,
                clock,
                successes: Mutex::new(PendingSuccesses::default()),
                pace: Mutex::new(HashMap::new()),
                accounts: Mutex::new(HashMap::new()),
                counting: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The clock of the `*_now` conveniences.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// May `outgoing` go to `key` at `now`? Read-only: the pair budget is reported, not consumed
    /// (use [`reserve`](Guard::reserve) right before sending).
    pub async fn check(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        self.check_named(key, outgoing, None, now).await
    }

    /// [`check`](Self::check) of a template message that names its template: step 2 asks the
    /// template registry (T1), and the category Meta gave it replaces `outgoing`'s (T3).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "check", key = %crate::observe::KeyHash(key), outgoing = ?outgoing, template = template.is_some()), ret(level = "debug"), err))]
    pub async fn check_named(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        template: Option<&TemplateName>,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        let resolved = self.resolve(key).await?;
        let key = &resolved;
        let policy = &self.inner.policy;
        if outgoing.is_template() {
            // A template needs the registry too: the template's and the portfolio's records,
            // read with the contact and its sender.
            let (state, sender, view) = self.template_view(key, template).await?;
            let registry = Registries {
                template: registry_of(template, view.template.as_ref()),
                portfolio: Some(&view.portfolio),
            };
            let subject = Subject {
                key,
                state: &state,
                sender: &sender,
            };
            let decision = decide_named(subject, outgoing, registry, now, policy);
            return Ok(self.paced(&key.business, decision, now));
        }
        let registry = Registries::default();
        let mut out: Option<Result<Decision, StoreError>> = None;
        let mut read = |contact: Option<&[u8]>, sender: Option<&[u8]>| {
            out = Some(decode_sender(&key.business, sender).and_then(|sender| {
                with_contact_state(key, contact, |state| {
                    let subject = Subject {
                        key,
                        state,
                        sender: &sender,
                    };
                    decide_named(subject, outgoing, registry, now, policy)
                })
            }));
        };
        match self.inner.store.load_now(key, &mut read) {
            Some(result) => result?,
            None => self.inner.store.load_with(key, &mut read).await?,
        }
        let decision = out.expect("the store ran the read closure")?;
        Ok(self.paced(&key.business, decision, now))
    }

    /// The contact's and its sender's states, in one read of the store.
    async fn records_of(
        &self,
        key: &ContactKey,
    ) -> Result<(ConversationState, SenderState), GuardError> {
        let mut out = None;
        self.inner
            .store
            .load_with(key, &mut |contact, sender| {
                out = Some(
                    decode_contact(key, contact)
                        .and_then(|state| Ok((state, decode_sender(&key.business, sender)?))),
                );
            })
            .await?;
        Ok(out.expect("the store ran the read closure")?)
    }

    /// S4: `decision` with the business number's pace applied (read-only).
    fn paced(&self, business: &BusinessId, decision: Decision, now: Timestamp) -> Decision {
        let pace = locked(&self.inner.pace);
        let tat = pace.get(business).copied();
        crate::rules::sender::paced(decision, tat, now, &self.inner.policy)
    }

    /// S4: takes one slot of the business number's pace if it has one at `now`; returns
    /// whether it did, and the pace before, to give the slot back if the reservation is
    /// refused.
    fn take_pace(&self, business: &BusinessId, now: Timestamp) -> (bool, Option<Timestamp>) {
        let rate = self.inner.policy.throughput;
        let mut pace = locked(&self.inner.pace);
        let before = pace.get(business).copied();
        if crate::rules::sender::pace_exhausted_until(before, now, rate).is_some() {
            return (false, before);
        }
        pace.insert(
            business.clone(),
            crate::rules::sender::pace_consume(before, now, rate),
        );
        (true, before)
    }

    /// S4: gives back a slot taken by [`take_pace`](Self::take_pace) for a refused reservation.
    fn give_back_pace(&self, business: &BusinessId, before: Option<Timestamp>, now: Timestamp) {
        let rate = self.inner.policy.throughput;
        let mut pace = locked(&self.inner.pace);
        if let Some(tat) = pace.get_mut(business) {
            // Other reservations may have taken slots since: take one interval off, never
            // below where the pace was or below now.
            let back = Timestamp::from_unix_nanos(
                tat.unix_nanos()
                    .saturating_sub(i64::try_from(rate.interval.as_nanos()).unwrap_or(i64::MAX)),
            );
            *tat = back.max(before.unwrap_or(now)).max(now);
        }
    }

    /// [`check`](Guard::check) at the clock's current instant.
    pub async fn check_now(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
    ) -> Result<Decision, GuardError> {
        self.check(key, outgoing, self.inner.clock.now()).await
    }

    /// Atomic check-and-record right before sending: decides (with the resend cap G1 when an
    /// idempotency key is given) and, when the message may go, consumes one slot of the pair
    /// budget (D3), counts the attempt (G1) and records a template as sent (W3), all in one
    /// atomic store update. Two tasks can never both take the last slot. A refused
    /// reservation changes nothing.
    pub async fn reserve(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        self.reserve_named(key, outgoing, None, idempotency_key, now)
            .await
    }

    /// [`reserve`](Self::reserve) of a template message that names its template (see
    /// [`check_named`](Self::check_named)).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "reserve", key = %crate::observe::KeyHash(key), outgoing = ?outgoing, template = template.is_some(), idempotent = idempotency_key.is_some()), ret(level = "debug"), err))]
    pub async fn reserve_named(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        template: Option<&TemplateName>,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        let mut target = self.resolve(key).await?;
        // S4: the pace refuses after S1; a refused reservation consumes nothing.
        let (took, before) = self.take_pace(&target.business, now);
        if !took {
            return self.check_named(&target, outgoing, template, now).await;
        }
        let outcome = self
            .reserve_counted(&mut target, outgoing, template, idempotency_key, now)
            .await;
        match &outcome {
            Ok(decision) if decision.permits(outgoing) => {}
            _ => self.give_back_pace(&target.business, before, now),
        }
        outcome
    }

    /// K5: the key an operation naming `key` applies to: the phone's key when `key` is a BSUID
    /// linked to a phone, else `key` itself.
    pub async fn resolve(&self, key: &ContactKey) -> Result<ContactKey, GuardError> {
        if !matches!(key.contact, ContactId::User(_)) {
            return Ok(key.clone());
        }
        let mut link = None;
        self.inner
            .store
            .load_with(key, &mut |contact, _sender| link = link_of(contact))
            .await?;
        Ok(match link {
            Some(phone) => phone_key(&key.business, phone),
            None => key.clone(),
        })
    }

    /// [`reserve`](Guard::reserve) at the clock's current instant.
    pub async fn reserve_now(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        idempotency_key: Option<&str>,
    ) -> Result<Decision, GuardError> {
        self.reserve(key, outgoing, idempotency_key, self.inner.clock.now())
            .await
    }

    /// Records the error code of a failed synchronous send, as a `failed` status with that code
    /// would (rules D1-D5, S1-S3, W4, O2), and returns the code's effect.
    ///
    /// For a [`CodeEffect::NotRetryable`] or [`CodeEffect::Unknown`] code nothing is recorded:
    /// the effect tells the caller to stop retrying (the request itself was wrong, D5) or that
    /// the guard does not know the code.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "send_error", key = %crate::observe::KeyHash(key), code = code), err))]
    pub async fn record_send_error(
        &self,
        key: &ContactKey,
        code: u32,
        wamid: Option<&str>,
        at: Timestamp,
    ) -> Result<CodeEffect, GuardError> {
        let effect = CodeEffect::of(code);
        if effect.scope() != CodeScope::None {
            let event = Event::Failure {
                at,
                code,
                wamid: wamid.map(WamidHash::of),
            };
            self.record(key, event).await?;
        }
        Ok(effect)
    }

    /// [`record_send_error`](Self::record_send_error) of a send that named its template: 132015
    /// (paused), 132016 (disabled) and 132001 (not approved in that language) also feed the
    /// template registry at `at` (T2), when the number's account is known (T4).
    pub async fn record_send_error_named(
        &self,
        key: &ContactKey,
        code: u32,
        wamid: Option<&str>,
        template: Option<&TemplateName>,
        at: Timestamp,
    ) -> Result<CodeEffect, GuardError> {
        if let (Some(template), Some(event)) = (template, TemplateEvent::of_send_error(code, at)) {
            if let Some(id) = self.template_id(&key.business, template).await? {
                self.apply_template(id, &[event]).await?;
            }
        }
        self.record_send_error(key, code, wamid, at).await
    }

    /// [`record_send_error`](Self::record_send_error) with the error as Meta answered the send
    /// (read with [`MetaError::from_json`](crate::MetaError::from_json)): records its code and
    /// returns the code's effect. With the send's template, use
    /// [`record_send_error_named`](Self::record_send_error_named) and `error.code`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use waguard::{CodeEffect, Guard, MemoryStore, MetaError, Policy, Timestamp};
    /// let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
    /// let key = "100000001/p:33612345678".parse().unwrap();
    /// let body = r#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"fbtrace_id":"A1"}}"#;
    /// let error = MetaError::from_json(body).unwrap();
    /// let at = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
    /// let effect = guard.record_meta_error(&key, &error, None, at).await.unwrap();
    /// assert_eq!(effect, CodeEffect::WindowClosed);
    /// # });
    /// ```
    pub async fn record_meta_error(
        &self,
        key: &ContactKey,
        error: &crate::MetaError,
        wamid: Option<&str>,
        at: Timestamp,
    ) -> Result<CodeEffect, GuardError> {
        self.record_send_error(key, error.code, wamid, at).await
    }

    /// Applies one event of one key (the explicit calls below share this).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "record", key = %crate::observe::KeyHash(key)), err))]
    async fn record(&self, key: &ContactKey, event: Event) -> Result<(), GuardError> {
        // An explicit call happens at the instant it names: nothing to clamp.
        let at = event.at();
        self.ingest_at(
            [KeyedEvent::Contact {
                key: key.clone(),
                event,
            }],
            at,
        )
        .await
        .map(drop)
    }

    /// Records an explicit opt-out at `at` (O1 for [`Scope::All`], O2 for
    /// [`Scope::Marketing`]).
    pub async fn opt_out(
        &self,
        key: &ContactKey,
        scope: Scope,
        at: Timestamp,
    ) -> Result<(), GuardError> {
        self.record(key, Event::OptOut { at, scope }).await
    }

    /// Records an explicit opt-in at `at` (lifts an older opt-out of the same scope, O3; is
    /// consent evidence for O4).
    pub async fn opt_in(
        &self,
        key: &ContactKey,
        scope: Scope,
        at: Timestamp,
    ) -> Result<(), GuardError> {
        self.record(key, Event::OptIn { at, scope }).await
    }

    /// Lifts a sender restriction (S1) older than `at`, after the operator fixed its cause.
    pub async fn clear_sender(
        &self,
        business: &BusinessId,
        at: Timestamp,
    ) -> Result<(), GuardError> {
        self.ingest([KeyedEvent::Sender {
            business: business.clone(),
            event: SenderEvent::Clear { at },
        }])
        .await
        .map(drop)
    }

    /// Erases what is known about `key` at or before `at`, leaving a tombstone (rule E4): late
    /// webhook retries of older events are ignored, so they cannot bring the state back. The
    /// tombstone itself goes once an event later than `at` plus the feedback horizon arrives.
    ///
    /// This is also the way out of a record that cannot be decoded: it is replaced by the
    /// tombstone.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "forget", key = %crate::observe::KeyHash(key)), err))]
    pub async fn forget(&self, key: &ContactKey, at: Timestamp) -> Result<(), GuardError> {
        self.erase(key, at, false).await
    }

    /// E4: like [`forget`](Self::forget), and the consent registers go too: the person asked to
    /// be forgotten entirely, so the guard no longer knows they objected (a later import of an
    /// old contact list could message them). Named by its BSUID, the K5 link goes as well.
    /// Opt-outs timestamped after `at` stay.
    pub async fn forget_including_opt_out(
        &self,
        key: &ContactKey,
        at: Timestamp,
    ) -> Result<(), GuardError> {
        self.erase(key, at, true).await
    }

    async fn erase(
        &self,
        key: &ContactKey,
        at: Timestamp,
        include_consent: bool,
    ) -> Result<(), GuardError> {
        let policy = &self.inner.policy;
        let mut linked = None;
        self.inner
            .store
            .update(key, &mut |contact, _sender| {
                linked = link_of(contact);
                if linked.is_some() && !include_consent {
                    // K5: the link stays with the tombstone on the phone's key.
                    return Ok(UpdateAction::Keep);
                }
                let Ok(mut state) = decode_contact(key, contact) else {
                    return Ok(UpdateAction::Write(
                        ConversationState::tombstone(at, include_consent).encode(),
                    ));
                };
                Ok(write_if(state.erase(at, include_consent, policy), &state))
            })
            .await?;
        if let Some(phone) = linked {
            // Forgetting either name erases the linked key's state.
            let target = phone_key(&key.business, phone);
            self.inner
                .store
                .update(&target, &mut |contact, _sender| {
                    let Ok(mut state) = decode_contact(&target, contact) else {
                        return Ok(UpdateAction::Write(
                            ConversationState::tombstone(at, include_consent).encode(),
                        ));
                    };
                    Ok(write_if(state.erase(at, include_consent, policy), &state))
                })
                .await?;
        }
        Ok(())
    }

    /// The decoded state of `key` and of its business, for inspection.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "state", key = %crate::observe::KeyHash(key)), err))]
    pub async fn state(
        &self,
        key: &ContactKey,
    ) -> Result<(ConversationState, SenderState), GuardError> {
        let resolved = self.resolve(key).await?;
        self.records_of(&resolved).await
    }

    /// The decoded state of a business number.
    pub async fn sender_state(&self, business: &BusinessId) -> Result<SenderState, GuardError> {
        let bytes = self.inner.store.load_sender(business).await?;
        Ok(decode_sender(business, bytes.as_deref())?)
    }
}
