//! Account-level changes: the messaging limit (L2) and the template registry (T1-T4).

use waguard_core::{
    AccountId, KeyedEvent, PauseKind, TemplateCategory, TemplateEvent, TemplateId, TemplateName,
    TemplateStatus, Timestamp,
};

use crate::error::{ItemProblem, Shown};
use crate::lenient::{Obj, Value};
use crate::payload::ChangeValue;

use super::{wrong, ChangePath, FieldKind, Parsed};

/// L2: a `business_capability_update` or `phone_number_quality_update` sets the messaging
/// limit of the account's portfolio; `TIER_NOT_SET`, an absent or unknown value changes nothing
/// (counted as ignored).
pub(super) fn limit_change(
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
pub(super) fn entry_account(
    entry: &crate::payload::Entry<'_>,
    e: usize,
) -> Result<AccountId, ItemProblem> {
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
pub(super) fn entry_timestamp(v: &Value<'_>, e: usize) -> Result<Timestamp, ItemProblem> {
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
pub(super) fn template_change(
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
