//! The stored form of state records, owned by the core: stores persist these bytes and never
//! look inside.
//!
//! A record is one version byte followed by the state. This build writes version 3, a compact
//! hand-written layout ([`v2`]); it still reads version 2 (the same layout without the fields of
//! rules E4's consent erasure, K5 and K6) and version 1 (postcard's varint encoding of the serde
//! form), so stores written by earlier builds open unchanged and are rewritten as version 3 on
//! their next update. A newer version byte is a typed error (upgrade waguard), never a
//! silently reset state.

mod v2;
mod wire;

use serde::de::DeserializeOwned;

use crate::error::{DecodeError, MalformedRecord};
use crate::state::{ConversationState, SenderState};

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = v2::VERSION;

/// Version 1: postcard's encoding of the serde form. Read only.
fn decode_v1<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|source| DecodeError::Corrupt {
            version: 1,
            source: Box::new(source),
        })?;
    finish(1, value, rest.len())
}

#[inline]
fn finish<T>(version: u8, value: T, extra: usize) -> Result<T, DecodeError> {
    if extra == 0 {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes { version, extra })
    }
}

/// Splits off the version byte; versions this build does not know are errors.
#[inline]
fn split_version(bytes: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(DecodeError::NewerVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok((version, body))
}

fn corrupt(version: u8, source: MalformedRecord) -> DecodeError {
    DecodeError::Corrupt {
        version,
        source: Box::new(source),
    }
}

/// The serde form of a contact record as format 1 wrote it (the fields of that time, in their
/// order: postcard is positional, so later fields must not leak into it).
#[derive(serde::Serialize, serde::Deserialize)]
struct ContactV1 {
    latest_event: Option<crate::Timestamp>,
    erased_at: Option<crate::Timestamp>,
    last_inbound: Option<crate::Timestamp>,
    referral_at: Option<crate::Timestamp>,
    first_template_at: Option<crate::Timestamp>,
    last_template_at: Option<crate::Timestamp>,
    last_delivered_at: Option<crate::Timestamp>,
    closed_mark: Option<crate::Timestamp>,
    opt_all: crate::state::OptRegister,
    opt_marketing: crate::state::OptRegister,
    feedback: crate::state::Feedback,
    pair_budget_tat: Option<crate::Timestamp>,
    attempts: Vec<crate::state::Attempts>,
}

impl From<ContactV1> for ConversationState {
    fn from(v: ContactV1) -> Self {
        ConversationState {
            latest_event: v.latest_event,
            erased_at: v.erased_at,
            last_inbound: v.last_inbound,
            referral_at: v.referral_at,
            first_template_at: v.first_template_at,
            last_template_at: v.last_template_at,
            last_delivered_at: v.last_delivered_at,
            closed_mark: v.closed_mark,
            opt_all: v.opt_all,
            opt_marketing: v.opt_marketing,
            feedback: v.feedback,
            pair_budget_tat: v.pair_budget_tat,
            attempts: v.attempts,
            ..ConversationState::default()
        }
    }
}

#[cfg(test)]
impl From<&ConversationState> for ContactV1 {
    fn from(s: &ConversationState) -> Self {
        let s = s.clone();
        ContactV1 {
            latest_event: s.latest_event,
            erased_at: s.erased_at,
            last_inbound: s.last_inbound,
            referral_at: s.referral_at,
            first_template_at: s.first_template_at,
            last_template_at: s.last_template_at,
            last_delivered_at: s.last_delivered_at,
            closed_mark: s.closed_mark,
            opt_all: s.opt_all,
            opt_marketing: s.opt_marketing,
            feedback: s.feedback,
            pair_budget_tat: s.pair_budget_tat,
            attempts: s.attempts,
        }
    }
}

/// The serde form of a sender record as format 1 wrote it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SenderV1 {
    restricted_at: Option<crate::Timestamp>,
    cleared_at: Option<crate::Timestamp>,
    throughput_at: Option<crate::Timestamp>,
    service_at: Option<crate::Timestamp>,
    api_update_at: Option<crate::Timestamp>,
    spam_at: Option<crate::Timestamp>,
}

impl From<SenderV1> for SenderState {
    fn from(v: SenderV1) -> Self {
        SenderState {
            restricted_at: v.restricted_at,
            cleared_at: v.cleared_at,
            throughput_at: v.throughput_at,
            service_at: v.service_at,
            api_update_at: v.api_update_at,
            spam_at: v.spam_at,
            ..SenderState::default()
        }
    }
}

/// A format-1 contact record whose list is out of order or has repeats: the state machine
/// never writes one, so the record is damaged.
#[derive(Debug, thiserror::Error)]
#[error("its {field} list is out of order or has repeated entries")]
struct UnorderedList {
    field: &'static str,
}

