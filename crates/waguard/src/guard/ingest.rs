//! The guard's ingestion: events grouped per key and applied in batches (links first, then
//! the events, then what they send elsewhere), and the sender successes that wait in memory
//! (rule S1).

use super::{
    decode_contact, decode_sender, link_of, locked, phone_key, with_contact_state, write_if,
    AccountId, BTreeMap, Batch, Bsuid, BusinessId, ContactId, ContactKey, ConversationState,
    Duration, Event, Future, Guard, GuardError, HashMap, IngestReport, KeyedEvent, Mutex,
    PhoneNumber, SenderEvent, SenderState, Store, TemplateEvent, TemplateId, Timestamp,
    UpdateAction,
};

/// How long a success that lifts nothing (S1) may wait in memory before it is written to its
/// sender record: one write per business number per interval instead of one per status.
const SUCCESS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How many rounds of follow-up events (K5 redirects, K6 forwards) one ingestion runs at most;
/// a chain of changed numbers longer than this stops there (each round is one batch).
const MAX_FOLLOW_UP_ROUNDS: usize = 4;

#[derive(Default)]
pub(super) struct PendingSuccesses {
    newest: HashMap<BusinessId, Timestamp>,
    flushed_at: Option<Timestamp>,
}

/// Events grouped per key and per business number, ready for one batch.
#[derive(Default)]
pub(super) struct Groups {
    events: usize,
    contacts: BTreeMap<ContactKey, Vec<Event>>,
    senders: BTreeMap<BusinessId, Vec<SenderEvent>>,
    /// K5: the winning link item per (business, user id).
    links: BTreeMap<(BusinessId, Bsuid), (PhoneNumber, Timestamp)>,
    /// K6: number changes, in payload order.
    moves: Vec<(BusinessId, PhoneNumber, PhoneNumber, Timestamp)>,
    /// T1-T3: template events per template identity.
    templates: BTreeMap<TemplateId, Vec<TemplateEvent>>,
    /// T4: the winning account link per business number.
    accounts: BTreeMap<BusinessId, (AccountId, Timestamp)>,
    /// L2: limit events per account.
    limits: Vec<(AccountId, crate::MessagingLimit, Timestamp)>,
}

