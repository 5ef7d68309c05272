//! [`Guard`]: store, policy and clock tied together for services.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::store::{Batch, RecordKey, Store, StoreError, UpdateAction};
use crate::{
    decide, reserve, BusinessId, CodeEffect, CodeScope, ContactKey, ConversationState, Decision,
    Event, KeyedEvent, Outgoing, Policy, PolicyError, Scope, SenderEvent, SenderState, Subject,
    Timestamp, WamidHash,
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

/// Events grouped per key and per business number, ready for one batch.
#[derive(Default)]
struct Groups {
    events: usize,
    contacts: BTreeMap<ContactKey, Vec<Event>>,
    senders: BTreeMap<BusinessId, Vec<SenderEvent>>,
}

impl Groups {
    fn of(events: impl IntoIterator<Item = KeyedEvent>) -> Self {
        let mut groups = Groups::default();
        for keyed in events {
            groups.events += 1;
            match keyed {
                KeyedEvent::Contact { key, event } => {
                    if let Some(sender_event) = event.sender_event() {
                        groups
                            .senders
                            .entry(key.business.clone())
                            .or_default()
                            .push(sender_event);
                    }
                    groups.contacts.entry(key).or_default().push(event);
                }
                KeyedEvent::Sender { business, event } => {
                    groups.senders.entry(business).or_default().push(event);
                }
                // KeyedEvent is non-exhaustive; a future kind is ignored by this version.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        // In time order, so that a restriction and a later success of the same batch end as
        // they would have if applied one by one as they happened (S1).
        for events in groups.senders.values_mut() {
            events.sort_by_key(SenderEvent::at);
        }
        groups
    }
}

struct Inner<S> {
    store: S,
    policy: Policy,
    clock: Arc<dyn Clock>,
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
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "check", key = %crate::observe::KeyHash(key), outgoing = ?outgoing), ret(level = "debug"), err))]
    pub async fn check(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        let policy = &self.inner.policy;
        let mut out: Option<Result<Decision, StoreError>> = None;
        let mut read = |contact: Option<&[u8]>, sender: Option<&[u8]>| {
            out = Some(decode_sender(&key.business, sender).and_then(|sender| {
                with_contact_state(key, contact, |state| {
                    let subject = Subject {
                        key,
                        state,
                        sender: &sender,
                    };
                    decide(subject, outgoing, now, policy)
                })
            }));
        };
        match self.inner.store.load_now(key, &mut read) {
            Some(result) => result?,
            None => self.inner.store.load_with(key, &mut read).await?,
        }
        Ok(out.expect("the store ran the read closure")?)
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
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "reserve", key = %crate::observe::KeyHash(key), outgoing = ?outgoing, idempotent = idempotency_key.is_some()), ret(level = "debug"), err))]
    pub async fn reserve(
        &self,
        key: &ContactKey,
        outgoing: Outgoing,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        let policy = &self.inner.policy;
        let mut out = None;
        self.inner
            .store
            .update(key, &mut |contact, sender| {
                let sender = decode_sender(&key.business, sender)?;
                let (decision, action) = with_contact_state(key, contact, |state| {
                    let decision =
                        reserve(key, state, &sender, outgoing, idempotency_key, now, policy);
                    let action = if decision.permits(outgoing) {
                        UpdateAction::Write(state.encode())
                    } else {
                        UpdateAction::Keep
                    };
                    (decision, action)
                })?;
                out = Some(decision);
                Ok(action)
            })
            .await?;
        Ok(out.expect("the store ran the update closure"))
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

    /// Applies events (from webhooks, send errors or explicit calls): contact events to their
    /// key's record ([`ConversationState::apply`]), and the sender-level part of each event
    /// ([`Event::sender_event`], [`KeyedEvent::Sender`]) to its business's record, written only
    /// when [`SenderState::is_worth_writing`] says it changes something.
    ///
    /// Events are grouped per key and applied as one [`Batch`]: all or nothing, durable with one
    /// commit when this returns `Ok` (acknowledge webhooks to Meta only then, rule H4). Order
    /// and duplicates do not matter (rule E1). If a record of the batch cannot be decoded, the
    /// whole batch is refused with an error naming that key: repair it (restore it, or
    /// [`forget`](Guard::forget) it) and ingest again.
    pub fn ingest<I>(
        &self,
        events: I,
    ) -> impl Future<Output = Result<IngestReport, GuardError>> + Send + '_
    where
        I: IntoIterator<Item = KeyedEvent>,
    {
        let groups = Groups::of(events);
        async move { self.apply_groups(groups).await }
    }

    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "ingest", events = groups.events, contacts = groups.contacts.len()), err))]
    async fn apply_groups(&self, groups: Groups) -> Result<IngestReport, GuardError> {
        let policy = &self.inner.policy;
        let mut report = IngestReport {
            events: groups.events,
            contacts: groups.contacts.len(),
            ..IngestReport::default()
        };
        let mut contact_written = vec![false; groups.contacts.len()];
        let mut sender_written = vec![false; groups.senders.len()];
        {
            let mut batch = Batch::new();
            for ((key, events), written) in groups.contacts.iter().zip(contact_written.iter_mut()) {
                batch.contact(key.clone(), move |contact, _sender| {
                    let changed = with_contact_state(key, contact, |state| {
                        let mut changed = false;
                        for event in events {
                            changed |= state.apply(event, policy);
                        }
                        changed.then(|| state.encode())
                    })?;
                    *written = changed.is_some();
                    Ok(match changed {
                        Some(bytes) => UpdateAction::Write(bytes),
                        None => UpdateAction::Keep,
                    })
                });
            }
            for ((business, events), written) in
                groups.senders.iter().zip(sender_written.iter_mut())
            {
                batch.sender(business.clone(), move |sender| {
                    let mut state = decode_sender(business, sender)?;
                    let mut changed = false;
                    for event in events {
                        if state.is_worth_writing(event) {
                            changed |= state.apply(event);
                        }
                    }
                    *written = changed;
                    Ok(if changed {
                        UpdateAction::Write(state.encode())
                    } else {
                        UpdateAction::Keep
                    })
                });
            }
            if !batch.is_empty() {
                self.inner.store.apply_batch(&mut batch).await?;
            }
        }
        report.contacts_written = contact_written.iter().filter(|w| **w).count();
        report.senders_written = sender_written.iter().filter(|w| **w).count();
        Ok(report)
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

    /// Applies one event of one key (the explicit calls below share this).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "record", key = %crate::observe::KeyHash(key)), err))]
    async fn record(&self, key: &ContactKey, event: Event) -> Result<(), GuardError> {
        self.ingest([KeyedEvent::Contact {
            key: key.clone(),
            event,
        }])
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
        let policy = &self.inner.policy;
        self.inner
            .store
            .update(key, &mut |contact, _sender| {
                let Ok(mut state) = decode_contact(key, contact) else {
                    return Ok(UpdateAction::Write(
                        ConversationState::tombstone(at).encode(),
                    ));
                };
                Ok(if state.erase(at, policy) {
                    UpdateAction::Write(state.encode())
                } else {
                    UpdateAction::Keep
                })
            })
            .await?;
        Ok(())
    }

    /// The decoded state of `key` and of its business, for inspection.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "state", key = %crate::observe::KeyHash(key)), err))]
    pub async fn state(
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

    /// The decoded state of a business number.
    pub async fn sender_state(&self, business: &BusinessId) -> Result<SenderState, GuardError> {
        let bytes = self.inner.store.load_sender(business).await?;
        Ok(decode_sender(business, bytes.as_deref())?)
    }
}