impl ConversationState {
    /// The stored form of this state (format [`FORMAT_VERSION`]). Equal states give equal bytes.
    ///
    /// ```
    /// use waguard_core::{ConversationState, Event, Policy, Timestamp};
    /// let mut s = ConversationState::default();
    /// s.apply(&Event::Inbound { at: Timestamp::from_unix_seconds(1).unwrap(), text: None, referral: false }, &Policy::default());
    /// let bytes = s.encode();
    /// assert_eq!(ConversationState::decode(&bytes).unwrap(), s);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        v2::encode_contact(self)
    }

    /// Reads a stored contact record of any format version up to [`FORMAT_VERSION`].
    ///
    /// ```
    /// use waguard_core::{ConversationState, DecodeError};
    /// assert!(matches!(ConversationState::decode(&[]), Err(DecodeError::Empty)));
    /// assert!(matches!(ConversationState::decode(&[2, 0xff]), Err(DecodeError::Corrupt { .. })));
    /// assert!(matches!(ConversationState::decode(&[200]), Err(DecodeError::NewerVersion { found: 200, .. })));
    /// ```
    // Inlined so that the state can be built in the caller's frame rather than copied out.
    #[inline]
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut state = ConversationState::default();
        state.decode_into(bytes)?;
        Ok(state)
    }

    /// Reads a stored contact record into `self`, replacing all of its contents but keeping
    /// the capacity of its lists: a caller that decodes many records into one reused state
    /// (a hot read path) allocates nothing and copies no state struct around.
    ///
    /// On `Ok`, `self` equals what [`decode`](ConversationState::decode) returns. On `Err`,
    /// `self` holds an unspecified mix of old and new fields: discard it (or decode into it
    /// again).
    ///
    /// ```
    /// use waguard_core::{ConversationState, Event, Policy, Timestamp};
    /// let mut s = ConversationState::default();
    /// s.apply(&Event::Inbound { at: Timestamp::from_unix_seconds(1).unwrap(), text: None, referral: false }, &Policy::default());
    /// let bytes = s.encode();
    /// let mut scratch = ConversationState::default();
    /// scratch.decode_into(&bytes).unwrap();
    /// assert_eq!(scratch, s);
    /// scratch.decode_into(&ConversationState::default().encode()).unwrap();
    /// assert_eq!(scratch, ConversationState::default());
    /// ```
    #[inline]
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        match split_version(bytes)? {
            (version @ (v2::VERSION | v2::VERSION_2), body) => {
                self.clear();
                let extra =
                    v2::decode_contact(version, body, self).map_err(|e| corrupt(version, e))?;
                if extra != 0 {
                    return Err(DecodeError::TrailingBytes { version, extra });
                }
                Ok(())
            }
            (version, body) => {
                let state: ConversationState = decode_v1::<ContactV1>(body)?.into();
                // Format 1 did not check its lists; format 2 requires them in order, so a
                // damaged one would decode now and make the next write unreadable.
                if let Some(field) = v2::unordered_list(&state) {
                    return Err(DecodeError::Corrupt {
                        version,
                        source: Box::new(UnorderedList { field }),
                    });
                }
                *self = state;
                Ok(())
            }
        }
    }

    /// Resets `self` to the empty state (equal to `ConversationState::default()`), keeping
    /// the allocations of its lists for reuse.
    pub fn clear(&mut self) {
        let mut failures = std::mem::take(&mut self.feedback.failures);
        let mut deliveries = std::mem::take(&mut self.feedback.deliveries);
        let mut attempts = std::mem::take(&mut self.attempts);
        failures.clear();
        deliveries.clear();
        attempts.clear();
        *self = ConversationState::default();
        self.feedback.failures = failures;
        self.feedback.deliveries = deliveries;
        self.attempts = attempts;
    }
}

impl SenderState {
    /// The stored form of this sender state (format [`FORMAT_VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        v2::encode_sender(self)
    }

    /// Reads a stored sender record of any format version up to [`FORMAT_VERSION`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match split_version(bytes)? {
            (version @ (v2::VERSION | v2::VERSION_2), body) => {
                let (state, extra) =
                    v2::decode_sender(version, body).map_err(|e| corrupt(version, e))?;
                finish(version, state, extra)
            }
            (_, body) => decode_v1::<SenderV1>(body).map(Into::into),
        }
    }
}

