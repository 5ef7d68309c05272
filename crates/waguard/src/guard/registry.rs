//! The guard's registry side: template records (rules T1-T4), portfolio records (L1-L3), and
//! the read a template decision needs.

use super::{decode_contact, decode_sender, locked, write_if, Guard, GuardError};
use crate::store::{RegistryKey, Store, StoreError};
use crate::{
    AccountId, BusinessId, ContactKey, ConversationState, PortfolioState, Registry, SenderState,
    TemplateEvent, TemplateId, TemplateName, TemplateState, Timestamp,
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
pub(super) fn decode_portfolio(
    key: &RegistryKey,
    bytes: &[u8],
) -> Result<PortfolioState, StoreError> {
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
