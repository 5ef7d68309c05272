//! From a payload to core events (rules H1, W1, W3, W5, W7, O2, D1-D5, S1-S3, K3).

use std::fmt;

use waguard_core::{
    AccountId, Bsuid, BusinessId, ContactId, ContactKey, DeliveryStatus, Event, GroupId,
    KeyedEvent, PauseKind, PhoneNumber, Preference, TemplateCategory, TemplateEvent, TemplateId,
    TemplateName, TemplateStatus, Timestamp, WamidHash,
};

use crate::error::{ItemError, ItemProblem, ParseError, Shown};
use crate::lenient::{Arr, JsonKind, Obj, Value};
use crate::limits::Limits;
use crate::payload::{
    Call, ChangeValue, Contact, ErrorObject, Message, Notification, Status, UserPreference,
};

/// What one payload yields: the events to apply, and the items that could not be applied,
/// each with its JSON path (rule H1). Both can be non-empty at once.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Parsed {
    /// Events keyed by contact or by business number, in payload order.
    pub events: Vec<KeyedEvent>,
    /// Items that were skipped, in payload order.
    pub errors: Vec<ItemError>,
    /// Items that arrived and carry nothing the guard decides by (H1): changes of other
    /// fields, value-level `errors[]`, system messages other than a number change, statuses
    /// and preferences the rules do not read. Counted so a user can see they arrived.
    pub ignored: usize,
}

impl Parsed {
    /// Whether every item was applied.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// `pricing.category` values that say the message was a template (rule W3). `service` and
/// `referral_conversion` say nothing about the message type.
const TEMPLATE_CATEGORIES: [&str; 5] = [
    "marketing",
    "marketing_lite",
    "utility",
    "authentication",
    "authentication_international",
];

/// Parses one webhook body into events (rules H1-H4 and the mappings of `rules.md`).
///
/// The limits are checked first, then UTF-8, then the JSON is read in one pass, borrowing its
/// strings. The body as a whole is refused ([`ParseError`]) only when it is too large or deep,
/// has too many items, is not UTF-8, not JSON, or not a `whatsapp_business_account`
/// notification; otherwise every item that can be applied is, and each one that cannot is
/// reported in [`Parsed::errors`].
///
/// `received_at` is the time the request arrived: value-level `errors[]` carry no timestamp
/// of their own and are dated with it. Every other event uses its item's timestamp.
///
/// This does not check the signature: use [`parse_signed`](crate::parse_signed) on requests
/// from the network (rule H2).
pub fn parse(body: &[u8], received_at: Timestamp, limits: &Limits) -> Result<Parsed, ParseError> {
    let notification = read(body, limits)?;
    Ok(notification.to_events(received_at))
}

/// Checks the limits, UTF-8 and JSON syntax, and the `object` field; returns the payload
/// borrowed from `body`. [`parse`] is this followed by [`Notification::to_events`].
pub fn read<'a>(body: &'a [u8], limits: &Limits) -> Result<Notification<'a>, ParseError> {
    limits.check(body)?;
    let text = std::str::from_utf8(body).map_err(|source| ParseError::InvalidUtf8 { source })?;
    let (top, exceeded) = crate::lenient::with_item_budget(limits.max_items, || {
        serde_json::from_str::<Obj<Notification<'a>>>(text)
    });
    let top = top.map_err(|source| ParseError::InvalidJson { source })?;
    if exceeded {
        return Err(ParseError::TooManyItems {
            limit: limits.max_items,
        });
    }
    let notification = match top {
        Obj::Ok(n) => n,
        Obj::Wrong(found) => return Err(ParseError::NotAnObject { found }),
    };
    match &notification.object {
        Some(Value::Str(s)) if s == "whatsapp_business_account" => Ok(notification),
        Some(other) => Err(ParseError::WrongObject {
            found: Shown(other).to_string(),
        }),
        None => Err(ParseError::WrongObject {
            found: "missing".into(),
        }),
    }
}

