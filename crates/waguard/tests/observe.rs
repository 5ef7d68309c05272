//! With the `tracing` feature, every guard operation is a span named `waguard` whose `key` is
//! hashed: the phone number never appears in what the subscriber sees.

use std::io::Write;
use std::sync::{Arc, Mutex};

use waguard::observe::KeyHash;
use waguard::{ContactKey, Guard, MemoryStore, Outgoing, Policy, Scope, Timestamp};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spans_name_the_operation_and_hash_the_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
            let at = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
            guard.check(&key, Outgoing::FreeForm, at).await.unwrap();
            guard
                .reserve(&key, Outgoing::FreeForm, Some("k"), at)
                .await
                .unwrap();
            guard.opt_out(&key, Scope::All, at).await.unwrap();
            guard
                .record_send_error(&key, 131026, None, at)
                .await
                .unwrap();
            guard.forget(&key, at).await.unwrap();
        });
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let hash = KeyHash(&key).to_string();
    for op in ["check", "reserve", "record", "send_error", "forget"] {
        assert!(
            text.contains(&format!("op=\"{op}\" key={hash}")),
            "no span for {op} with the hashed key in:\n{text}"
        );
    }
    assert!(
        text.contains("return=TemplateRequired { reason: FirstContact }"),
        "the decision is recorded:\n{text}"
    );
    assert!(
        !text.contains("33612345678"),
        "the phone number leaked:\n{text}"
    );
}
