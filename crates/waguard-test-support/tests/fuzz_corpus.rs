//! Replays every file of every committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! target's body (`waguard_test_support::fuzz`), so the cargo-fuzz targets build and run under stable, and every finding
//! added to a corpus stays a regression test. See `docs/reliability.md`.

use std::path::{Path, PathBuf};

use waguard_test_support::fuzz;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `body` on every file of `fuzz/corpus/<target>/`, naming the file if it panics.
fn replay(target: &str, min: usize, body: fn(&[u8])) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "{}: expected at least {min} corpus files, found {}",
        dir.display(),
        files.len()
    );
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{} fails: {}",
                path.display(),
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(panic)")
            )));
        }
    }
}

#[test]
fn every_target_has_a_corpus() {
    let targets =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets"))
            .expect("fuzz/fuzz_targets")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
    assert!(targets.len() >= 7, "{targets:?}");
    for target in targets {
        let dir = corpus(&target);
        let n = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .count();
        assert!(n > 0, "{} is empty", dir.display());
    }
}

#[test]
fn replay_line_corpus() {
    replay("replay_line", 10, fuzz::replay_line);
}

#[test]
fn contact_parse_corpus() {
    replay("contact_parse", 10, fuzz::contact_parse);
}

#[test]
fn record_decode_corpus() {
    replay("record_decode", 5, fuzz::record_decode);
}

#[test]
fn signature_verify_corpus() {
    replay("signature_verify", 5, fuzz::signature_verify);
}

#[test]
fn core_sequence_corpus() {
    replay("core_sequence", 10, fuzz::core_sequence);
}

#[test]
fn journal_replay_corpus() {
    replay("journal_replay", 10, fuzz::journal_replay);
}

#[test]
fn webhook_limits_corpus() {
    replay("webhook_limits", 20, fuzz::webhook_limits);
}

#[test]
fn webhook_parse_corpus() {
    replay("webhook_parse", 20, fuzz::webhook_parse);
}

#[test]
fn bodies_survive_edge_inputs() {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\0",
        b"\xff\xfe\xfd",
        b"\n\n\n",
        &[0xff; 64],
        &[0x00; 300],
        b"{\"at\":\"2262-04-11T23:47:16Z\",\"check\":{\"from\":\"1\",\"to\":\"33612345678\",\"message\":\"free_form\"}}",
        b"{\"at\":\"1677-09-21T00:12:44Z\",\"reserve\":{\"from\":\"1\",\"to\":\"33612345678\",\"message\":\"template\",\"category\":\"marketing\"}}",
    ];
    for data in inputs {
        fuzz::replay_line(data);
        fuzz::contact_parse(data);
        fuzz::record_decode(data);
        fuzz::signature_verify(data);
        fuzz::core_sequence(data);
        fuzz::webhook_limits(data);
        fuzz::journal_replay(data);
    }
}

#[test]
fn webhook_parse_survives_edge_inputs() {
    for data in [
        &b""[..],
        b"\0",
        b"{}",
        b"[",
        b"\xff\xfe",
        b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"1\"},\"statuses\":[{\"status\":\"failed\",\"timestamp\":\"99999999999999999999\",\"recipient_id\":\"16505551234\",\"errors\":[{\"code\":4294967296}]}]}}]}]}",
        b"hub.mode=subscribe&hub.verify_token=fuzz-token&hub.challenge=1",
    ] {
        fuzz::webhook_parse(data);
    }
}

#[test]
fn signature_inputs_split_and_join() {
    let data = fuzz::join_signature_input(b"secret", b"sha256=00", b"{}");
    assert_eq!(
        fuzz::split_signature_input(&data),
        (&b"secret"[..], &b"sha256=00"[..], &b"{}"[..])
    );
}

#[test]
fn random_structured_runs_hold() {
    // A cheap stand-in for the fuzzer under stable: many pseudo-random structured runs.
    for seed in 0..2_000 {
        let len = 64 + (seed as usize * 37) % 900;
        fuzz::core_sequence(&fuzz::seed_bytes(seed, len));
    }
}

#[test]
fn random_journals_replay_as_written() {
    // Under stable, pseudo-random plans beyond the corpus: each opens a sled store twice.
    let (mut refused, mut damaged, mut empty, mut replayed) = (0, 0, 0, 0);
    for seed in 0..300 {
        let len = 32 + (seed as usize * 53) % 700;
        let data = fuzz::seed_bytes(1_000 + seed, len);
        fuzz::journal_replay(&data);
        match fuzz::journal_outcome(&data) {
            fuzz::JournalOutcome::Refused => refused += 1,
            fuzz::JournalOutcome::Damaged => damaged += 1,
            fuzz::JournalOutcome::Replayed(0) => empty += 1,
            fuzz::JournalOutcome::Replayed(_) => replayed += 1,
            fuzz::JournalOutcome::Skipped => {}
        }
    }
    // Every outcome is exercised: a malformed record refused, damage reported, nothing to
    // replay, records replayed.
    assert!(
        refused > 10 && damaged > 10 && empty > 10 && replayed > 10,
        "refused {refused}, damaged {damaged}, nothing {empty}, replayed {replayed}"
    );
}

/// Regression, found by the `webhook_limits` target: in a body with an unterminated string,
/// `Limits::check` used to count the brackets after the opening quote as structure, refusing
/// `{"a":"\"[[[` as `TooDeep` (offset 9) instead of leaving the broken JSON to the parser.
/// Brackets inside strings never count, terminated or not.
#[test]
fn limits_check_ignores_brackets_in_an_unterminated_string() {
    let limits = waguard_webhook::Limits::default().with_max_depth(1);
    for body in [&br#"{"a":"\"[[["#[..], br#"{"a":"[[["#] {
        assert_eq!(fuzz::reference_depth(body), (1, vec![0], false));
        assert!(limits.check(body).is_ok(), "{:?}", limits.check(body));
    }
}