impl Notification<'_> {
    /// Converts the payload into events, skipping and reporting malformed items (rule H1).
    /// The `object` field is not checked here (see [`read`]).
    pub fn to_events(&self, received_at: Timestamp) -> Parsed {
        let mut out = Parsed::default();
        let entries = match &self.entry {
            None => {
                out.fail(
                    "entry".into(),
                    ItemProblem::Missing {
                        field: "entry".into(),
                    },
                );
                return out;
            }
            Some(Arr::Wrong(found)) => {
                out.fail("entry".into(), wrong("entry".into(), "an array", *found));
                return out;
            }
            Some(Arr::Ok(entries)) => entries,
        };
        for (e, entry) in entries.iter().enumerate() {
            let entry = match entry {
                Obj::Ok(entry) => entry,
                Obj::Wrong(found) => {
                    let path = format!("entry[{e}]");
                    out.fail(path.clone(), wrong(path, "an object", *found));
                    continue;
                }
            };
            let changes = match &entry.changes {
                Some(Arr::Ok(changes)) => changes,
                Some(Arr::Wrong(found)) => {
                    let field = format!("entry[{e}].changes");
                    out.fail(format!("entry[{e}]"), wrong(field, "an array", *found));
                    continue;
                }
                None => {
                    let field = format!("entry[{e}].changes");
                    out.fail(format!("entry[{e}]"), ItemProblem::Missing { field });
                    continue;
                }
            };
            // H1: the account is `entry[].id`; account-level items take their instant from
            // `entry[].time`, or the receive time when it is absent.
            let account = entry_account(entry, e).ok();
            for (c, change) in changes.iter().enumerate() {
                let at = ChangePath {
                    entry: e,
                    change: c,
                };
                match change {
                    Obj::Ok(change) => {
                        let kind = match &change.field {
                            Some(Value::Str(f)) => match &**f {
                                "messages" => FieldKind::Messages,
                                "user_preferences" => FieldKind::UserPreferences,
                                "calls" => FieldKind::Calls,
                                "message_template_status_update" => FieldKind::TemplateStatus,
                                "template_category_update" => FieldKind::TemplateCategory,
                                "business_capability_update" => FieldKind::Capability,
                                "phone_number_quality_update" => FieldKind::Quality,
                                _ => {
                                    // H1: other fields are ignored, and counted.
                                    out.ignored += 1;
                                    continue;
                                }
                            },
                            Some(other) => {
                                let field = format!("{at}.field");
                                out.fail(at.to_string(), wrong(field, "a string", other.kind()));
                                continue;
                            }
                            None => {
                                let field = format!("{at}.field");
                                out.fail(at.to_string(), ItemProblem::Missing { field });
                                continue;
                            }
                        };
                        match &change.value {
                            Some(Obj::Ok(value))
                                if matches!(
                                    kind,
                                    FieldKind::TemplateStatus
                                        | FieldKind::TemplateCategory
                                        | FieldKind::Capability
                                        | FieldKind::Quality
                                ) =>
                            {
                                let result = entry_account(entry, e).and_then(|account| {
                                    let time = match &entry.time {
                                        None | Some(Value::Null) => received_at,
                                        Some(v) => entry_timestamp(v, e)?,
                                    };
                                    if matches!(kind, FieldKind::Capability | FieldKind::Quality) {
                                        limit_change(value, kind, &account, time, &mut out);
                                        Ok(())
                                    } else {
                                        template_change(value, kind, at, &account, time, &mut out)
                                    }
                                });
                                if let Err(problem) = result {
                                    out.fail(at.to_string(), problem);
                                }
                            }
                            Some(Obj::Ok(value)) => {
                                let linked = convert_change(value, kind, at, received_at, &mut out);
                                // T4: the number belongs to the entry's account.
                                if let (Some(business), Some(account)) = (linked, &account) {
                                    out.events.push(KeyedEvent::AccountLink {
                                        business,
                                        account: account.clone(),
                                        at: received_at,
                                    });
                                }
                            }
                            Some(Obj::Wrong(found)) => {
                                let field = format!("{at}.value");
                                out.fail(at.to_string(), wrong(field, "an object", *found));
                            }
                            None => {
                                let field = format!("{at}.value");
                                out.fail(at.to_string(), ItemProblem::Missing { field });
                            }
                        }
                    }
                    Obj::Wrong(found) => {
                        out.fail(at.to_string(), wrong(at.to_string(), "an object", *found));
                    }
                }
            }
        }
        out
    }
}

impl Parsed {
    fn fail(&mut self, path: String, problem: ItemProblem) {
        self.errors.push(ItemError { path, problem });
    }

    fn contact(&mut self, key: &ContactKeyParts<'_>, contact: ContactId, event: Event) {
        self.events.push(KeyedEvent::Contact {
            key: ContactKey::new(key.business.clone(), contact),
            event,
        });
    }
}

struct ContactKeyParts<'b> {
    business: &'b BusinessId,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Messages,
    UserPreferences,
    Calls,
    TemplateStatus,
    TemplateCategory,
    Capability,
    Quality,
}

