//! The guard's registry side: template records (rules T1-T4), portfolio records (L1-L3), the
//! reads a template decision needs and the counting reservation.

use super::{
    decode_contact, decode_sender, link_of, locked, phone_key, with_contact_state, write_if, Guard,
    GuardError,
};
use crate::store::{RegistryKey, Store, StoreError};
use crate::{
    reserve_named, would_count, AccountId, BusinessId, ContactKey, ConversationState, Decision,
    Outgoing, PhoneNumber, PortfolioState, Registries, Registry, SenderState, TemplateEvent,
    TemplateId, TemplateName, TemplateState, Timestamp,
};

/// How many business numbers' last known accounts a guard remembers (a bound, not a tuning
/// knob: a service sends from a handful of numbers).
const REMEMBERED_ACCOUNTS: usize = 4_096;

/// The registry records of one template decision.
pub(super) struct RegistryView {
    /// The named template's record, if it is named, its account known and it has one.
    pub(super) template: Option<TemplateState>,
    /// The number's portfolio's key.
    pub(super) portfolio_key: RegistryKey,
    /// Its record (empty when it has none).
    pub(super) portfolio: PortfolioState,
}

/// What step 2 sees of a named template: not named, unknown, or the registry's record.
pub(super) fn registry_of<'a>(
    template: Option<&TemplateName>,
    record: Option<&'a TemplateState>,
) -> Registry<'a> {
    match (template, record) {
        (None, _) => Registry::NotNamed,
        (Some(_), None) => Registry::Unknown,
        (Some(_), Some(record)) => Registry::Record(record),
    }
}

/// Reads a stored template record.
pub(super) fn decode_template(
    operation: &'static str,
    key: &RegistryKey,
    bytes: &[u8],
) -> Result<TemplateState, StoreError> {
    TemplateState::decode(bytes).map_err(|source| {
        StoreError::backend(operation, None, TemplateDecode(key.to_string(), source))
    })
}

/// Reads a stored portfolio record.
fn decode_portfolio(key: &RegistryKey, bytes: &[u8]) -> Result<PortfolioState, StoreError> {
    PortfolioState::decode(bytes).map_err(|source| {
        StoreError::backend(
            "load_registry",
            None,
            TemplateDecode(key.to_string(), source),
        )
    })
}

