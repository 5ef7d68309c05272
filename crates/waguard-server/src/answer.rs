//! A decision as JSON: `{"decision", "allowed", "reason", "until"}`, the answer of replay's
//! `check` and `reserve` lines (with their `"line"`) and of `POST /v1/check` and
//! `POST /v1/reserve` (without).

use serde::Serialize;
use waguard::{
    ContactKey, ConversationState, Decision, Guard, GuardError, MessagingLimit, Outgoing,
    SenderState, Store, TemplateCategory, Timestamp,
};

/// `{"line", "decision", "allowed", "reason", "until"}`.
#[derive(Serialize)]
pub struct DecisionAnswer {
    /// The physical input line, numbered from 1 (absent outside replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `free_form`, `template_required` or `blocked`.
    pub decision: &'static str,
    /// Whether the line's message may go.
    pub allowed: bool,
    /// The rules.md reason, `null` for `free_form`.
    pub reason: Option<&'static str>,
    /// When the answer changes by time alone (RFC 3339), or `null`.
    pub until: Option<String>,
}

impl DecisionAnswer {
    /// The answer for `decision` about `outgoing`.
    pub fn new(line: Option<usize>, decision: &Decision, outgoing: Outgoing) -> Self {
        DecisionAnswer {
            line,
            decision: decision.kind(),
            allowed: decision.permits(outgoing),
            reason: decision.reason().map(|r| r.as_str()),
            until: decision.until().map(|t| t.to_string()),
        }
    }
}

/// The decision for each kind of message.
#[derive(Serialize)]
pub struct Decisions {
    /// A free-form message.
    pub free_form: DecisionAnswer,
    /// A marketing template.
    pub marketing: DecisionAnswer,
    /// A utility template.
    pub utility: DecisionAnswer,
    /// An authentication template.
    pub authentication: DecisionAnswer,
}

/// One contact's state and the decision for each kind of message at one instant: what
/// `waguard show` prints and `GET /v1/contacts/{business}/{contact}` answers.
#[derive(Serialize)]
pub struct ContactView {
    /// The key (`BUSINESS/p:PHONE`).
    pub key: String,
    /// The instant of the decisions (RFC 3339).
    pub at: String,
    /// The contact's stored state.
    pub state: ConversationState,
    /// The business number's stored state.
    pub sender: SenderState,
    /// The business number's portfolio as rules L1-L3 see it at `at`.
    pub portfolio: PortfolioView,
    /// The decision for each kind of message at `at` (read-only: nothing is reserved).
    pub decisions: Decisions,
}

/// The business number's portfolio as rules L1-L3 see it.
#[derive(Serialize)]
pub struct PortfolioView {
    /// `p/NAME` (from the policy), `a/ACCOUNT` or `n/NUMBER`.
    pub name: String,
    /// The limit in force (`null`: not enforced).
    pub limit: Option<MessagingLimit>,
    /// Users counted in live buckets now.
    pub live_count: u64,
    /// When the earliest live bucket stops being live.
    pub next_expiry: Option<String>,
}

impl ContactView {
    /// Reads the key's state and decides each kind of message at `at`.
    pub async fn load<S: Store>(
        guard: &Guard<S>,
        key: &ContactKey,
        at: Timestamp,
    ) -> Result<Self, GuardError> {
        let (state, sender) = guard.state(key).await?;
        let (name, record) = guard.portfolio(&key.business).await?;
        let policy = guard.policy();
        let portfolio = PortfolioView {
            name,
            limit: record.effective_limit(policy),
            live_count: record.live_count(at, policy),
            next_expiry: record.next_expiry(at, policy).map(|t| t.to_string()),
        };
        let decide = |outgoing| async move {
            let d = guard.check(key, outgoing, at).await?;
            Ok::<_, GuardError>(DecisionAnswer::new(None, &d, outgoing))
        };
        let decisions = Decisions {
            free_form: decide(Outgoing::FreeForm).await?,
            marketing: decide(Outgoing::Template(TemplateCategory::Marketing)).await?,
            utility: decide(Outgoing::Template(TemplateCategory::Utility)).await?,
            authentication: decide(Outgoing::Template(TemplateCategory::Authentication)).await?,
        };
        Ok(ContactView {
            key: key.to_string(),
            at: at.to_string(),
            state,
            sender,
            portfolio,
            decisions,
        })
    }
}

/// A value shown in an error message: at most 64 characters, then `…`, so that an answer never
/// echoes a large input back.
pub fn short(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}
