//! The generated workload: contacts with a realistic mix of inbound and outbound messages,
//! statuses with failures, and preference changes, as one message log per contact. The same
//! log feeds waguard (as events) and the message-log baseline (as rows), so both answer from
//! the same facts.

use waguard::{
    BusinessId, ContactId, ContactKey, DeliveryStatus, Event, KeyedEvent, PhoneNumber, Preference,
    Scope, Timestamp, WamidHash,
};

/// The business number every generated contact talks to.
pub const BUSINESS: &str = "100000001";
/// Messages per contact in the log (design: 20).
pub const MESSAGES_PER_CONTACT: usize = 20;

/// One row of the message log.
#[derive(Clone, Debug)]
pub struct Message {
    /// Inbound (from the contact) or outbound.
    pub inbound: bool,
    /// Outbound: a template (otherwise free-form).
    pub template: bool,
    /// Outbound: Meta's error code when the message failed.
    pub error_code: Option<u32>,
    /// When it happened.
    pub at: Timestamp,
    /// Its id.
    pub wamid: String,
}

/// One contact and its history.
#[derive(Clone, Debug)]
pub struct Contact {
    /// The key.
    pub key: ContactKey,
    /// The message log, oldest first.
    pub messages: Vec<Message>,
    /// Marketing preference `stop` at this instant, if any.
    pub marketing_stop: Option<Timestamp>,
    /// Full opt-out at this instant, if any.
    pub opted_out: Option<Timestamp>,
}

/// A small deterministic generator (splitmix64), so runs are reproducible.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The instant the workload is "now": decisions are asked at this time.
pub fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200).expect("2026-03-01 is in range")
}

/// Generates `n` contacts. Histories span the 72 hours before [`now`], so about a third of the
/// windows are open.
pub fn contacts(n: usize, seed: u64) -> Vec<Contact> {
    let mut rng = Rng::new(seed);
    let business = BusinessId::parse(BUSINESS).expect("valid");
    let start = now().unix_nanos() - 72 * 3600 * 1_000_000_000;
    (0..n)
        .map(|i| {
            let phone = PhoneNumber::parse(&format!("33{}", 600_000_000 + i as u64))
                .expect("generated numbers are valid");
            let key = ContactKey::new(business.clone(), ContactId::Phone(phone));
            let mut times: Vec<i64> = (0..MESSAGES_PER_CONTACT)
                .map(|_| start + (rng.below(72 * 3600) as i64) * 1_000_000_000)
                .collect();
            times.sort_unstable();
            let messages = times
                .into_iter()
                .enumerate()
                .map(|(j, t)| {
                    let inbound = rng.chance(0.45);
                    let template = !inbound && rng.chance(0.3);
                    let error_code = if inbound {
                        None
                    } else if rng.chance(0.02) {
                        Some(131026)
                    } else if rng.chance(0.02) {
                        Some(131047)
                    } else {
                        None
                    };
                    Message {
                        inbound,
                        template,
                        error_code,
                        at: Timestamp::from_unix_nanos(t),
                        wamid: format!("wamid.bench.{i}.{j}"),
                    }
                })
                .collect();
            let pref_at =
                Timestamp::from_unix_nanos(start + rng.below(72 * 3600) as i64 * 1_000_000_000);
            Contact {
                key,
                messages,
                marketing_stop: rng.chance(0.03).then_some(pref_at),
                opted_out: rng.chance(0.01).then_some(pref_at),
            }
        })
        .collect()
}

/// The events a service would have fed waguard for one contact's history: inbound messages,
/// `sent` statuses (with a template pricing category for templates), `delivered` statuses for
/// messages that did not fail, failures, preferences and opt-outs.
pub fn events(contact: &Contact) -> Vec<KeyedEvent> {
    let mut out = Vec::with_capacity(contact.messages.len() * 2 + 2);
    let key = &contact.key;
    let push = |out: &mut Vec<KeyedEvent>, event| {
        out.push(KeyedEvent::Contact {
            key: key.clone(),
            event,
        })
    };
    for m in &contact.messages {
        let wamid = Some(WamidHash::of(&m.wamid));
        if m.inbound {
            push(
                &mut out,
                Event::Inbound {
                    at: m.at,
                    text: Some("hello".into()),
                    referral: false,
                },
            );
            continue;
        }
        if m.template {
            push(&mut out, Event::TemplateSent { at: m.at });
        }
        match m.error_code {
            Some(code) => push(
                &mut out,
                Event::Failure {
                    at: m.at,
                    code,
                    wamid,
                },
            ),
            None => push(
                &mut out,
                Event::Status {
                    at: m.at,
                    status: DeliveryStatus::Delivered,
                    wamid,
                },
            ),
        }
    }
    if let Some(at) = contact.marketing_stop {
        push(
            &mut out,
            Event::MarketingPreference {
                at,
                value: Preference::Stop,
            },
        );
    }
    if let Some(at) = contact.opted_out {
        push(
            &mut out,
            Event::OptOut {
                at,
                scope: Scope::All,
            },
        );
    }
    out
}

/// A typical inbound text-message webhook body (about 0.9 KB), for the parse figure.
pub fn typical_webhook() -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{BUSINESS}"}},"contacts":[{{"profile":{{"name":"Sheena Nelson"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{{"body":"Does it come in another color? I would like the blue one if you have it in stock, and please tell me when it could be delivered to Paris."}}}}]}},"field":"messages"}}]}}]}}"#
    )
}
