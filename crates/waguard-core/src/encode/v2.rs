//! Format versions 2 and 3, the compact layout written since waguard 0.1's store benchmarks
//! showed postcard's serde path costing more than the decision itself.
//!
//! ```text
//! contact record: 3 | bitmap (varint) | instants | failures | deliveries | attempts | link | moved_to
//! sender record:  3 | bitmap (varint) | instants
//! ```
//! Version 3 adds three bits to the contact bitmap (the consent erasure of E4, the K5 link and
//! the K6 forward); a version-2 record is a version-3 record without them, so both are read by
//! one decoder that refuses the new bits under version 2. A link is the phone's digits as a
//! varint and its instant.
//! The bitmap says which optional instants and which non-empty lists follow, in bit order.
//! Instants of a contact record are relative to its newest event (written first, relative to
//! the Unix epoch); see [`wire`](super::wire). Lists are a count and their entries in their
//! sorted order; wamid and idempotency-key hashes are 8 bytes little-endian. The layout is
//! canonical: one state has exactly one encoding, so equal states give equal bytes (rule E1).

use super::wire::{Reader, Writer};
use crate::error::{MalformedRecord, RecordProblem};
use crate::id::{AccountId, PhoneNumber};
use crate::portfolio::{MessagingLimit, PortfolioState};
use crate::state::{Attempts, ConversationState, DeliveryEntry, FailureEntry, Link, SenderState};
use crate::template::{PauseKind, TemplateState, TemplateStatus};
use crate::time::Timestamp;
use crate::TemplateCategory;
use crate::WamidHash;

pub(super) const VERSION: u8 = 3;
/// The previous version, still read.
pub(super) const VERSION_2: u8 = 2;

// Bits of the contact bitmap. The fields a typical contact has come first, so that its bitmap
// fits in one byte.
const LATEST_EVENT: u64 = 1 << 0;
const LAST_INBOUND: u64 = 1 << 1;
const LAST_TEMPLATE: u64 = 1 << 2;
const FIRST_TEMPLATE: u64 = 1 << 3;
const LAST_DELIVERED: u64 = 1 << 4;
const PAIR_BUDGET: u64 = 1 << 5;
const DELIVERIES: u64 = 1 << 6;
const ERASED: u64 = 1 << 7;
const REFERRAL: u64 = 1 << 8;
const CLOSED_MARK: u64 = 1 << 9;
const OPT_ALL_OUT: u64 = 1 << 10;
const OPT_ALL_IN: u64 = 1 << 11;
const OPT_MARKETING_OUT: u64 = 1 << 12;
const OPT_MARKETING_IN: u64 = 1 << 13;
const FAILURES: u64 = 1 << 14;
const ATTEMPTS: u64 = 1 << 15;
const CONSENT_ERASED: u64 = 1 << 16;
const LINK: u64 = 1 << 17;
const MOVED_TO: u64 = 1 << 18;
const COUNTED_AT: u64 = 1 << 19;
const CONTACT_BITS_V2: u64 = (1 << 16) - 1;
const CONTACT_BITS: u64 = (1 << 20) - 1;

/// The optional instants of a contact record other than the base, in bitmap order, with their
/// names for errors, handed to the macro `$then` (after its own leading arguments). One list
/// for both directions, so the order `encode_contact` writes is the order `decode_contact`
/// reads; bits increase down the list, so reading the set bits from the lowest up is that
/// order too.
macro_rules! with_contact_slots {
    ($then:ident!($($arg:tt)*)) => {
        $then!($($arg)*;
            LAST_INBOUND "last_inbound" last_inbound,
            LAST_TEMPLATE "last_template_at" last_template_at,
            FIRST_TEMPLATE "first_template_at" first_template_at,
            LAST_DELIVERED "last_delivered_at" last_delivered_at,
            PAIR_BUDGET "pair_budget_tat" pair_budget_tat,
            ERASED "erased_at" erased_at,
            REFERRAL "referral_at" referral_at,
            CLOSED_MARK "closed_mark" closed_mark,
            OPT_ALL_OUT "opt_all.out_at" opt_all.out_at,
            OPT_ALL_IN "opt_all.in_at" opt_all.in_at,
            OPT_MARKETING_OUT "opt_marketing.out_at" opt_marketing.out_at,
            OPT_MARKETING_IN "opt_marketing.in_at" opt_marketing.in_at,
            CONSENT_ERASED "consent_erased_at" consent_erased_at,
            COUNTED_AT "counted_at" counted_at,
        )
    };
}

