//! One change's items: messages, statuses, errors, preferences and calls, to contact events.

use waguard_core::{
    Bsuid, BusinessId, ContactId, DeliveryStatus, Event, GroupId, KeyedEvent, PhoneNumber,
    Preference, Timestamp, WamidHash,
};

use crate::error::{ItemProblem, Shown};
use crate::lenient::{Arr, Obj, Value};
use crate::payload::{Call, ChangeValue, Contact, ErrorObject, Message, Status, UserPreference};

use super::{wrong, ChangePath, ContactKeyParts, FieldKind, ItemPath, Parsed, TEMPLATE_CATEGORIES};

/// Converts one `messages`, `user_preferences` or `calls` change; returns its business number
/// when it had a valid one (T4 links it to the entry's account).
pub(super) fn convert_change(
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