/// L2: a `business_capability_update` or `phone_number_quality_update` sets the messaging
/// limit of the account's portfolio; `TIER_NOT_SET`, an absent or unknown value changes nothing
/// (counted as ignored).
fn limit_change(
    value: &ChangeValue<'_>,
    kind: FieldKind,
    account: &AccountId,
    time: Timestamp,
    out: &mut Parsed,
) {
    let text = |v: &Option<Value<'_>>| -> Option<String> {
        match v.as_ref()? {
            Value::Str(s) => Some(s.to_string()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    };
    let per_business = text(&value.max_daily_conversations_per_business);
    let fallback = match kind {
        FieldKind::Capability => text(&value.max_daily_conversation_per_phone),
        _ => text(&value.current_limit),
    };
    // The per-business value first; the older per-number one only when it is absent.
    let limit = per_business
        .as_deref()
        .map(waguard_core::MessagingLimit::parse)
        .unwrap_or_else(|| {
            fallback
                .as_deref()
                .and_then(waguard_core::MessagingLimit::parse)
        });
    match limit {
        Some(limit) => out.events.push(KeyedEvent::PortfolioLimit {
            account: account.clone(),
            limit,
            at: time,
        }),
        None => out.ignored += 1,
    }
}

/// `entry[E].id`: the account (WABA), 1 to 32 digits (a string, or an integer).
fn entry_account(entry: &crate::payload::Entry<'_>, e: usize) -> Result<AccountId, ItemProblem> {
    let field = format!("entry[{e}].id");
    match &entry.id {
        Some(Value::Str(id)) => AccountId::parse(id).map_err(|err| err.with_field(field).into()),
        Some(Value::Int(id)) => {
            AccountId::parse(&id.to_string()).map_err(|err| err.with_field(field).into())
        }
        Some(other) => Err(wrong(field, "a string", other.kind())),
        None => Err(ItemProblem::Missing { field }),
    }
}

/// `entry[E].time`: Unix seconds, a non-negative integer (number or string).
fn entry_timestamp(v: &Value<'_>, e: usize) -> Result<Timestamp, ItemProblem> {
    let field = format!("entry[{e}].time");
    let seconds = v
        .as_integer()
        .filter(|s| *s >= 0)
        .ok_or_else(|| ItemProblem::BadTimestamp {
            field: field.clone(),
            value: Shown(v).to_string(),
        })?;
    Timestamp::from_unix_seconds(seconds)
        .map_err(|source| ItemProblem::TimestampOutOfRange { field, source })
}

/// A string field of a template change, required.
fn template_field<'v>(
    v: &'v Option<Value<'_>>,
    at: ChangePath,
    name: &str,
) -> Result<&'v str, ItemProblem> {
    let field = format!("{at}.value.{name}");
    match v {
        Some(Value::Str(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) | Some(Value::Str(_)) => Err(ItemProblem::Missing { field }),
        Some(other) => Err(wrong(field, "a string", other.kind())),
    }
}

/// T3: a category as Meta writes it, any case; `None` for anything else.
fn category_of(v: &Option<Value<'_>>) -> Option<TemplateCategory> {
    let text = v.as_ref().and_then(Value::as_str)?;
    match text.to_ascii_lowercase().as_str() {
        "marketing" => Some(TemplateCategory::Marketing),
        "utility" => Some(TemplateCategory::Utility),
        "authentication" => Some(TemplateCategory::Authentication),
        _ => None,
    }
}

/// T1, T3: a `message_template_status_update` or `template_category_update` change.
fn template_change(
    value: &ChangeValue<'_>,
    kind: FieldKind,
    at: ChangePath,
    account: &AccountId,
    time: Timestamp,
    out: &mut Parsed,
) -> Result<(), ItemProblem> {
    let name = template_field(&value.message_template_name, at, "message_template_name")?;
    let language = template_field(
        &value.message_template_language,
        at,
        "message_template_language",
    )?;
    let template = TemplateName::new(name, language)
        .map_err(|e| e.with_field(format!("{at}.value.message_template_name")))?;
    let id = TemplateId {
        account: account.clone(),
        template,
    };
    let mut events = Vec::new();
    match kind {
        FieldKind::TemplateStatus => {
            let event = template_field(&value.event, at, "event")?;
            let title = value
                .other_info
                .as_ref()
                .and_then(Obj::get)
                .and_then(|o| o.title.as_ref())
                .and_then(Value::as_str);
            let status = match event.to_ascii_uppercase().as_str() {
                "APPROVED" | "REINSTATED" | "UNARCHIVED" => Some(TemplateStatus::Approved),
                "PAUSED" => Some(TemplateStatus::Paused(match title {
                    Some("SECOND_PAUSE") => PauseKind::Second,
                    Some("RATE_LIMITING_PAUSE") => PauseKind::RateLimiting,
                    _ => PauseKind::First,
                })),
                "DISABLED" => Some(TemplateStatus::Disabled),
                "REJECTED" | "PENDING" | "DELETED" | "PENDING_DELETION" | "ARCHIVED"
                | "IN_APPEAL" => Some(TemplateStatus::NotApproved),
                // FLAGGED, LOCKED, LIMIT_EXCEEDED and anything else: no change.
                _ => None,
            };
            let category = category_of(&value.message_template_category);
            if let Some(status) = status {
                events.push(TemplateEvent::Status { at: time, status });
            }
            if let Some(category) = category {
                events.push(TemplateEvent::Category { at: time, category });
            }
        }
        _ => {
            // A completed change carries the previous and the new category; an advance notice
            // (`correct_category`) changes nothing.
            if let (true, Some(category)) = (
                value.previous_category.is_some(),
                category_of(&value.new_category),
            ) {
                events.push(TemplateEvent::Category { at: time, category });
            }
        }
    }
    if events.is_empty() {
        out.ignored += 1;
    }
    for event in events {
        out.events.push(KeyedEvent::Template {
            template: id.clone(),
            event,
        });
    }
    Ok(())
}

