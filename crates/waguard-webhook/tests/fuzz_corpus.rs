//! Replays every file of the committed fuzz corpus (`fuzz/corpus/webhook_parse/`) through the
//! fuzz target's function, so the target cannot rot when no nightly toolchain is at hand.

#[test]
fn fuzz_corpus_webhook_parse_replays() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/webhook_parse"
    );
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            waguard_webhook::fuzz::exercise(&data);
            count += 1;
        }
    }
    assert!(
        count >= 20,
        "the seed corpus holds every fixture; found only {count} files"
    );
}

#[test]
fn fuzz_exercise_survives_edge_inputs() {
    for data in [
        &b""[..],
        b"\0",
        b"{}",
        b"[",
        b"\xff\xfe",
        b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"1\"},\"statuses\":[{\"status\":\"failed\",\"timestamp\":\"99999999999999999999\",\"recipient_id\":\"16505551234\",\"errors\":[{\"code\":4294967296}]}]}}]}]}",
        b"hub.mode=subscribe&hub.verify_token=fuzz-token&hub.challenge=1",
    ] {
        waguard_webhook::fuzz::exercise(data);
    }
}