/// `(bit, &slot)` of every slot of `$s`, in list order (for writing).
macro_rules! slot_refs {
    ($s:expr; $($bit:ident $name:literal $($field:ident).+,)*) => {
        [$(($bit, &$s.$($field).+)),*]
    };
}

/// The bits of all slots.
macro_rules! slot_bits {
    (; $($bit:ident $name:literal $($field:ident).+,)*) => {
        0 $(| $bit)*
    };
}

/// The name and the field of the slot of one bit (for reading), `None` for another bit.
macro_rules! slot_of {
    ($s:expr, $one:expr; $($bit:ident $name:literal $($field:ident).+,)*) => {
        match $one {
            $($bit => Some(($name, &mut $s.$($field).+)),)*
            _ => None,
        }
    };
}

const SLOT_BITS: u64 = with_contact_slots!(slot_bits!());

pub(super) fn encode_contact(s: &ConversationState) -> Vec<u8> {
    let f = &s.feedback;
    let capacity =
        3 + 10 * 13 + 20 * f.failures.len() + 20 * f.deliveries.len() + 25 * s.attempts.len();
    let mut w = Writer {
        out: Vec::with_capacity(capacity),
    };
    w.out.push(VERSION);
    let slots = with_contact_slots!(slot_refs!(s));
    let mut bitmap = 0;
    if s.latest_event.is_some() {
        bitmap |= LATEST_EVENT;
    }
    for (bit, slot) in &slots {
        if slot.is_some() {
            bitmap |= bit;
        }
    }
    for (bit, empty) in [
        (DELIVERIES, f.deliveries.is_empty()),
        (FAILURES, f.failures.is_empty()),
        (ATTEMPTS, s.attempts.is_empty()),
        (LINK, s.link.is_none()),
        (MOVED_TO, s.moved_to.is_none()),
    ] {
        if !empty {
            bitmap |= bit;
        }
    }
    w.varint(bitmap);
    let base = match s.latest_event {
        Some(latest) => {
            w.time(latest, 0);
            latest.unix_nanos()
        }
        None => 0,
    };
    // Instants in list order, which `decode_contact` reads back the same way.
    for (_, slot) in slots {
        if let Some(at) = *slot {
            w.time(at, base);
        }
    }
    if !f.failures.is_empty() {
        w.varint(f.failures.len() as u64);
        for e in &f.failures {
            w.varint((u64::from(e.code) << 1) | u64::from(e.wamid.is_some()));
            if let Some(wamid) = e.wamid {
                w.hash(wamid.get());
            }
            w.time(e.at, base);
        }
    }
    if !f.deliveries.is_empty() {
        w.varint(f.deliveries.len() as u64);
        for d in &f.deliveries {
            w.hash(d.wamid.get());
            w.time(d.at, base);
        }
    }
    if !s.attempts.is_empty() {
        w.varint(s.attempts.len() as u64);
        for a in &s.attempts {
            w.hash(a.key_hash);
            w.time(a.first_at, base);
            w.varint(u64::from(a.count));
        }
    }
    for link in [&s.link, &s.moved_to].into_iter().flatten() {
        w.varint(link.phone.digits().parse().unwrap_or(0));
        w.time(link.at, base);
    }
    w.out
}

fn read_link(r: &mut Reader<'_>, field: &'static str, base: i64) -> Result<Link, MalformedRecord> {
    let digits = r.varint(field)?;
    let phone = PhoneNumber::parse(&digits.to_string())
        .map_err(|_| r.error(field, RecordProblem::OutOfRange))?;
    let at = r.time(field, base)?;
    Ok(Link { phone, at })
}