/// `entry[E].changes[C]`, formatted only when an error needs it.
#[derive(Clone, Copy)]
struct ChangePath {
    entry: usize,
    change: usize,
}

impl fmt::Display for ChangePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry[{}].changes[{}]", self.entry, self.change)
    }
}

/// `entry[E].changes[C].value.LIST[I]`, formatted only when an error needs it.
#[derive(Clone, Copy)]
struct ItemPath {
    change: ChangePath,
    list: &'static str,
    index: usize,
}

impl ItemPath {
    fn field(&self, name: &str) -> String {
        format!("{self}.{name}")
    }
}

impl fmt::Display for ItemPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.value.{}[{}]", self.change, self.list, self.index)
    }
}

fn wrong(field: String, expected: &'static str, found: JsonKind) -> ItemProblem {
    ItemProblem::WrongType {
        field,
        expected,
        found,
    }
}

/// Converts one `messages`, `user_preferences` or `calls` change; returns its business number
/// when it had a valid one (T4 links it to the entry's account).
fn convert_change(
    value: &ChangeValue<'_>,
    kind: FieldKind,
    at: ChangePath,
    received_at: Timestamp,
    out: &mut Parsed,
) -> Option<BusinessId> {
    // Every item of a change belongs to its business number (K4).
    let business = match value.metadata.as_ref() {
        Some(Obj::Ok(meta)) => match meta.phone_number_id.as_ref() {
            Some(Value::Str(id)) => match BusinessId::parse(id) {
                Ok(b) => b,
                Err(e) => {
                    let field = format!("{at}.value.metadata.phone_number_id");
                    out.fail(at.to_string(), e.with_field(field).into());
                    return None;
                }
            },
            Some(other) => {
                let field = format!("{at}.value.metadata.phone_number_id");
                out.fail(at.to_string(), wrong(field, "a string", other.kind()));
                return None;
            }
            None => {
                let field = format!("{at}.value.metadata.phone_number_id");
                out.fail(at.to_string(), ItemProblem::Missing { field });
                return None;
            }
        },
        Some(Obj::Wrong(found)) => {
            let field = format!("{at}.value.metadata");
            out.fail(at.to_string(), wrong(field, "an object", *found));
            return None;
        }
        None => {
            let field = format!("{at}.value.metadata");
            out.fail(at.to_string(), ItemProblem::Missing { field });
            return None;
        }
    };
    let contacts = match &value.contacts {
        Some(Arr::Ok(c)) => c.as_slice(),
        _ => &[],
    };
    let mut cx = Cx {
        key: ContactKeyParts {
            business: &business,
        },
        contacts,
        at,
        received_at,
        latest: None,
        out,
    };
    match kind {
        FieldKind::Messages => {
            cx.each(value.messages.as_ref(), "messages", Cx::message);
            cx.each(value.statuses.as_ref(), "statuses", Cx::status);
            cx.each(value.errors.as_ref(), "errors", Cx::value_error);
        }
        FieldKind::UserPreferences => cx.each(
            value.user_preferences.as_ref(),
            "user_preferences",
            Cx::preference,
        ),
        // A `calls` change may also carry call `statuses[]`: those are about calls, not
        // messages, and are not read.
        FieldKind::Calls => cx.each(value.calls.as_ref(), "calls", Cx::call),
        FieldKind::TemplateStatus
        | FieldKind::TemplateCategory
        | FieldKind::Capability
        | FieldKind::Quality => {}
    }
    cx.contact_links();
    Some(business)
}

/// The conversion of one change's items.
struct Cx<'p, 'a> {
    key: ContactKeyParts<'p>,
    contacts: &'p [Obj<Contact<'a>>],
    at: ChangePath,
    received_at: Timestamp,
    /// The latest item instant of this change: the time of its `contacts[]` links (K5).
    latest: Option<Timestamp>,
    out: &'p mut Parsed,
}

