//! The reservation of the guard (after S4's pace), with rule L3's counting: counting
//! reservations of one portfolio written in groups, one atomic store update each.

use super::registry::{decode_portfolio, registry_of};
use super::{
    decode_sender, link_of, locked, phone_key, with_contact_state, write_if, ContactKey,
    ConversationState, Decision, Guard, GuardError, Outgoing, PhoneNumber, PortfolioState,
    Registries, SenderState, Store, StoreError, TemplateName, TemplateState, Timestamp,
};
use crate::store::RegistryKey;
use crate::{reserve_named, would_count};

/// How one attempt of a reservation ended.
#[derive(Clone)]
enum Reserved {
    /// Decided (and, when it permits, recorded).
    Done(Decision),
    /// The key is linked (K5): the reservation belongs to the phone's key.
    Linked(PhoneNumber),
    /// It counts against the portfolio after all (L3; the window closed meanwhile): run it
    /// as a counting reservation.
    Counts,
    /// The number's portfolio is not the one read before (its account changed): read again.
    Moved,
}

impl<S: Store> Guard<S> {
    /// The reservation itself (after S4's pace), with L3's counting: a template reservation
    /// that counts against the portfolio writes the contact's reservation and the portfolio's
    /// count in one atomic store update ([`Store::update_with_registry`]), so two tasks cannot
    /// both take the last unit and no count exists without its reservation or the reverse.
    /// Every other reservation writes the contact record alone and leaves the portfolio's
    /// record, a hot one, untouched.
    pub(super) async fn reserve_counted(
        &self,
        target: &mut ContactKey,
        outgoing: Outgoing,
        template: Option<&TemplateName>,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GuardError> {
        let policy = &self.inner.policy;
        // A template reads the registry first (one read): the template's record for step 2,
        // the portfolio's key, and whether the reservation would count (the update decides
        // again).
        let mut view = None;
        let mut counting = false;
        if outgoing.is_template() {
            let (state, _, v) = self.template_view(target, template).await?;
            let window = crate::rules::window::decide(&state, now, policy);
            counting = would_count(&state, outgoing, &window, now);
            view = Some(v);
        }
        loop {
            let reserve = Reserve {
                outgoing,
                template,
                record: view.as_ref().and_then(|v| v.template.as_ref()),
                idempotency_key,
                now,
            };
            let attempt = match (&view, counting) {
                (Some(v), true) => {
                    self.reserve_counting(target, &v.portfolio_key, reserve)
                        .await?
                }
                _ => self.reserve_plain(target, reserve, view.is_some()).await?,
            };
            match attempt {
                Reserved::Done(decision) => return Ok(decision),
                Reserved::Linked(phone) => *target = phone_key(&target.business, phone),
                Reserved::Counts => counting = true,
                Reserved::Moved => view = Some(self.template_view(target, template).await?.2),
            }
        }
    }

    /// A reservation that writes the contact record alone. With `templated` (a template
    /// decision whose reservation was not expected to count), a reservation that counts after
    /// all is not written but answered [`Reserved::Counts`].
    async fn reserve_plain(
        &self,
        key: &ContactKey,
        r: Reserve<'_>,
        templated: bool,
    ) -> Result<Reserved, GuardError> {
        let policy = &self.inner.policy;
        // Not counting: step 8 has nothing to refuse.
        let unlimited = PortfolioState::default();
        let registries = Registries {
            template: registry_of(r.template, r.record),
            portfolio: templated.then_some(&unlimited),
        };
        let mut out = None;
        self.inner
            .store
            .update(key, &mut |contact, sender| {
                if let Some(phone) = link_of(contact) {
                    out = Some(Reserved::Linked(phone));
                    return Ok(crate::store::UpdateAction::Keep);
                }
                let sender = decode_sender(&key.business, sender)?;
                let (reserved, action) = with_contact_state(key, contact, |state| {
                    let before = state.counted_at;
                    let decision = r.run(key, state, &sender, registries, policy);
                    if state.counted_at != before {
                        return (Reserved::Counts, crate::store::UpdateAction::Keep);
                    }
                    let action = write_if(decision.permits(r.outgoing), &*state);
                    (Reserved::Done(decision), action)
                })?;
                out = Some(reserved);
                Ok(action)
            })
            .await?;
        Ok(out.expect("the store ran the update closure"))
    }

    /// A reservation that counts against the portfolio `portfolio`. Counting reservations of
    /// one portfolio queue up: the task that finds no group running leads one, writing its own
    /// reservation and those queued meanwhile in one atomic store update (every contact record
    /// and the portfolio's record, one commit), then hands the next group to the first task
    /// waiting. Tasks of one portfolio so share commits instead of taking turns on its record.
    async fn reserve_counting(
        &self,
        key: &ContactKey,
        portfolio: &RegistryKey,
        r: Reserve<'_>,
    ) -> Result<Reserved, GuardError> {
        let own = Member {
            key: key.clone(),
            request: r.to_owned(),
        };
        let receiver = {
            let mut queues = locked(&self.inner.counting);
            match queues.get_mut(portfolio) {
                None => {
                    queues.insert(portfolio.clone(), Vec::new());
                    None
                }
                Some(waiting) => {
                    let (reply, receiver) = tokio::sync::oneshot::channel();
                    waiting.push(Waiting {
                        member: own.clone(),
                        reply,
                    });
                    Some(receiver)
                }
            }
        };
        let others = match receiver {
            None => Vec::new(),
            Some(receiver) => {
                let mut waiter = Waiter {
                    guard: self,
                    portfolio,
                    receiver: Some(receiver),
                };
                match waiter.turn().await {
                    Ok(Turn::Done(result)) => return result,
                    Ok(Turn::Lead(others)) => others,
                    Err(_) => return Err(GuardError::Store(group_lost())),
                }
            }
        };
        let leading = Leading {
            guard: self,
            portfolio,
        };
        let members: Vec<Member> = std::iter::once(own)
            .chain(others.iter().map(|w| w.member.clone()))
            .collect();
        let mut results = self.count_group(portfolio, &members).await.into_iter();
        let own_result = results.next().expect("one result per member");
        for (waiting, result) in others.into_iter().zip(results) {
            // A waiter that went away (its task was cancelled) needs no answer.
            let _ = waiting.reply.send(Turn::Done(result));
        }
        drop(leading);
        own_result
    }

    /// One atomic update for a group of counting reservations; when it fails, each member
    /// alone, so that one member's failure (a damaged record) is only its own.
    async fn count_group(
        &self,
        portfolio: &RegistryKey,
        members: &[Member],
    ) -> Vec<Result<Reserved, GuardError>> {
        match self.try_count_group(portfolio, members).await {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(e) if members.len() == 1 => vec![Err(e)],
            Err(_) => {
                let mut results = Vec::with_capacity(members.len());
                for member in members {
                    results.push(
                        self.try_count_group(portfolio, std::slice::from_ref(member))
                            .await
                            .map(|mut r| r.remove(0)),
                    );
                }
                results
            }
        }
    }

    async fn try_count_group(
        &self,
        portfolio: &RegistryKey,
        members: &[Member],
    ) -> Result<Vec<Reserved>, GuardError> {
        use crate::store::UpdateAction::Keep;
        let policy = &self.inner.policy;
        let keys: Vec<ContactKey> = members.iter().map(|m| m.key.clone()).collect();
        let mut out: Vec<Option<Reserved>> = vec![None; members.len()];
        self.inner
            .store
            .update_with_registry(&keys, portfolio, &mut |i, contact, sender, record| {
                let (key, r) = (&members[i].key, members[i].request.as_reserve());
                if let Some(phone) = link_of(contact) {
                    out[i] = Some(Reserved::Linked(phone));
                    return Ok((Keep, Keep));
                }
                let sender = decode_sender(&key.business, sender)?;
                if RegistryKey::Portfolio(self.portfolio_of(&key.business, &sender)) != *portfolio {
                    out[i] = Some(Reserved::Moved);
                    return Ok((Keep, Keep));
                }
                let mut count = match record {
                    None => PortfolioState::default(),
                    Some(b) => decode_portfolio(portfolio, b)?,
                };
                let registries = Registries {
                    template: registry_of(r.template, r.record),
                    portfolio: Some(&count),
                };
                let (decision, contact_action, counted) =
                    with_contact_state(key, contact, |state| {
                        let before = state.counted_at;
                        let decision = r.run(key, state, &sender, registries, policy);
                        let permits = decision.permits(r.outgoing);
                        let action = write_if(permits, &*state);
                        (decision, action, permits && state.counted_at != before)
                    })?;
                if counted {
                    count.count(r.now, policy);
                }
                out[i] = Some(Reserved::Done(decision));
                Ok((contact_action, write_if(counted, &count)))
            })
            .await?;
        Ok(out
            .into_iter()
            .map(|r| r.expect("the store ran the update closure for every key"))
            .collect())
    }

    /// Ends a group's leadership: the tasks queued meanwhile become the next group, led by the
    /// first of them; with none queued, the portfolio has no group running any more.
    fn hand_off(&self, portfolio: &RegistryKey) {
        let mut queues = locked(&self.inner.counting);
        loop {
            let Some(waiting) = queues.get_mut(portfolio) else {
                return;
            };
            if waiting.is_empty() {
                queues.remove(portfolio);
                return;
            }
            let mut group = std::mem::take(waiting);
            let take = group.len().min(MAX_GROUP);
            let rest = group.split_off(take);
            *waiting = rest;
            let mut group = group.into_iter();
            let first = group.next().expect("a group is not empty");
            match first.reply.send(Turn::Lead(group.collect())) {
                Ok(()) => return,
                // The first waiter went away: the next one leads the same group.
                Err(Turn::Lead(back)) => {
                    let waiting = queues.get_mut(portfolio).expect("still queued");
                    let later = std::mem::replace(waiting, back);
                    waiting.extend(later);
                }
                Err(Turn::Done(_)) => unreachable!("a lead was sent"),
            }
        }
    }
}

/// How many counting reservations one group writes at most.
const MAX_GROUP: usize = 64;

/// The counting reservations waiting for the group running on a portfolio (see
/// `Guard::reserve_counting`), by portfolio: an entry exists while a group runs.
pub(super) type CountingQueues = std::collections::HashMap<RegistryKey, Vec<Waiting>>;

/// A counting reservation of a group.
#[derive(Clone)]
struct Member {
    key: ContactKey,
    request: OwnedReserve,
}

/// A counting reservation waiting for its group.
pub(super) struct Waiting {
    member: Member,
    reply: tokio::sync::oneshot::Sender<Turn>,
}

/// What a waiting reservation gets: its answer, or the lead of the next group (the others
/// queued with it).
enum Turn {
    Done(Result<Reserved, GuardError>),
    Lead(Vec<Waiting>),
}

/// Held by a group's leader; dropped (done, or its task cancelled), it hands the lead on, so
/// a portfolio never keeps a group entry without a leader.
struct Leading<'a, S: Store> {
    guard: &'a Guard<S>,
    portfolio: &'a RegistryKey,
}