impl crate::TemplateState {
    /// The stored form of a template record (format [`FORMAT_VERSION`]).
    ///
    /// ```
    /// use waguard_core::*;
    /// let mut s = TemplateState::default();
    /// s.apply(&TemplateEvent::Status { at: Timestamp::from_unix_seconds(5).unwrap(), status: TemplateStatus::Disabled });
    /// assert_eq!(TemplateState::decode(&s.encode()).unwrap(), s);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        v2::encode_template(self)
    }

    /// Reads a stored template record (format 3, the first to have them).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match split_version(bytes)? {
            (v2::VERSION, body) => {
                let (state, extra) =
                    v2::decode_template(body).map_err(|e| corrupt(v2::VERSION, e))?;
                finish(v2::VERSION, state, extra)
            }
            (version, _) => Err(DecodeError::Corrupt {
                version,
                source: Box::new(NoTemplateRecords { version }),
            }),
        }
    }
}

impl crate::PortfolioState {
    /// The stored form of a portfolio record (format [`FORMAT_VERSION`]).
    ///
    /// ```
    /// use waguard_core::*;
    /// let mut s = PortfolioState::default();
    /// s.set_limit(MessagingLimit::Users(250), Timestamp::from_unix_seconds(5).unwrap());
    /// s.count(Timestamp::from_unix_seconds(7).unwrap(), &Policy::default());
    /// assert_eq!(PortfolioState::decode(&s.encode()).unwrap(), s);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        v2::encode_portfolio(self)
    }

    /// Reads a stored portfolio record (format 3, the first to have them).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match split_version(bytes)? {
            (v2::VERSION, body) => {
                let (state, extra) =
                    v2::decode_portfolio(body).map_err(|e| corrupt(v2::VERSION, e))?;
                finish(v2::VERSION, state, extra)
            }
            (version, _) => Err(DecodeError::Corrupt {
                version,
                source: Box::new(NoTemplateRecords { version }),
            }),
        }
    }
}

