//! Target `record_decode`.

use std::time::Duration;

use waguard::{
    decide, reserve, BlockReason, ContactKey, ConversationState, Decision, Event, Outgoing, Policy,
    SenderState, Subject, Timestamp,
};

use super::{check_permits, OUTGOING};

// ---------------------------------------------------------------------------------------------
// record_decode

/// Target `record_decode`: the input as a stored contact record ([`ConversationState::decode`])
/// and as a stored sender record ([`SenderState::decode`]).
///
/// Both stores persist exactly these bytes (sled as the value under the contact key,
/// PostgreSQL in a `bytea` column) and never look inside, so this one target covers the
/// record encoding of both backends.
///
/// Checks: decoding never panics and its error has a message; a decoded record re-encodes to
/// bytes that decode to an equal state (encode/decode round trip); and a decoded record,
/// however odd its contents, can be used: `decide` and `reserve` at several instants (the
/// extremes included), applying an event and merging never panic, and decisions keep their
/// invariants ([`check_permits`]).
pub fn record_decode(data: &[u8]) {
    let policy = Policy::default();
    let key: ContactKey = "100000001/p:33612345678".parse().expect("valid key");
    let us: ContactKey = "100000001/p:12025550123".parse().expect("valid key");
    match ConversationState::decode(data) {
        Ok(state) => {
            let bytes = state.encode();
            let again = ConversationState::decode(&bytes)
                .unwrap_or_else(|e| panic!("a re-encoded record decodes: {e}"));
            assert_eq!(again, state, "contact record round trip");
            assert_eq!(again.encode(), bytes, "encoding is deterministic");
            let sender = SenderState::default();
            for now in instants_around(&state) {
                for outgoing in OUTGOING {
                    for k in [&key, &us] {
                        let d = decide(
                            Subject {
                                key: k,
                                state: &state,
                                sender: &sender,
                            },
                            outgoing,
                            now,
                            &policy,
                        );
                        check_permits(&d, outgoing);
                    }
                    let mut s = state.clone();
                    let d = reserve(&key, &mut s, &sender, outgoing, Some("idem"), now, &policy);
                    check_permits(&d, outgoing);
                }
                let mut s = state.clone();
                s.apply(
                    &Event::Inbound {
                        at: now,
                        text: Some("STOP".into()),
                        referral: false,
                    },
                    &policy,
                );
                s.merge(&state, &policy);
                let _ = s.encode();
            }
            let mut merged = ConversationState::default();
            merged.merge(&state, &policy);
            let _ = merged.erase(Timestamp::from_unix_nanos(0), false, &policy);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match SenderState::decode(data) {
        Ok(sender) => {
            let bytes = sender.encode();
            let again = SenderState::decode(&bytes)
                .unwrap_or_else(|e| panic!("a re-encoded sender record decodes: {e}"));
            assert_eq!(again, sender, "sender record round trip");
            let state = ConversationState::default();
            let times = [
                sender.restricted_at,
                sender.cleared_at,
                sender.throughput_at,
                sender.service_at,
                sender.api_update_at,
                sender.spam_at,
            ];
            let mut nows = vec![
                Timestamp::MIN,
                Timestamp::MAX,
                Timestamp::from_unix_nanos(0),
            ];
            nows.extend(times.iter().flatten().copied());
            for now in nows {
                let d = decide(
                    Subject {
                        key: &key,
                        state: &state,
                        sender: &sender,
                    },
                    Outgoing::FreeForm,
                    now,
                    &policy,
                );
                check_permits(&d, Outgoing::FreeForm);
                if sender.is_restricted() {
                    assert_eq!(
                        d,
                        Decision::Blocked {
                            reason: BlockReason::SenderRestricted,
                            until: None
                        },
                        "S1 comes first"
                    );
                }
            }
            let mut s = sender.clone();
            s.merge(&SenderState::default());
            assert_eq!(s, sender, "merging the empty state changes nothing");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The extremes, the epoch and every instant a state holds, give or take a second.
fn instants_around(state: &ConversationState) -> Vec<Timestamp> {
    let mut out = vec![
        Timestamp::MIN,
        Timestamp::MAX,
        Timestamp::from_unix_nanos(0),
    ];
    let held = [
        state.latest_event,
        state.erased_at,
        state.last_inbound,
        state.last_template_at,
        state.closed_mark,
        state.pair_budget_tat,
    ];
    for t in held.into_iter().flatten() {
        out.push(t);
        out.push(t.saturating_add(Duration::from_secs(1)));
    }
    out.truncate(12);
    out
}