impl<S: Store> Drop for Leading<'_, S> {
    fn drop(&mut self) {
        self.guard.hand_off(self.portfolio);
    }
}

/// A reservation waiting for its turn. Dropped before its turn came (its task was
/// cancelled), it closes its channel, and a lead already sent to it goes on to the next
/// waiter, so that the portfolio's queue never waits for a leader that is gone.
struct Waiter<'a, S: Store> {
    guard: &'a Guard<S>,
    portfolio: &'a RegistryKey,
    receiver: Option<tokio::sync::oneshot::Receiver<Turn>>,
}

impl<S: Store> Waiter<'_, S> {
    async fn turn(&mut self) -> Result<Turn, tokio::sync::oneshot::error::RecvError> {
        let receiver = self.receiver.as_mut().expect("a waiter waits once");
        let turn = receiver.await;
        self.receiver = None;
        turn
    }
}

impl<S: Store> Drop for Waiter<'_, S> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        receiver.close();
        if let Ok(Turn::Lead(others)) = receiver.try_recv() {
            {
                let mut queues = locked(&self.guard.inner.counting);
                if let Some(waiting) = queues.get_mut(self.portfolio) {
                    let later = std::mem::replace(waiting, others);
                    waiting.extend(later);
                }
            }
            self.guard.hand_off(self.portfolio);
        }
    }
}