/// A template record under a format version older than the first to have them.
#[derive(Debug, thiserror::Error)]
#[error("format {version} has no registry records (templates, portfolios)")]
struct NoTemplateRecords {
    version: u8,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Attempts, DeliveryEntry, FailureEntry};
    use crate::{Timestamp, WamidHash};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_772_323_200 + s).unwrap()
    }

    fn busy() -> ConversationState {
        let mut s = ConversationState {
            latest_event: Some(t(0)),
            last_inbound: Some(t(-60)),
            first_template_at: Some(t(-86_400)),
            last_template_at: Some(Timestamp::from_unix_nanos(t(-3600).unix_nanos() + 17)),
            erased_at: Some(t(-90_000)),
            pair_budget_tat: Some(t(30)),
            attempts: vec![Attempts {
                key_hash: 3,
                first_at: t(-2),
                count: u32::MAX,
            }],
            ..ConversationState::default()
        };
        // Every optional instant set, each to its own value, so that writing and reading the
        // slots in different orders cannot round-trip.
        s.referral_at = Some(t(-61));
        s.last_delivered_at = Some(t(-62));
        s.closed_mark = Some(t(-63));
        s.opt_all.out_at = Some(t(-64));
        s.opt_all.in_at = Some(t(-65));
        s.opt_marketing.out_at = Some(t(-66));
        s.opt_marketing.in_at = Some(t(-5));
        s.feedback.failures = vec![
            FailureEntry {
                wamid: None,
                at: t(-10),
                code: 131026,
            },
            FailureEntry {
                wamid: Some(WamidHash::from_raw(7)),
                at: t(-9),
                code: 131050,
            },
        ];
        s.feedback.deliveries = vec![DeliveryEntry {
            wamid: WamidHash::from_raw(u64::MAX),
            at: t(-1),
        }];
        s
    }

    #[test]
    fn every_field_round_trips() {
        let s = busy();
        let bytes = s.encode();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(ConversationState::decode(&bytes).unwrap(), s);
        assert_eq!(
            ConversationState::decode(&ConversationState::default().encode()).unwrap(),
            ConversationState::default()
        );
        let sender = SenderState {
            restricted_at: Some(t(1)),
            spam_at: Some(Timestamp::MIN),
            ..SenderState::default()
        };
        assert_eq!(SenderState::decode(&sender.encode()).unwrap(), sender);
    }

    #[test]
    fn decode_into_reuses_the_lists_of_the_state() {
        let busy = busy();
        let bytes = busy.encode();
        let mut scratch = ConversationState::default();
        scratch.decode_into(&bytes).unwrap();
        let lists = |s: &ConversationState| {
            (
                s.feedback.failures.as_ptr(),
                s.feedback.deliveries.as_ptr(),
                s.attempts.as_ptr(),
            )
        };
        let before = lists(&scratch);
        // The same lists again, then none, then the same again: no list is reallocated.
        scratch.decode_into(&bytes).unwrap();
        assert_eq!(lists(&scratch), before);
        scratch
            .decode_into(&ConversationState::default().encode())
            .unwrap();
        assert_eq!(scratch, ConversationState::default());
        scratch.decode_into(&bytes).unwrap();
        assert_eq!(lists(&scratch), before);
        assert_eq!(scratch, busy);
    }

    #[test]
    fn version_1_still_reads() {
        let s = busy();
        let mut v1 = vec![1];
        v1.extend(postcard::to_allocvec(&ContactV1::from(&s)).unwrap());
        assert_eq!(ConversationState::decode(&v1).unwrap(), s);
        let sender = SenderState {
            cleared_at: Some(t(5)),
            ..SenderState::default()
        };
        let mut v1 = vec![1];
        v1.extend(
            postcard::to_allocvec(&SenderV1 {
                restricted_at: None,
                cleared_at: sender.cleared_at,
                throughput_at: None,
                service_at: None,
                api_update_at: None,
                spam_at: None,
            })
            .unwrap(),
        );
        assert_eq!(SenderState::decode(&v1).unwrap(), sender);
    }

    /// Found by the `record_decode` fuzz target: format 1 did not check list order, and a
    /// damaged format-1 record with unordered lists decoded into a state whose format-2
    /// encoding its own decoder refuses, so the next write would have made the contact
    /// unreadable. Such a record is now refused when read.
    #[test]
    fn a_version_1_record_with_unordered_lists_is_refused() {
        let v1 = |s: &ConversationState| {
            let mut bytes = vec![1];
            bytes.extend(postcard::to_allocvec(&ContactV1::from(s)).unwrap());
            bytes
        };
        let mut s = busy();
        s.feedback.failures.reverse();
        let e = ConversationState::decode(&v1(&s)).unwrap_err();
        assert!(
            matches!(e, DecodeError::Corrupt { version: 1, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("failures list is out of order"),
            "{e}"
        );
        let mut s = busy();
        let repeated = s.feedback.deliveries[0];
        s.feedback.deliveries.push(repeated);
        let e = ConversationState::decode(&v1(&s)).unwrap_err();
        assert!(e.to_string().contains("deliveries"), "{e}");
        let mut s = busy();
        let repeated = s.attempts[0];
        s.attempts.push(repeated);
        let e = ConversationState::decode(&v1(&s)).unwrap_err();
        assert!(e.to_string().contains("attempts"), "{e}");
        // In order, a format-1 record still reads, and its format-2 form reads back.
        let s = busy();
        let decoded = ConversationState::decode(&v1(&s)).unwrap();
        assert_eq!(ConversationState::decode(&decoded.encode()).unwrap(), s);
    }

    /// Format 2 is format 3 without the bits of the consent erasure, the link and the move:
    /// a record written by the previous build reads unchanged, and those bits are refused under
    /// version 2 (such a record would be damaged).
    #[test]
    fn version_2_still_reads_and_version_3_fields_round_trip() {
        let s = busy();
        let mut v2 = s.encode();
        v2[0] = 2;
        assert_eq!(ConversationState::decode(&v2).unwrap(), s);

        let mut linked = busy();
        linked.consent_erased_at = Some(t(-10));
        linked.set_link(crate::PhoneNumber::parse("447700900777").unwrap(), t(-5));
        linked.set_moved_to(crate::PhoneNumber::parse("447700900778").unwrap(), t(-4));
        let bytes = linked.encode();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(ConversationState::decode(&bytes).unwrap(), linked);
        let mut as_v2 = bytes.clone();
        as_v2[0] = 2;
        assert!(matches!(
            ConversationState::decode(&as_v2),
            Err(DecodeError::Corrupt { version: 2, .. })
        ));
    }

    #[test]
    fn every_truncation_and_extension_is_a_typed_error() {
        let bytes = busy().encode();
        for len in 0..bytes.len() {
            assert!(
                ConversationState::decode(&bytes[..len]).is_err(),
                "a record cut at {len} bytes must not decode"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            ConversationState::decode(&longer),
            Err(DecodeError::TrailingBytes {
                version: FORMAT_VERSION,
                extra: 1
            })
        ));
    }

    #[test]
    fn unsorted_lists_and_unknown_fields_are_refused() {
        let mut s = busy();
        s.feedback.deliveries.push(DeliveryEntry {
            wamid: WamidHash::from_raw(1),
            at: t(-1),
        });
        let e = ConversationState::decode(&s.encode()).unwrap_err();
        assert!(e.to_string().contains("deliveries"), "{e}");
        let e = ConversationState::decode(&[2, 0x80, 0x80, 0x04]).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
        let e = SenderState::decode(&[2, 0x40]).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }
}
