//! Writes the generated part of the fuzz seed corpora (`fuzz/corpus/<target>/seed-*`): real
//! encoded contact and sender records for `record_decode`, signature triples for
//! `signature_verify`, phone spellings and keys for `contact_parse`, every line of the scenario
//! files and the quick start for `replay_line`, and pseudo-random structured seeds for
//! `core_sequence` and `journal_replay`. Run once after changing a generator (the output is deterministic):
//!
//! ```text
//! cargo run -p waguard-tests --example fuzz_seeds
//! ```

use std::path::{Path, PathBuf};

use waguard::{
    ConversationState, DeliveryStatus, Event, Outgoing, Policy, Preference, Scope, SenderEvent,
    SenderState, TemplateCategory, Timestamp, WamidHash,
};
use waguard_test_support::fuzz;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(format!("seed-{name}")), bytes).expect("write seed");
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + s).expect("in range")
}

fn main() {
    let policy = Policy::default();

    // record_decode: real records.
    let mut state = ConversationState::default();
    // Named by format version, so a new format adds seeds and keeps the old ones.
    let record = |name: &str, bytes: &[u8]| {
        write(
            "record_decode",
            &format!("v{}-{name}", waguard::FORMAT_VERSION),
            bytes,
        )
    };
    record("contact-empty", &state.encode());
    state.apply(
        &Event::Inbound {
            at: t(0),
            text: Some("hi".into()),
            referral: true,
        },
        &policy,
    );
    record("contact-inbound", &state.encode());
    for event in [
        Event::TemplateSent { at: t(10) },
        Event::Failure {
            at: t(20),
            code: 131047,
            wamid: Some(WamidHash::of("wamid.a")),
        },
        Event::Status {
            at: t(30),
            status: DeliveryStatus::Delivered,
            wamid: Some(WamidHash::of("wamid.b")),
        },
        Event::Failure {
            at: t(40),
            code: 131026,
            wamid: Some(WamidHash::of("wamid.b")),
        },
        Event::MarketingPreference {
            at: t(50),
            value: Preference::Stop,
        },
        Event::OptOut {
            at: t(60),
            scope: Scope::All,
        },
        Event::OptIn {
            at: t(70),
            scope: Scope::Marketing,
        },
    ] {
        state.apply(&event, &policy);
    }
    let key = "100000001/p:33612345678".parse().expect("key");
    let sender = SenderState::default();
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    for i in 0..3 {
        waguard::reserve(
            &key,
            &mut state,
            &sender,
            tpl,
            Some("order-1"),
            t(80 + i),
            &policy,
        );
    }
    record("contact-full", &state.encode());
    let mut erased = state.clone();
    erased.erase(t(100), false, &policy);
    record("contact-tombstone", &erased.encode());
    let mut newer = state.encode();
    newer[0] = waguard::FORMAT_VERSION + 1;
    record("contact-newer-version", &newer);
    let mut sender = SenderState::default();
    record("sender-empty", &sender.encode());
    for e in [
        SenderEvent::Failure {
            at: t(5),
            code: 368,
        },
        SenderEvent::Failure {
            at: t(6),
            code: 130429,
        },
        SenderEvent::Failure { at: t(7), code: 2 },
        SenderEvent::Failure {
            at: t(8),
            code: 131048,
        },
        SenderEvent::Clear { at: t(9) },
    ] {
        sender.apply(&e);
    }
    record("sender-full", &sender.encode());

    // signature_verify: (secret, header, body) triples.
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let good = waguard_webhook::sign(body, b"app-secret");
    write(
        "signature_verify",
        "good",
        &fuzz::join_signature_input(b"app-secret", good.as_bytes(), body),
    );
    write(
        "signature_verify",
        "upper",
        &fuzz::join_signature_input(b"app-secret", good.to_ascii_uppercase().as_bytes(), body),
    );
    write(
        "signature_verify",
        "wrong",
        &fuzz::join_signature_input(b"app-secret", b"sha256=0000", body),
    );
    write(
        "signature_verify",
        "no-prefix",
        &fuzz::join_signature_input(b"k", &good.as_bytes()[7..], b""),
    );
    write(
        "signature_verify",
        "empty-secret",
        &fuzz::join_signature_input(b"", good.as_bytes(), body),
    );
    write(
        "signature_verify",
        "whitespace",
        &fuzz::join_signature_input(b"app-secret", format!("  {good}\r\n").as_bytes(), body),
    );

    // contact_parse: phone spellings, ids and keys.
    for (name, text) in [
        ("phone-fr", "+33 (6) 12-34.56.78"),
        ("phone-mx-alias", "5215512345678"),
        ("phone-mx", "525512345678"),
        ("phone-br-old", "551187654321"),
        ("phone-br", "5511987654321"),
        ("phone-us", "+1 202 555 0123"),
        ("phone-ca", "+1 416 555 0123"),
        ("phone-00", "0033612345678"),
        ("phone-repeated", "7777777"),
        ("phone-short", "123456"),
        ("phone-long", "1234567890123456"),
        ("bsuid", "US.13491208655302741918"),
        ("bsuid-parent", "US.ENT.13491208655302741918"),
        ("bsuid-ent-empty", "US.ENT."),
        ("group", "120363042@g.us"),
        ("business", "100000001"),
        ("key-phone", "100000001/p:+33 6 12 34 56 78"),
        ("key-user", "100000001/u:BR.ENT.9"),
        ("key-group", "100000001/g:a/b:c"),
        ("key-bad-tag", "1/x:2"),
        ("lines", "+52 1 55 1234 5678\nUS.1\n1/p:5511987654321\n"),
    ] {
        write("contact_parse", name, text.as_bytes());
    }

    // replay_line: every line of the scenarios and of the quick start, one file each, plus a
    // whole scenario file per target input.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join("tests/scenarios"))
        .expect("scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".ndjson") && !name.ends_with(".expected.ndjson")
        })
        .collect();
    sources.sort();
    sources.push(root.join("examples/quickstart.ndjson"));
    for source in &sources {
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(source).expect("read scenario");
        write("replay_line", &format!("{stem}-all"), text.as_bytes());
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            write("replay_line", &format!("{stem}-{i:03}"), line.as_bytes());
        }
    }

    // core_sequence: pseudo-random structured seeds of several lengths.
    for seed in 0..32u64 {
        let len = 32 + (seed as usize * 53) % 600;
        write(
            "core_sequence",
            &format!("{seed:02}"),
            &fuzz::seed_bytes(seed, len),
        );
    }
    // journal_replay: pseudo-random plans, the first ones of each outcome (refused, nothing
    // to replay, records replayed), so that the seeds cover all three.
    let mut wanted = [("refused", 4), ("empty", 4), ("replayed", 8)];
    for seed in 0..10_000u64 {
        let len = 32 + (seed as usize * 53) % 700;
        let data = fuzz::seed_bytes(1_000_000 + seed, len);
        let outcome = match fuzz::journal_outcome(&data) {
            fuzz::JournalOutcome::Skipped => continue,
            fuzz::JournalOutcome::Refused | fuzz::JournalOutcome::Damaged => 0,
            fuzz::JournalOutcome::Replayed(0) => 1,
            fuzz::JournalOutcome::Replayed(_) => 2,
        };
        let (name, left) = &mut wanted[outcome];
        if *left > 0 {
            *left -= 1;
            write("journal_replay", &format!("{name}-{seed:04}"), &data);
        }
        if wanted.iter().all(|(_, left)| *left == 0) {
            break;
        }
    }
    println!("seeds written under fuzz/corpus/");
}