/// The error of a reservation whose group's leader was cancelled midway.
fn group_lost() -> StoreError {
    StoreError::backend(
        "reserve",
        None,
        "the task writing this counting reservation with others was cancelled before it \
         answered: the reservation may or may not be recorded; do not send on it, reserve \
         again",
    )
}

/// A [`Reserve`] owned, for a reservation that waits in a group.
#[derive(Clone)]
struct OwnedReserve {
    outgoing: Outgoing,
    template: Option<TemplateName>,
    record: Option<TemplateState>,
    idempotency_key: Option<String>,
    now: Timestamp,
}

impl OwnedReserve {
    fn as_reserve(&self) -> Reserve<'_> {
        Reserve {
            outgoing: self.outgoing,
            template: self.template.as_ref(),
            record: self.record.as_ref(),
            idempotency_key: self.idempotency_key.as_deref(),
            now: self.now,
        }
    }
}

/// What a reservation asks for, for one attempt.
#[derive(Clone, Copy)]
struct Reserve<'a> {
    outgoing: Outgoing,
    template: Option<&'a TemplateName>,
    /// The named template's registry record, as read before the update.
    record: Option<&'a TemplateState>,
    idempotency_key: Option<&'a str>,
    now: Timestamp,
}

impl Reserve<'_> {
    fn to_owned(self) -> OwnedReserve {
        OwnedReserve {
            outgoing: self.outgoing,
            template: self.template.cloned(),
            record: self.record.cloned(),
            idempotency_key: self.idempotency_key.map(str::to_owned),
            now: self.now,
        }
    }

    /// The pure reservation on `state` (see [`reserve_named`]).
    fn run(
        &self,
        key: &ContactKey,
        state: &mut ConversationState,
        sender: &SenderState,
        registries: Registries<'_>,
        policy: &crate::Policy,
    ) -> Decision {
        reserve_named(
            key,
            state,
            sender,
            self.outgoing,
            registries,
            self.idempotency_key,
            self.now,
            policy,
        )
    }
}
