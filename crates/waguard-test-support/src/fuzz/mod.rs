//! The bodies of the cargo-fuzz targets of `fuzz/fuzz_targets/`, one function per
//! target. Each checks invariants that must hold whatever the input, not just "no panic".
//!
//! The targets are one-liners calling these functions, and the stable test
//! `tests/fuzz_corpus.rs` of this crate replays every committed corpus file
//! (`fuzz/corpus/<target>/`) through them, so the targets build and run even where no nightly
//! toolchain exists, and every finding, once added to its corpus, stays a regression test.
//!
//! | target | function | input |
//! |---|---|---|
//! | `replay_line` | [`replay_line`] | NDJSON replay lines, applied to a guard over a `MemoryStore` |
//! | `contact_parse` | [`contact_parse`] | phone, BSUID, group, business ids and contact keys (K1-K4) |
//! | `record_decode` | [`record_decode`] | stored contact and sender records (the sled and PostgreSQL bytes) |
//! | `signature_verify` | [`signature_verify`] | secret, header and body of an `X-Hub-Signature-256` check (H2) |
//! | `webhook_limits` | [`webhook_limits`] | webhook bodies under tight size, depth and item limits |
//! | `webhook_parse` | [`webhook_parse`] | webhook bodies, signed and unsigned, and verify queries (H1-H3) |
//! | `core_sequence` | [`core_sequence`] | a structured run: policy, key, events, instants (E1, section 7, D3) |
//! | `journal_replay` | [`journal_replay`] | a sled store's write-ahead journal, as a crash leaves it |

use futures::executor::block_on;
use waguard::{Decision, Guard, MemoryStore, Outgoing, Policy, TemplateCategory, Timestamp};
use waguard_cli::replay::{self, Line, Timed};
use waguard_webhook::Limits;

mod core;
mod journal;
mod keys;
mod records;
mod webhook;

pub use self::core::{check_run, core_sequence, seed_bytes, Run, KEYS};
pub use journal::{
    journal_outcome, journal_replay, JournalOutcome, Plan, PlannedOp, PlannedRecord, SmallKey,
};
pub use keys::contact_parse;
pub use records::record_decode;
pub use webhook::{
    join_signature_input, reference_depth, signature_verify, split_signature_input, webhook_limits,
    webhook_parse,
};

/// The app secret `webhook_raw` replay lines are verified with.
pub const REPLAY_SECRET: &[u8] = b"fuzz-app-secret";

/// Every outgoing message kind.
pub const OUTGOING: [Outgoing; 4] = [
    Outgoing::FreeForm,
    Outgoing::Template(TemplateCategory::Marketing),
    Outgoing::Template(TemplateCategory::Utility),
    Outgoing::Template(TemplateCategory::Authentication),
];

/// Checks that `decision.permits(outgoing)` agrees with the decision's kind (rules.md
/// section 0): `free_form` permits everything, `template_required` only templates, `blocked`
/// nothing; and that the kind, reason and `until` accessors agree with the variant.
pub fn check_permits(decision: &Decision, outgoing: Outgoing) {
    let want = match decision {
        Decision::FreeForm { .. } => true,
        Decision::TemplateRequired { .. } => outgoing.is_template(),
        Decision::Blocked { .. } => false,
        other => panic!("a decision this check does not know: {other:?}"),
    };
    assert_eq!(
        decision.permits(outgoing),
        want,
        "{decision:?} for {outgoing:?}"
    );
    match decision {
        Decision::FreeForm { closes_at } => {
            assert_eq!(decision.kind(), "free_form");
            assert_eq!(decision.reason(), None);
            assert_eq!(decision.until(), Some(*closes_at));
        }
        Decision::TemplateRequired { .. } => {
            assert_eq!(decision.kind(), "template_required");
            assert!(decision.reason().is_some());
            assert_eq!(
                decision.until(),
                None,
                "template_required has no until (W3)"
            );
        }
        Decision::Blocked { until, .. } => {
            assert_eq!(decision.kind(), "blocked");
            assert!(decision.reason().is_some());
            assert_eq!(decision.until(), *until);
        }
        other => panic!("a decision this check does not know: {other:?}"),
    }
    if let Some(reason) = decision.reason() {
        assert!(!reason.as_str().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// replay_line

/// Target `replay_line`: every line of `data` (UTF-8 only; split on `\n`) through
/// [`waguard_cli::replay::parse`]; every valid line is applied, in order, to one [`Guard`] over
/// a [`MemoryStore`] with the default policy, the way `waguard replay` applies it.
///
/// Checks: nothing panics; an invalid line gives a non-empty message; a `check` decision's
/// `permits` agrees with its kind and a second `check` gives the same answer (read-only); a
/// `reserve` without an idempotency key answers exactly what a `check` just before it answered
/// (the reservation only adds bookkeeping), and its `permits` agrees with its kind.
pub fn replay_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guard =
        Guard::new(MemoryStore::new(), Policy::default()).expect("the default policy is valid");
    for line in text.split('\n') {
        match replay::parse(line) {
            Ok(timed) => block_on(apply_line(&guard, timed)),
            Err(message) => assert!(!message.is_empty(), "an empty error message for {line:?}"),
        }
    }
}

async fn apply_line(guard: &Guard<MemoryStore>, Timed { at, line }: Timed<'_>) {
    match line {
        Line::Check {
            key,
            outgoing,
            template,
        } => {
            let t = template.as_ref();
            let Ok(d) = guard.check_named(&key, outgoing, t, at).await else {
                return;
            };
            check_permits(&d, outgoing);
            let again = guard
                .check_named(&key, outgoing, t, at)
                .await
                .expect("read twice");
            assert_eq!(d, again, "check is read-only");
        }
        Line::Reserve {
            key,
            outgoing,
            idempotency_key,
            template,
        } => {
            let t = template.as_ref();
            let before = guard.check_named(&key, outgoing, t, at).await;
            let Ok(d) = guard
                .reserve_named(&key, outgoing, t, idempotency_key.as_deref(), at)
                .await
            else {
                return;
            };
            check_permits(&d, outgoing);
            if idempotency_key.is_none() {
                assert_eq!(
                    before.ok(),
                    Some(d),
                    "reserve without a key answers as check"
                );
            }
        }
        Line::SendError {
            key,
            code,
            wamid,
            template,
        } => {
            let _ = guard
                .record_send_error_named(&key, code, wamid.as_deref(), template.as_ref(), at)
                .await;
        }
        Line::OptOut { key, scope } => {
            let _ = guard.opt_out(&key, scope, at).await;
        }
        Line::OptIn { key, scope } => {
            let _ = guard.opt_in(&key, scope, at).await;
        }
        Line::Forget {
            key,
            include_opt_out,
        } => {
            let _ = if include_opt_out {
                guard.forget_including_opt_out(&key, at).await
            } else {
                guard.forget(&key, at).await
            };
        }
        Line::ClearSender { business } => {
            let _ = guard.clear_sender(&business, at).await;
        }
        Line::Webhook { body } => ingest_body(guard, body.as_bytes(), at).await,
        Line::WebhookRaw { body, signature } => {
            let verified = waguard_webhook::verify_signature(
                body.as_bytes(),
                signature.as_deref(),
                REPLAY_SECRET,
            );
            if verified.is_ok() {
                ingest_body(guard, body.as_bytes(), at).await;
            }
        }
        _ => {}
    }
}

async fn ingest_body(guard: &Guard<MemoryStore>, body: &[u8], at: Timestamp) {
    if let Ok(parsed) = waguard_webhook::parse(body, at, &Limits::default()) {
        let _ = guard.ingest(parsed.events).await;
    }
}