impl<'p, 'a> Cx<'p, 'a> {
    /// An item's timestamp, remembered as the change's latest.
    fn timestamp(&mut self, v: Option<&Value<'_>>, p: &ItemPath) -> Result<Timestamp, ItemProblem> {
        let at = timestamp(v, p, "timestamp")?;
        self.latest = self.latest.max(Some(at));
        Ok(at)
    }

    /// K5: a phone and a BSUID of the same business number seen together are one person.
    fn link(&mut self, phone: &ContactId, user: Option<Bsuid>, at: Timestamp) {
        if let (ContactId::Phone(phone), Some(user)) = (phone, user) {
            self.out.events.push(KeyedEvent::Link {
                business: self.key.business.clone(),
                user,
                phone: phone.clone(),
                at,
            });
        }
    }

    /// K5: every `contacts[]` entry with both a `wa_id` and a `user_id` links them, at the
    /// change's latest item time (the entry has none of its own). Entries that do not parse
    /// link nothing; the items that name them report their own errors.
    fn contact_links(&mut self) {
        let at = self.latest.unwrap_or(self.received_at);
        for c in self.contacts {
            let Some(c) = c.get() else { continue };
            let field = |v: &Option<Value<'_>>| {
                v.as_ref()
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let (Some(wa_id), Some(user_id)) = (field(&c.wa_id), field(&c.user_id)) else {
                continue;
            };
            if let (Ok(phone), Ok(user)) = (PhoneNumber::parse(&wa_id), Bsuid::parse(&user_id)) {
                if !user.is_parent() {
                    self.link(&ContactId::Phone(phone), Some(user), at);
                }
            }
        }
    }
    /// Runs `f` on each object of the list, reporting failures with the item's path and going
    /// on with the next item (H1).
    fn each<T>(
        &mut self,
        list: Option<&Arr<T>>,
        name: &'static str,
        f: fn(&mut Self, &T, ItemPath) -> Result<(), ItemProblem>,
    ) {
        let items = match list {
            None => return,
            Some(Arr::Ok(items)) => items,
            Some(Arr::Wrong(found)) => {
                let field = format!("{}.value.{name}", self.at);
                self.out
                    .fail(field.clone(), wrong(field, "an array", *found));
                return;
            }
        };
        for (index, item) in items.iter().enumerate() {
            let path = ItemPath {
                change: self.at,
                list: name,
                index,
            };
            let result = match item {
                Obj::Ok(item) => f(self, item, path),
                Obj::Wrong(found) => Err(wrong(path.to_string(), "an object", *found)),
            };
            if let Err(problem) = result {
                self.out.fail(path.to_string(), problem);
            }
        }
    }

    /// W1, W5, W7, O1: an incoming message opens the window of its sender, or of its group.
    fn message(&mut self, m: &Message<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        // Unknown and missing types count as inbound (H1); only `system` does not (W1).
        let ty = m.r#type.as_ref().and_then(Value::as_str);
        if ty == Some("system") {
            return self.system(m, p);
        }
        let at = self.timestamp(m.timestamp.as_ref(), &p)?;
        let contact = match opt_str(m.group_id.as_ref(), &p, "group_id")? {
            // W7: a group message opens the group's window, not the sender's.
            Some(group) => ContactId::Group(
                GroupId::parse(group).map_err(|e| e.with_field(p.field("group_id")))?,
            ),
            None => {
                let from = opt_str(m.from.as_ref(), &p, "from")?;
                let from_user = opt_str(m.from_user_id.as_ref(), &p, "from_user_id")?;
                if from.is_none() && from_user.is_none() {
                    // K3: a message naming no sender belongs to the value's only contact.
                    self.sole_contact(&p)?
                } else {
                    let (contact, user) = self.who(
                        &p,
                        (m.from.as_ref(), "from"),
                        (m.from_user_id.as_ref(), "from_user_id"),
                        (m.from_parent_user_id.as_ref(), "from_parent_user_id"),
                    )?;
                    self.link(&contact, user, at);
                    contact
                }
            }
        };
        // O1: the raw text goes to the core's policy, which matches keywords.
        let text = match ty {
            Some("text") => m
                .text
                .as_ref()
                .and_then(Obj::get)
                .and_then(|t| t.body.as_ref()),
            Some("button") => m
                .button
                .as_ref()
                .and_then(Obj::get)
                .and_then(|b| b.text.as_ref()),
            _ => None,
        }
        .and_then(Value::as_str)
        .map(str::to_owned);
        // W5: a click-to-WhatsApp referral carries a click id.
        let referral = m
            .referral
            .as_ref()
            .and_then(Obj::get)
            .and_then(|r| r.ctwa_clid.as_ref())
            .and_then(Value::as_str)
            .is_some_and(|clid| !clid.is_empty());
        self.out
            .contact(&self.key, contact, Event::Inbound { at, text, referral });
        Ok(())
    }