/// Reads a contact record body into `s` (an empty state, as `ConversationState::clear` leaves
/// it); returns how many bytes were left. Filling the caller's state, rather than returning
/// one, saves copying a 300-byte struct through every layer of `Result`, and the lists are
/// pushed into `s`'s own vectors, so a reused state's capacity serves again.
pub(super) fn decode_contact(
    version: u8,
    body: &[u8],
    s: &mut ConversationState,
) -> Result<usize, MalformedRecord> {
    let mut r = Reader::new(body, 1);
    let bitmap = r.varint("bitmap")?;
    let known = if version == VERSION_2 {
        CONTACT_BITS_V2
    } else {
        CONTACT_BITS
    };
    if bitmap & !known != 0 {
        return Err(r.error("bitmap", RecordProblem::UnknownFields(bitmap & !known)));
    }
    let has = |bit: u64| bitmap & bit != 0;
    let base = if has(LATEST_EVENT) {
        let latest = r.time("latest_event", 0)?;
        s.latest_event = Some(latest);
        latest.unix_nanos()
    } else {
        0
    };
    // The set slot bits, lowest first: list order.
    let mut pending = bitmap & SLOT_BITS;
    while pending != 0 {
        let bit = pending & pending.wrapping_neg();
        pending &= pending - 1;
        if let Some((field, slot)) = with_contact_slots!(slot_of!(s, bit)) {
            *slot = Some(r.time(field, base)?);
        }
    }
    if has(FAILURES) {
        let n = r.count("failures", 2)?;
        let failures = &mut s.feedback.failures;
        failures.reserve(n);
        for _ in 0..n {
            let head = r.varint("failures.code")?;
            let code = u32::try_from(head >> 1)
                .map_err(|_| r.error("failures.code", RecordProblem::OutOfRange))?;
            let wamid = if head & 1 == 1 {
                Some(WamidHash::from_raw(r.hash("failures.wamid")?))
            } else {
                None
            };
            let at = r.time("failures.at", base)?;
            let entry = FailureEntry { wamid, at, code };
            if failures
                .last()
                .is_some_and(|last| !failure_order(last, &entry))
            {
                return Err(r.error("failures", RecordProblem::NotSorted));
            }
            failures.push(entry);
        }
    }
    if has(DELIVERIES) {
        let n = r.count("deliveries", 9)?;
        let deliveries = &mut s.feedback.deliveries;
        deliveries.reserve(n);
        for _ in 0..n {
            let wamid = WamidHash::from_raw(r.hash("deliveries.wamid")?);
            let at = r.time("deliveries.at", base)?;
            let entry = DeliveryEntry { wamid, at };
            if deliveries
                .last()
                .is_some_and(|last| !delivery_order(last, &entry))
            {
                return Err(r.error("deliveries", RecordProblem::NotSorted));
            }
            deliveries.push(entry);
        }
    }
    if has(ATTEMPTS) {
        let n = r.count("attempts", 10)?;
        let attempts = &mut s.attempts;
        attempts.reserve(n);
        for _ in 0..n {
            let key_hash = r.hash("attempts.key_hash")?;
            let first_at = r.time("attempts.first_at", base)?;
            let count = r.u32("attempts.count")?;
            let entry = Attempts {
                key_hash,
                first_at,
                count,
            };
            if attempts
                .last()
                .is_some_and(|last| !attempt_order(last, &entry))
            {
                return Err(r.error("attempts", RecordProblem::NotSorted));
            }
            attempts.push(entry);
        }
    }
    if has(LINK) {
        s.link = Some(read_link(&mut r, "link", base)?);
    }
    if has(MOVED_TO) {
        s.moved_to = Some(read_link(&mut r, "moved_to", base)?);
    }
    Ok(r.remaining())
}

// The order of each list: strictly increasing, so sorted and free of repeats, as the state
// machine keeps them. Format 2 writes lists in this order and its decoder refuses any other;
// `unordered_list` holds format 1 records to the same.
fn failure_order(a: &FailureEntry, b: &FailureEntry) -> bool {
    a < b
}

fn delivery_order(a: &DeliveryEntry, b: &DeliveryEntry) -> bool {
    a.wamid < b.wamid
}

fn attempt_order(a: &Attempts, b: &Attempts) -> bool {
    a.key_hash < b.key_hash
}