/// A stored template record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {0}: {1}")]
struct TemplateDecode(String, #[source] crate::DecodeError);

/// The registry keys of one template decision: the portfolio's, and the named template's when
/// the number's account is known.
struct RegistryKeys {
    portfolio: RegistryKey,
    template: Option<RegistryKey>,
}

impl RegistryKeys {
    fn list(&self) -> Vec<RegistryKey> {
        let mut keys = vec![self.portfolio.clone()];
        keys.extend(self.template.iter().cloned());
        keys
    }

    /// The view of the records `found` for [`list`](Self::list).
    fn view(&self, found: &[Option<&[u8]>]) -> Result<RegistryView, StoreError> {
        let portfolio = match found.first().copied().flatten() {
            None => PortfolioState::default(),
            Some(b) => decode_portfolio(&self.portfolio, b)?,
        };
        let template = match (&self.template, found.get(1).copied().flatten()) {
            (Some(key), Some(b)) => Some(decode_template("load_registry", key, b)?),
            _ => None,
        };
        Ok(RegistryView {
            template,
            portfolio_key: self.portfolio.clone(),
            portfolio,
        })
    }
}

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
    /// The contact's and its sender's states and the registry records a template decision
    /// needs, in one read of the store. The registry keys depend on the number's account,
    /// which its sender record holds: the read names the account last seen for the number
    /// (or pinned by the policy), and the registry is read again only when the sender record
    /// names another.
    pub(super) async fn template_view(
        &self,
        key: &ContactKey,
        template: Option<&TemplateName>,
    ) -> Result<(ConversationState, SenderState, RegistryView), GuardError> {
        let guess = self.remembered_account(&key.business);
        let keys = self.registry_keys(&key.business, guess.as_ref(), template);
        let mut read = None;
        self.inner
            .store
            .load_with_registries(key, &keys.list(), &mut |contact, sender, found| {
                read = Some((|| {
                    let state = decode_contact(key, contact)?;
                    let sender = decode_sender(&key.business, sender)?;
                    Ok::<_, StoreError>((state, sender, keys.view(found)?))
                })());
            })
            .await?;
        let (state, sender, view) = read.expect("the store ran the read closure")?;
        let account = self.account_of(&key.business, &sender);
        if account == guess {
            return Ok((state, sender, view));
        }
        self.remember_account(&key.business, account.clone());
        let keys = self.registry_keys(&key.business, account.as_ref(), template);
        let found = self.inner.store.load_registries(&keys.list()).await?;
        let borrowed: Vec<Option<&[u8]>> = found.iter().map(|r| r.as_deref()).collect();
        Ok((state, sender, keys.view(&borrowed)?))
    }

    /// The account a number was last seen with (or is pinned to by the policy).
    fn remembered_account(&self, business: &BusinessId) -> Option<AccountId> {
        self.pinned_account(business).or_else(|| {
            locked(&self.inner.accounts)
                .get(business)
                .cloned()
                .flatten()
        })
    }

    fn remember_account(&self, business: &BusinessId, account: Option<AccountId>) {
        let mut accounts = locked(&self.inner.accounts);
        if accounts.len() >= REMEMBERED_ACCOUNTS && !accounts.contains_key(business) {
            accounts.clear();
        }
        accounts.insert(business.clone(), account);
    }

    /// The registry keys of a template decision for a number of `account`.
    fn registry_keys(
        &self,
        business: &BusinessId,
        account: Option<&AccountId>,
        template: Option<&TemplateName>,
    ) -> RegistryKeys {
        RegistryKeys {
            portfolio: RegistryKey::Portfolio(self.portfolio_name(business, account)),
            template: template.zip(account).map(|(t, account)| {
                RegistryKey::Template(TemplateId {
                    account: account.clone(),
                    template: t.clone(),
                })
            }),
        }
    }

    /// T4: the account a business number belongs to: `Policy::accounts` first, else the last
    /// webhook link in its sender record.
    pub fn account_of(&self, business: &BusinessId, sender: &SenderState) -> Option<AccountId> {
        self.pinned_account(business)
            .or_else(|| sender.account.as_ref().map(|(a, _)| a.clone()))
    }

    /// T4: the account `Policy::accounts` pins a number to.
    fn pinned_account(&self, business: &BusinessId) -> Option<AccountId> {
        self.inner
            .policy
            .accounts
            .iter()
            .find_map(|(account, numbers)| {
                numbers
                    .iter()
                    .any(|n| n == business.as_str())
                    .then(|| AccountId::parse(account).ok())
                    .flatten()
            })
    }

    /// T1/T4: the identity of a template sent from `business`, if its account is known.
    pub(super) async fn template_id(
        &self,
        business: &BusinessId,
        template: &TemplateName,
    ) -> Result<Option<TemplateId>, GuardError> {
        let sender = self.sender_state(business).await?;
        Ok(self
            .account_of(business, &sender)
            .map(|account| TemplateId {
                account,
                template: template.clone(),
            }))
    }

    /// L1: the portfolio a business number's counts go to: the `Policy::portfolios` entry
    /// holding its account, else its account alone, else the number alone (no account known).
    pub fn portfolio_of(&self, business: &BusinessId, sender: &SenderState) -> String {
        self.portfolio_name(business, self.account_of(business, sender).as_ref())
    }

    fn portfolio_name(&self, business: &BusinessId, account: Option<&AccountId>) -> String {
        match account {
            Some(account) => self.portfolio_of_account(account),
            None => format!("n/{business}"),
        }
    }

    /// L1-L3: the name and the record of a business number's portfolio (for `waguard show`
    /// and operators' views).
    pub async fn portfolio(
        &self,
        business: &BusinessId,
    ) -> Result<(String, PortfolioState), GuardError> {
        let sender = self.sender_state(business).await?;
        let name = self.portfolio_of(business, &sender);
        let key = RegistryKey::Portfolio(name.clone());
        let state = match self.inner.store.load_registry(&key).await? {
            None => PortfolioState::default(),
            Some(b) => decode_portfolio(&key, &b)?,
        };
        Ok((name, state))
    }

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
            Some(receiver) => match receiver.await {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead(others)) => others,
                Err(_) => return Err(GuardError::Store(group_lost())),
            },
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

    /// L1: the portfolio of an account: the `Policy::portfolios` entry holding it, else the
    /// account alone.
    fn portfolio_of_account(&self, account: &AccountId) -> String {
        self.inner
            .policy
            .portfolios
            .iter()
            .find(|(_, accounts)| accounts.iter().any(|a| a == account.as_str()))
            .map_or_else(|| format!("a/{account}"), |(name, _)| format!("p/{name}"))
    }

    /// L2: sets the messaging limit of an account's portfolio.
    pub(super) async fn apply_limit(
        &self,
        account: &AccountId,
        limit: crate::MessagingLimit,
        at: Timestamp,
    ) -> Result<(), GuardError> {
        let key = RegistryKey::Portfolio(self.portfolio_of_account(account));
        self.inner
            .store
            .update_registry(&key, &mut |bytes| {
                let mut state = match bytes {
                    None => PortfolioState::default(),
                    Some(b) => decode_portfolio(&key, b)?,
                };
                Ok(write_if(state.set_limit(limit, at), &state))
            })
            .await?;
        Ok(())
    }

    /// T1-T3: applies events to a template's registry record.
    pub(super) async fn apply_template(
        &self,
        template: TemplateId,
        events: &[TemplateEvent],
    ) -> Result<(), GuardError> {
        let key = RegistryKey::Template(template);
        self.inner
            .store
            .update_registry(&key, &mut |bytes| {
                let mut state = match bytes {
                    None => TemplateState::default(),
                    Some(b) => decode_template("update_registry", &key, b)?,
                };
                let mut changed = false;
                for event in events {
                    changed |= state.apply(event);
                }
                Ok(write_if(changed, &state))
            })
            .await?;
        Ok(())
    }

    /// T1: every template the registry has a record of, for an operator's listing (`waguard
    /// templates`): why a template is refused, and since when.
    pub async fn templates(&self) -> Result<Vec<(TemplateId, TemplateState)>, GuardError> {
        let mut out = Vec::new();
        for (key, bytes) in self.inner.store.registry_records().await? {
            let Some(rest) = key.strip_prefix("t/") else {
                continue;
            };
            // `t/ACCOUNT/LANGUAGE/NAME`: names and languages hold no `/` (TemplateName::new).
            let mut parts = rest.splitn(3, '/');
            let (Some(account), Some(language), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(account), Ok(template)) =
                (AccountId::parse(account), TemplateName::new(name, language))
            else {
                continue;
            };
            let id = TemplateId { account, template };
            let state = TemplateState::decode(&bytes).map_err(|source| {
                StoreError::backend(
                    "registry_records",
                    None,
                    TemplateDecode(key.clone(), source),
                )
            })?;
            out.push((id, state));
        }
        Ok(out)
    }

    /// T1: the registry's record of a template, if it has one.
    pub async fn template_state(
        &self,
        template: &TemplateId,
    ) -> Result<Option<TemplateState>, GuardError> {
        let key = RegistryKey::Template(template.clone());
        match self.inner.store.load_registry(&key).await? {
            None => Ok(None),
            Some(b) => Ok(Some(decode_template("load_registry", &key, &b)?)),
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