    /// K3: the contact of a message that names no sender: the value's only `contacts[]` entry,
    /// by its `wa_id`, else its `user_id`; no entry or several is an item error.
    fn sole_contact(&self, p: &ItemPath) -> Result<ContactId, ItemProblem> {
        let missing = || ItemProblem::NoContact {
            phone: "from",
            user: "from_user_id",
        };
        let [only] = self.contacts else {
            return Err(missing());
        };
        let c = only.get().ok_or_else(missing)?;
        let base = format!("{}.value.contacts[0]", self.at);
        if let Some(wa_id) = c
            .wa_id
            .as_ref()
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return PhoneNumber::parse(wa_id)
                .map(ContactId::Phone)
                .map_err(|e| e.with_field(format!("{base}.wa_id")).into());
        }
        if let Some(user) = c
            .user_id
            .as_ref()
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let user = Bsuid::parse(user).map_err(|e| e.with_field(format!("{base}.user_id")))?;
            if user.is_parent() {
                return Err(missing());
            }
            return Ok(ContactId::User(user));
        }
        let _ = p;
        Err(missing())
    }

    /// K6: a `user_changed_number` (or `customer_changed_number`) system message moves the
    /// sender's objections to the new number. Other system messages are ignored (W1: none
    /// opens a window).
    fn system(&mut self, m: &Message<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        let system = m.system.as_ref().and_then(Obj::get);
        let kind = system
            .and_then(|s| s.r#type.as_ref())
            .and_then(Value::as_str);
        if !matches!(
            kind,
            Some("user_changed_number" | "customer_changed_number")
        ) {
            self.out.ignored += 1;
            return Ok(());
        }
        let at = self.timestamp(m.timestamp.as_ref(), &p)?;
        let from = opt_str(m.from.as_ref(), &p, "from")?.ok_or_else(|| ItemProblem::Missing {
            field: p.field("from"),
        })?;
        let from = PhoneNumber::parse(from).map_err(|e| e.with_field(p.field("from")))?;
        let system = system.expect("the kind was read from it");
        let (new, field) = match opt_str(system.wa_id.as_ref(), &p, "system.wa_id")? {
            Some(n) => (Some(n), "system.wa_id"),
            None => (
                opt_str(system.new_wa_id.as_ref(), &p, "system.new_wa_id")?,
                "system.new_wa_id",
            ),
        };
        // A change that does not name the new number has nothing to carry over.
        let Some(new) = new else {
            self.out.ignored += 1;
            return Ok(());
        };
        let to = PhoneNumber::parse(new).map_err(|e| e.with_field(p.field(field)))?;
        if to != from {
            self.out.events.push(KeyedEvent::NumberChanged {
                business: self.key.business.clone(),
                from,
                to,
                at,
            });
        }
        Ok(())
    }

    /// W3, W4, D1-D5, S1: what happened to an outgoing message.
    fn status(&mut self, s: &Status<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        let state = match s.status.as_ref() {
            None => {
                return Err(ItemProblem::Missing {
                    field: p.field("status"),
                })
            }
            Some(Value::Str(v)) => match &**v {
                "sent" => Some(DeliveryStatus::Sent),
                "delivered" => Some(DeliveryStatus::Delivered),
                // H1: a voice message played counts as read.
                "read" | "played" => Some(DeliveryStatus::Read),
                "failed" => None,
                // `deleted`, `warning` and statuses Meta adds later change nothing.
                _ => {
                    self.out.ignored += 1;
                    return Ok(());
                }
            },
            Some(other) => return Err(wrong(p.field("status"), "a string", other.kind())),
        };
        let at = self.timestamp(s.timestamp.as_ref(), &p)?;
        let is_group = s.recipient_type.as_ref().and_then(Value::as_str) == Some("group");
        let contact = if is_group {
            // W7: statuses of group messages carry the group id as `recipient_id`.
            let group = opt_str(s.recipient_id.as_ref(), &p, "recipient_id")?.ok_or_else(|| {
                ItemProblem::Missing {
                    field: p.field("recipient_id"),
                }
            })?;
            ContactId::Group(
                GroupId::parse(group).map_err(|e| e.with_field(p.field("recipient_id")))?,
            )
        } else {
            let (contact, user) = self.who(
                &p,
                (s.recipient_id.as_ref(), "recipient_id"),
                (s.recipient_user_id.as_ref(), "recipient_user_id"),
                (
                    s.recipient_parent_user_id.as_ref(),
                    "recipient_parent_user_id",
                ),
            )?;
            self.link(&contact, user, at);
            contact
        };
        let wamid = opt_str(s.id.as_ref(), &p, "id")?.map(WamidHash::of);
        match state {
            Some(status) => {
                self.out.contact(
                    &self.key,
                    contact.clone(),
                    Event::Status { at, status, wamid },
                );
                // W3: the pricing category tells a template went out.
                let category = s
                    .pricing
                    .as_ref()
                    .and_then(Obj::get)
                    .and_then(|pr| pr.category.as_ref())
                    .and_then(Value::as_str);
                if category.is_some_and(|c| TEMPLATE_CATEGORIES.contains(&c)) {
                    self.out
                        .contact(&self.key, contact, Event::TemplateSent { at });
                }
            }
            None => {
                // One failure per error; a bad error entry is reported on its own (H1).
                let errors = match s.errors.as_ref() {
                    Some(Arr::Ok(errors)) if !errors.is_empty() => errors,
                    Some(Arr::Wrong(found)) => {
                        return Err(wrong(p.field("errors"), "an array", *found))
                    }
                    _ => {
                        return Err(ItemProblem::Missing {
                            field: p.field("errors"),
                        })
                    }
                };
                for (k, error) in errors.iter().enumerate() {
                    let sub = format!("{p}.errors[{k}]");
                    let code = match error {
                        Obj::Ok(error) => code_of(error.code.as_ref(), &sub),
                        Obj::Wrong(found) => Err(wrong(sub.clone(), "an object", *found)),
                    };
                    match code {
                        Ok(code) => self.out.contact(
                            &self.key,
                            contact.clone(),
                            Event::Failure { at, code, wamid },
                        ),
                        Err(problem) => self.out.fail(sub, problem),
                    }
                }
            }
        }
        Ok(())
    }

    /// H1: value-level errors report an inbound item Meta could not process (131000
    /// "Unsupported webhook payload", 131051, ...). They say nothing about the business's
    /// ability to send: they change no state and are counted as ignored. A malformed one is
    /// still reported.
    fn value_error(&mut self, e: &ErrorObject<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        code_of(e.code.as_ref(), &p.to_string())?;
        self.out.ignored += 1;
        Ok(())
    }

    /// O2: `user_preferences` with `category: marketing_messages`, `stop` or `resume`.
    fn preference(&mut self, u: &UserPreference<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        if u.category.as_ref().and_then(Value::as_str) != Some("marketing_messages") {
            self.out.ignored += 1;
            return Ok(());
        }
        let value = match u.value.as_ref().and_then(Value::as_str) {
            Some("stop") => Preference::Stop,
            Some("resume") => Preference::Resume,
            _ => {
                self.out.ignored += 1;
                return Ok(());
            }
        };
        let at = self.timestamp(u.timestamp.as_ref(), &p)?;
        let (contact, user) = self.who(
            &p,
            (u.wa_id.as_ref(), "wa_id"),
            (u.user_id.as_ref(), "user_id"),
            (u.parent_user_id.as_ref(), "parent_user_id"),
        )?;
        self.link(&contact, user, at);
        self.out
            .contact(&self.key, contact, Event::MarketingPreference { at, value });
        Ok(())
    }

    /// W1: a user-initiated call opens the window like a message. Only its `connect` event
    /// counts: it is when the user called; a `terminate` repeats the same call at its end, and
    /// business-initiated calls open nothing.
    fn call(&mut self, c: &Call<'a>, p: ItemPath) -> Result<(), ItemProblem> {
        let is = |v: &Option<Value<'_>>, want: &str| {
            v.as_ref()
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(want))
        };
        if !is(&c.direction, "USER_INITIATED") || !is(&c.event, "connect") {
            self.out.ignored += 1;
            return Ok(());
        }
        let at = self.timestamp(c.timestamp.as_ref(), &p)?;
        let (contact, user) = self.who(
            &p,
            (c.from.as_ref(), "from"),
            (c.from_user_id.as_ref(), "from_user_id"),
            (c.from_parent_user_id.as_ref(), "from_parent_user_id"),
        )?;
        self.link(&contact, user, at);
        self.out.contact(
            &self.key,
            contact,
            Event::Inbound {
                at,
                text: None,
                referral: false,
            },
        );
        Ok(())
    }

    /// K3: the contact an item is about, and the BSUID seen with it when the contact is a
    /// phone (a K5 link). The phone wins when known, from the item itself or from the
    /// `contacts[]` entry with the same user id; else the BSUID. A parent BSUID is never a key:
    /// an item naming its contact only by one is an error. A BSUID found in the phone field
    /// (and no user id field) is taken as the user id.
    fn who(
        &self,
        p: &ItemPath,
        phone: (Option<&Value<'a>>, &'static str),
        user: (Option<&Value<'a>>, &'static str),
        parent: (Option<&Value<'a>>, &'static str),
    ) -> Result<(ContactId, Option<Bsuid>), ItemProblem> {
        let mut user_id = opt_str(user.0, p, user.1)?;
        let mut user_field = user.1;
        let mut number_found = None;
        if let Some(number) = opt_str(phone.0, p, phone.1)? {
            match PhoneNumber::parse(number) {
                Ok(number) => number_found = Some(number),
                // A message sent to a BSUID may name it where a phone is expected: a BSUID is
                // never a valid phone (it has letters and a dot), so read it as what it is.
                Err(_) if user_id.is_none() && Bsuid::parse(number).is_ok() => {
                    user_id = Some(number);
                    user_field = phone.1;
                }
                Err(e) => return Err(e.with_field(p.field(phone.1)).into()),
            }
        }
        // The user id, when it is one that can be linked (a parent id never is).
        let linkable = match user_id {
            Some(id) => {
                let parsed = Bsuid::parse(id).map_err(|e| e.with_field(p.field(user_field)))?;
                (!parsed.is_parent()).then_some(parsed)
            }
            None => None,
        };
        if let Some(number) = number_found {
            return Ok((ContactId::Phone(number), linkable));
        }
        let parent_id = opt_str(parent.0, p, parent.1)?;
        if let Some((k, wa_id)) = self.phone_in_contacts(user_id, parent_id) {
            return PhoneNumber::parse(wa_id)
                .map(|n| (ContactId::Phone(n), linkable.clone()))
                .map_err(|e| {
                    e.with_field(format!("{}.value.contacts[{k}].wa_id", self.at))
                        .into()
                });
        }
        if let Some(user) = linkable {
            return Ok((ContactId::User(user), None));
        }
        Err(ItemProblem::NoContact {
            phone: phone.1,
            user: user.1,
        })
    }

    /// The `wa_id` of the `contacts[]` entry whose `user_id` (or `parent_user_id`) is the given
    /// one, with the entry's index.
    fn phone_in_contacts(
        &self,
        user: Option<&str>,
        parent: Option<&str>,
    ) -> Option<(usize, &'p str)> {
        if user.is_none() && parent.is_none() {
            return None;
        }
        let field =
            |v: &'p Option<Value<'a>>| v.as_ref().and_then(Value::as_str).filter(|s| !s.is_empty());
        self.contacts.iter().enumerate().find_map(|(k, c)| {
            let c = c.get()?;
            let wa_id = field(&c.wa_id)?;
            let same_user = user.is_some() && field(&c.user_id) == user;
            let same_parent = parent.is_some() && field(&c.parent_user_id) == parent;
            (same_user || same_parent).then_some((k, wa_id))
        })
    }
}