/// The first list of `s` that is not in its order, if any (by its field name).
pub(super) fn unordered_list(s: &ConversationState) -> Option<&'static str> {
    fn ordered<T>(items: &[T], order: fn(&T, &T) -> bool) -> bool {
        items.windows(2).all(|w| order(&w[0], &w[1]))
    }
    if !ordered(&s.feedback.failures, failure_order) {
        Some("failures")
    } else if !ordered(&s.feedback.deliveries, delivery_order) {
        Some("deliveries")
    } else if !ordered(&s.attempts, attempt_order) {
        Some("attempts")
    } else {
        None
    }
}

// Bits of the sender bitmap: one per slot, in `sender_slots` order. Version 3 adds the API
// call limit of S2 (bit 6).
const SENDER_BITS_V2: u64 = (1 << 6) - 1;
const SENDER_SLOTS: usize = 7;

fn sender_slots(s: &SenderState) -> [Option<Timestamp>; SENDER_SLOTS] {
    [
        s.restricted_at,
        s.cleared_at,
        s.throughput_at,
        s.service_at,
        s.api_update_at,
        s.spam_at,
        s.api_rate_at,
    ]
}

pub(super) fn encode_sender(s: &SenderState) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(2 + SENDER_SLOTS * 10),
    };
    w.out.push(VERSION);
    let slots = sender_slots(s);
    let bitmap = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.is_some())
        .fold(0u64, |b, (i, _)| b | (1 << i));
    let bitmap = bitmap
        | if s.account.is_some() {
            SENDER_ACCOUNT
        } else {
            0
        };
    w.varint(bitmap);
    for at in slots.into_iter().flatten() {
        w.time(at, 0);
    }
    if let Some((account, at)) = &s.account {
        w.text(account.as_str());
        w.time(*at, 0);
    }
    w.out
}

/// The sender bitmap's bit for the T4 account link (version 3): the account id as a
/// length-prefixed string, then its instant.
const SENDER_ACCOUNT: u64 = 1 << SENDER_SLOTS;

/// A portfolio record: 3 | bitmap (bit 0 limit, bit 1 buckets) | limit: varint (0 unlimited,
/// else users + 1) and instant | bucket count, then each bucket's start and users (varint).
pub(super) fn encode_portfolio(s: &PortfolioState) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(16 + 12 * s.buckets.len()),
    };
    w.out.push(VERSION);
    let bitmap = u64::from(s.limit.is_some()) | (u64::from(!s.buckets.is_empty()) << 1);
    w.varint(bitmap);
    if let Some((at, limit)) = s.limit {
        w.varint(match limit {
            MessagingLimit::Unlimited => 0,
            MessagingLimit::Users(n) => n.saturating_add(1),
        });
        w.time(at, 0);
    }
    if !s.buckets.is_empty() {
        w.varint(s.buckets.len() as u64);
        for (start, n) in &s.buckets {
            w.time(*start, 0);
            w.varint(*n);
        }
    }
    w.out
}

pub(super) fn decode_portfolio(body: &[u8]) -> Result<(PortfolioState, usize), MalformedRecord> {
    let mut r = Reader::new(body, 1);
    let bitmap = r.varint("bitmap")?;
    if bitmap & !3 != 0 {
        return Err(r.error("bitmap", RecordProblem::UnknownFields(bitmap & !3)));
    }
    let mut s = PortfolioState::default();
    if bitmap & 1 != 0 {
        let limit = match r.varint("limit")? {
            0 => MessagingLimit::Unlimited,
            n => MessagingLimit::Users(n - 1),
        };
        s.limit = Some((r.time("limit.at", 0)?, limit));
    }
    if bitmap & 2 != 0 {
        let n = r.count("buckets", 2)?;
        for _ in 0..n {
            let start = r.time("buckets.start", 0)?;
            let users = r.varint("buckets.users")?;
            if s.buckets
                .last_key_value()
                .is_some_and(|(last, _)| *last >= start)
            {
                return Err(r.error("buckets", RecordProblem::NotSorted));
            }
            s.buckets.insert(start, users);
        }
    }
    Ok((s, r.remaining()))
}

