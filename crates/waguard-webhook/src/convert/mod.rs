//! From a payload to core events (rules H1, W1, W3, W5, W7, O2, D1-D5, S1-S3, K3).

use std::fmt;

use waguard_core::{BusinessId, ContactId, ContactKey, Event, KeyedEvent, Timestamp};

use crate::error::{ItemError, ItemProblem, ParseError, Shown};
use crate::lenient::{Arr, JsonKind, Obj, Value};
use crate::limits::Limits;
use crate::payload::Notification;

mod account;
mod items;

use account::{entry_account, entry_timestamp, limit_change, template_change};
use items::convert_change;

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