/// An optional string field: absent, `null` and `""` are `None`; other kinds are an error.
fn opt_str<'v>(
    v: Option<&'v Value<'_>>,
    p: &ItemPath,
    name: &str,
) -> Result<Option<&'v str>, ItemProblem> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) if s.is_empty() => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(p.field(name), "a string", other.kind())),
    }
}

/// Unix seconds as a string (messages, statuses) or an integer (`user_preferences`, calls).
fn timestamp(v: Option<&Value<'_>>, p: &ItemPath, name: &str) -> Result<Timestamp, ItemProblem> {
    let v = v.ok_or_else(|| ItemProblem::Missing {
        field: p.field(name),
    })?;
    let bad = || ItemProblem::BadTimestamp {
        field: p.field(name),
        value: Shown(v).to_string(),
    };
    // E5: non-negative integers only (as strings or numbers).
    let seconds = v.as_integer().filter(|s| *s >= 0).ok_or_else(bad)?;
    // In range, build the instant directly: `Timestamp::from_unix_seconds` formats its error
    // value even on success, which would cost an allocation per event on the hot path.
    if let Some(nanos) = seconds.checked_mul(1_000_000_000) {
        return Ok(Timestamp::from_unix_nanos(nanos));
    }
    Timestamp::from_unix_seconds(seconds).map_err(|source| ItemProblem::TimestampOutOfRange {
        field: p.field(name),
        source,
    })
}

/// A Meta error code: a non-negative integer, as a JSON integer or a string of digits.
fn code_of(v: Option<&Value<'_>>, path: &str) -> Result<u32, ItemProblem> {
    let field = || format!("{path}.code");
    let v = v.ok_or_else(|| ItemProblem::Missing { field: field() })?;
    v.as_integer()
        .and_then(|c| u32::try_from(c).ok())
        .ok_or_else(|| ItemProblem::BadCode {
            field: field(),
            value: Shown(v).to_string(),
        })
}