/// A template record: 3 | bitmap (bit 0 status, bit 1 category) | status kind (varint) and
/// instant | category (varint) and instant.
pub(super) fn encode_template(s: &TemplateState) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(24),
    };
    w.out.push(VERSION);
    let bitmap = u64::from(s.status.is_some()) | (u64::from(s.category.is_some()) << 1);
    w.varint(bitmap);
    if let Some((at, status)) = s.status {
        let kind = match status {
            TemplateStatus::Approved => 0,
            TemplateStatus::Paused(PauseKind::First) => 1,
            TemplateStatus::Paused(PauseKind::Second) => 2,
            TemplateStatus::Paused(PauseKind::RateLimiting) => 3,
            TemplateStatus::NotApproved => 4,
            TemplateStatus::Disabled => 5,
        };
        w.varint(kind);
        w.time(at, 0);
    }
    if let Some((at, category)) = s.category {
        let kind = match category {
            TemplateCategory::Marketing => 0,
            TemplateCategory::Utility => 1,
            TemplateCategory::Authentication => 2,
        };
        w.varint(kind);
        w.time(at, 0);
    }
    w.out
}

pub(super) fn decode_template(body: &[u8]) -> Result<(TemplateState, usize), MalformedRecord> {
    let mut r = Reader::new(body, 1);
    let bitmap = r.varint("bitmap")?;
    if bitmap & !3 != 0 {
        return Err(r.error("bitmap", RecordProblem::UnknownFields(bitmap & !3)));
    }
    let mut s = TemplateState::default();
    if bitmap & 1 != 0 {
        let status = match r.varint("status")? {
            0 => TemplateStatus::Approved,
            1 => TemplateStatus::Paused(PauseKind::First),
            2 => TemplateStatus::Paused(PauseKind::Second),
            3 => TemplateStatus::Paused(PauseKind::RateLimiting),
            4 => TemplateStatus::NotApproved,
            5 => TemplateStatus::Disabled,
            _ => return Err(r.error("status", RecordProblem::OutOfRange)),
        };
        s.status = Some((r.time("status.at", 0)?, status));
    }
    if bitmap & 2 != 0 {
        let category = match r.varint("category")? {
            0 => TemplateCategory::Marketing,
            1 => TemplateCategory::Utility,
            2 => TemplateCategory::Authentication,
            _ => return Err(r.error("category", RecordProblem::OutOfRange)),
        };
        s.category = Some((r.time("category.at", 0)?, category));
    }
    Ok((s, r.remaining()))
}

pub(super) fn decode_sender(
    version: u8,
    body: &[u8],
) -> Result<(SenderState, usize), MalformedRecord> {
    const FIELDS: [&str; SENDER_SLOTS] = [
        "restricted_at",
        "cleared_at",
        "throughput_at",
        "service_at",
        "api_update_at",
        "spam_at",
        "api_rate_at",
    ];
    let mut r = Reader::new(body, 1);
    let bitmap = r.varint("bitmap")?;
    let known = if version == VERSION_2 {
        SENDER_BITS_V2
    } else {
        SENDER_ACCOUNT | ((1 << SENDER_SLOTS) - 1)
    };
    if bitmap & !known != 0 {
        return Err(r.error("bitmap", RecordProblem::UnknownFields(bitmap & !known)));
    }
    let mut slots = [None; SENDER_SLOTS];
    for (i, slot) in slots.iter_mut().enumerate() {
        if bitmap & (1 << i) != 0 {
            *slot = Some(r.time(FIELDS[i], 0)?);
        }
    }
    let [restricted_at, cleared_at, throughput_at, service_at, api_update_at, spam_at, api_rate_at] =
        slots;
    let account = if bitmap & SENDER_ACCOUNT != 0 {
        let text = r.text("account", 32)?;
        let account =
            AccountId::parse(text).map_err(|_| r.error("account", RecordProblem::OutOfRange))?;
        Some((account, r.time("account.at", 0)?))
    } else {
        None
    };
    let s = SenderState {
        restricted_at,
        cleared_at,
        throughput_at,
        service_at,
        api_update_at,
        spam_at,
        api_rate_at,
        account,
    };
    Ok((s, r.remaining()))
}