impl Groups {
    fn of(events: impl IntoIterator<Item = KeyedEvent>, limit: Option<Timestamp>) -> Self {
        let mut groups = Groups::default();
        for keyed in events {
            // Links (K5, T4) are bookkeeping that comes with the items, not events of their own.
            if !matches!(
                keyed,
                KeyedEvent::Link { .. } | KeyedEvent::AccountLink { .. }
            ) {
                groups.events += 1;
            }
            // E5: no instant beyond the receive time plus the allowed skew.
            let keyed = match limit {
                Some(limit) => keyed.clamped(limit),
                None => keyed,
            };
            match keyed {
                KeyedEvent::Link {
                    business,
                    user,
                    phone,
                    at,
                } => {
                    let slot = groups
                        .links
                        .entry((business, user))
                        .or_insert((phone.clone(), at));
                    let rank =
                        |p: &PhoneNumber, t: Timestamp| (t, p.digits().parse::<u64>().unwrap_or(0));
                    if rank(&phone, at) > rank(&slot.0, slot.1) {
                        *slot = (phone, at);
                    }
                }
                KeyedEvent::NumberChanged {
                    business,
                    from,
                    to,
                    at,
                } => groups.moves.push((business, from, to, at)),
                KeyedEvent::Template { template, event } => {
                    groups.templates.entry(template).or_default().push(event);
                }
                KeyedEvent::PortfolioLimit { account, limit, at } => {
                    groups.limits.push((account, limit, at));
                }
                KeyedEvent::AccountLink {
                    business,
                    account,
                    at,
                } => {
                    let mut probe = SenderState::default();
                    if let Some((a, t)) = groups.accounts.get(&business) {
                        probe.link_account(a, *t);
                    }
                    if probe.link_account(&account, at) {
                        groups.accounts.insert(business.clone(), (account, at));
                    }
                    groups.senders.entry(business).or_default();
                }
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

impl<S: Store> Guard<S> {
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
        let now = self.inner.clock.now();
        self.ingest_at(events, now)
    }

    /// [`ingest`](Self::ingest) with the receive time given instead of read from the clock:
    /// every instant later than `received_at` plus `Policy::max_clock_skew` is moved back to
    /// that bound first (rule E5), so a payload dated in the future cannot pin a register.
    pub fn ingest_at<I>(
        &self,
        events: I,
        received_at: Timestamp,
    ) -> impl Future<Output = Result<IngestReport, GuardError>> + Send + '_
    where
        I: IntoIterator<Item = KeyedEvent>,
    {
        let limit = received_at.saturating_add(self.inner.policy.max_clock_skew);
        let groups = Groups::of(events, Some(limit));
        async move { self.apply_all(groups, received_at).await }
    }

    /// Links first (K5), then the events, then what they sent elsewhere: events for keys that
    /// turned out to be linked, consent that follows a changed number (K6). Each step is one
    /// batch; a webhook is acknowledged only after all of them, so a crash in between is
    /// repaired by Meta's retry (every step is idempotent).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "waguard", skip_all, fields(op = "ingest", events = groups.events, contacts = groups.contacts.len()), err))]
    async fn apply_all(
        &self,
        mut groups: Groups,
        now: Timestamp,
    ) -> Result<IngestReport, GuardError> {
        let mut report = IngestReport {
            events: groups.events,
            contacts: groups.contacts.len(),
            ..IngestReport::default()
        };
        let links = std::mem::take(&mut groups.links);
        let moves = std::mem::take(&mut groups.moves);
        let templates = std::mem::take(&mut groups.templates);
        for (template, events) in templates {
            self.apply_template(template, &events).await?;
        }
        for (account, limit, at) in std::mem::take(&mut groups.limits) {
            self.apply_limit(&account, limit, at).await?;
        }
        report.contacts_written += self.apply_links(links).await?;
        for round in 0..=MAX_FOLLOW_UP_ROUNDS {
            let (written, follow_up) = self.apply_groups(groups, now, round == 0).await?;
            report.contacts_written += written.0;
            report.senders_written += written.1;
            match follow_up {
                Some(next) if round < MAX_FOLLOW_UP_ROUNDS => groups = next,
                _ => break,
            }
        }
        for (business, from, to, at) in moves {
            report.contacts_written += self.apply_move(&business, from, to, at).await?;
        }
        Ok(report)
    }

    /// K5: records each link on its BSUID's record and joins what that record held into the
    /// phone's key, in one batch. Returns how many records were written.
    async fn apply_links(
        &self,
        links: BTreeMap<(BusinessId, Bsuid), (PhoneNumber, Timestamp)>,
    ) -> Result<usize, GuardError> {
        if links.is_empty() {
            return Ok(0);
        }
        let policy = &self.inner.policy;
        let items: Vec<_> = links
            .into_iter()
            .map(|((business, user), (phone, at))| {
                let user_key = ContactKey::new(business.clone(), ContactId::User(user));
                let phone_key = phone_key(&business, phone.clone());
                (
                    user_key,
                    phone_key,
                    phone,
                    at,
                    Mutex::new(None::<ConversationState>),
                )
            })
            .collect();
        let written = Mutex::new(0usize);
        {
            let mut batch = Batch::new();
            for (user_key, phone_key, phone, at, moved) in &items {
                let written = &written;
                batch.contact(user_key.clone(), move |contact, _sender| {
                    let mut state = decode_contact(user_key, contact)?;
                    let was_linked = state.link.is_some();
                    let changed = state.set_link(phone.clone(), *at);
                    // The state it held before it was linked joins the phone's key; a record
                    // that already was a link holds nothing of its own.
                    let own = if was_linked {
                        ConversationState::default()
                    } else {
                        state.take_own_state()
                    };
                    let has_own = !own.is_empty();
                    *locked(moved) = has_own.then_some(own);
                    Ok(if changed || has_own {
                        *locked(written) += 1;
                        UpdateAction::Write(state.encode())
                    } else {
                        UpdateAction::Keep
                    })
                });
                batch.contact(phone_key.clone(), move |contact, _sender| {
                    let own = locked(moved).clone();
                    let Some(own) = own else {
                        return Ok(UpdateAction::Keep);
                    };
                    let mut state = decode_contact(phone_key, contact)?;
                    let before = state.clone();
                    state.merge(&own, policy);
                    Ok(write_if(state != before, &state))
                });
            }
            self.inner.store.apply_batch(&mut batch).await?;
        }
        Ok(written.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// K6: records the move on the old number's key and joins its consent registers (as far
    /// as they are at or before the change) into the new number's key, in one batch. Consent
    /// events of the old number that arrive later follow through `consent_to_forward`. Returns
    /// how many records were written.
    async fn apply_move(
        &self,
        business: &BusinessId,
        from: PhoneNumber,
        to: PhoneNumber,
        at: Timestamp,
    ) -> Result<usize, GuardError> {
        let old_key = phone_key(business, from);
        let new_key = phone_key(business, to.clone());
        let old_state = Mutex::new(ConversationState::default());
        let written = Mutex::new(0usize);
        {
            let mut batch = Batch::new();
            let (old_key, new_key, old_state, written) = (&old_key, &new_key, &old_state, &written);
            batch.contact(old_key.clone(), move |contact, _sender| {
                let mut state = decode_contact(old_key, contact)?;
                let changed = state.set_moved_to(to.clone(), at);
                *locked(old_state) = state.clone();
                *locked(written) = usize::from(changed);
                Ok(write_if(changed, &state))
            });
            batch.contact(new_key.clone(), move |contact, _sender| {
                let old = locked(old_state).clone();
                let mut state = decode_contact(new_key, contact)?;
                Ok(if state.join_consent_upto(&old, at) {
                    *locked(written) += 1;
                    UpdateAction::Write(state.encode())
                } else {
                    UpdateAction::Keep
                })
            });
            self.inner.store.apply_batch(&mut batch).await?;
        }
        Ok(written.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Applies one round of grouped events in one batch. Returns (contact records written,
    /// sender records written) and the events this round sends on: those of keys found linked
    /// to a phone (K5) and the consent that follows a changed number (K6).
    async fn apply_groups(
        &self,
        groups: Groups,
        now: Timestamp,
        with_senders: bool,
    ) -> Result<((usize, usize), Option<Groups>), GuardError> {
        let policy = &self.inner.policy;
        let mut contact_written = vec![false; groups.contacts.len()];
        // Filled by the closures of the batch (which may run again after a conflict: each run
        // replaces its key's entry).
        let follow: Mutex<BTreeMap<ContactKey, Vec<(ContactKey, Event)>>> = Mutex::default();
        let (pending, flush) = self.pending_successes(now);
        let folded: Mutex<Vec<BusinessId>> = Mutex::default();
        let mut senders: BTreeMap<&BusinessId, Vec<SenderEvent>> = BTreeMap::new();
        if with_senders {
            for (business, events) in &groups.senders {
                senders
                    .entry(business)
                    .or_default()
                    .extend(events.iter().copied());
            }
        }
        for business in flush.keys() {
            senders.entry(business).or_default();
        }
        let mut sender_written_flags = vec![false; senders.len()];
        {
            let mut batch = Batch::new();
            for ((key, events), written) in groups.contacts.iter().zip(contact_written.iter_mut()) {
                let follow = &follow;
                batch.contact(key.clone(), move |contact, _sender| {
                    let mut sent_on = Vec::new();
                    if matches!(key.contact, ContactId::User(_)) {
                        if let Some(phone) = link_of(contact) {
                            // K5: the key is linked: its events belong to the phone's key.
                            let target = phone_key(&key.business, phone);
                            sent_on.extend(events.iter().map(|e| (target.clone(), e.clone())));
                            locked(follow).insert(key.clone(), sent_on);
                            *written = false;
                            return Ok(UpdateAction::Keep);
                        }
                    }
                    let changed = with_contact_state(key, contact, |state| {
                        let mut changed = false;
                        for event in events {
                            let applied = state.apply(event, policy);
                            changed |= applied;
                            // K6: consent of a number that changed follows the person.
                            if applied {
                                if let Some((phone, forward)) =
                                    state.consent_to_forward(event, policy)
                                {
                                    sent_on.push((phone_key(&key.business, phone), forward));
                                }
                            }
                        }
                        changed.then(|| state.encode())
                    })?;
                    locked(follow).insert(key.clone(), sent_on);
                    *written = changed.is_some();
                    Ok(match changed {
                        Some(bytes) => UpdateAction::Write(bytes),
                        None => UpdateAction::Keep,
                    })
                });
            }
            for ((business, events), written) in senders.iter().zip(sender_written_flags.iter_mut())
            {
                let account_link = groups.accounts.get(*business).cloned();
                let pending_success = pending.get(*business).copied();
                let flush_now = flush.contains_key(*business);
                let folded = &folded;
                batch.sender((*business).clone(), move |sender| {
                    let mut state = decode_sender(business, sender)?;
                    let mut changed = false;
                    // T4: written only when the number's account changes (every webhook
                    // carries the link).
                    if let Some((account, at)) = &account_link {
                        if state.would_change_account(account, *at) {
                            changed |= state.link_account(account, *at);
                        }
                    }
                    for event in events {
                        // S1: a success that lifts nothing waits in memory (coalesced); it is
                        // joined in whenever this record is written, and written on its own
                        // once per interval.
                        if let SenderEvent::Success { .. } = event {
                            if !state.is_worth_writing(event) {
                                continue;
                            }
                        }
                        changed |= state.apply(event);
                    }
                    if changed || flush_now {
                        if let Some(at) = pending_success {
                            changed |= state.apply(&SenderEvent::Success { at });
                        }
                        locked(folded).push((*business).clone());
                    }
                    *written = changed;
                    Ok(write_if(changed, &state))
                });
            }
            if !batch.is_empty() {
                self.inner.store.apply_batch(&mut batch).await?;
            }
        }
        let senders_written = sender_written_flags.iter().filter(|w| **w).count();
        self.settle_successes(
            now,
            &groups,
            with_senders,
            &folded.into_inner().unwrap_or_else(|e| e.into_inner()),
            !flush.is_empty(),
        );
        let written = (
            contact_written.iter().filter(|w| **w).count(),
            senders_written,
        );
        let mut next = Groups::default();
        for (_, sent_on) in follow.into_inner().unwrap_or_else(|e| e.into_inner()) {
            for (key, event) in sent_on {
                next.events += 1;
                next.contacts.entry(key).or_default().push(event);
            }
        }
        Ok((written, (!next.contacts.is_empty()).then_some(next)))
    }

    /// S1: the successes waiting in memory, with the business numbers whose successes are due
    /// to be written this round (the interval has passed).
    fn pending_successes(
        &self,
        now: Timestamp,
    ) -> (
        HashMap<BusinessId, Timestamp>,
        HashMap<BusinessId, Timestamp>,
    ) {
        let pending = locked(&self.inner.successes);
        let due = pending
            .flushed_at
            .map_or(true, |t| now >= t.saturating_add(SUCCESS_FLUSH_INTERVAL));
        let flush = if due {
            pending.newest.clone()
        } else {
            HashMap::new()
        };
        (pending.newest.clone(), flush)
    }

    /// S1: after a batch committed, remembers this round's successes that were not written and
    /// forgets those that were.
    fn settle_successes(
        &self,
        now: Timestamp,
        groups: &Groups,
        with_senders: bool,
        written: &[BusinessId],
        flushed: bool,
    ) {
        let mut pending = locked(&self.inner.successes);
        for business in written {
            pending.newest.remove(business);
        }
        if with_senders {
            for (business, events) in &groups.senders {
                let newest = events
                    .iter()
                    .filter_map(|e| match e {
                        SenderEvent::Success { at } => Some(*at),
                        _ => None,
                    })
                    .max();
                if let Some(at) = newest {
                    if !written.contains(business) {
                        let slot = pending.newest.entry(business.clone()).or_insert(at);
                        *slot = (*slot).max(at);
                    }
                }
            }
        }
        if flushed || pending.flushed_at.is_none() {
            pending.flushed_at = Some(now);
        }
    }

    /// Writes every success still waiting in memory (S1) to its sender record. Call it before
    /// a process stops (the CLI does, and so does `waguard serve` on shutdown); a success lost
    /// to a crash leaves a restriction standing until the next one, the safe side.
    pub async fn flush_successes(&self) -> Result<(), GuardError> {
        let pending: Vec<(BusinessId, Timestamp)> = {
            let mut p = locked(&self.inner.successes);
            p.newest.drain().collect()
        };
        for (business, at) in pending {
            self.inner
                .store
                .update_sender(&business, &mut |sender| {
                    let mut state = decode_sender(&business, sender)?;
                    Ok(if state.apply(&SenderEvent::Success { at }) {
                        UpdateAction::Write(state.encode())
                    } else {
                        UpdateAction::Keep
                    })
                })
                .await?;
        }
        Ok(())
    }
}
