//! The body of the `webhook_parse` fuzz target, shared with the stable test that replays its
//! corpus, so the target cannot rot when no nightly toolchain is at hand.

use waguard_core::{ContactKey, KeyedEvent, Timestamp};

use crate::{parse, parse_signed, sign, verify_signature, HubQuery, Limits};

/// The app secret the fuzz target signs with.
const SECRET: &[u8] = b"fuzz-app-secret";

/// Runs every entry point on arbitrary bytes and checks what must hold whatever the input:
///
/// - nothing panics;
/// - every item error has a path inside the payload (`entry...`);
/// - an unsigned or wrongly signed body is never parsed, and a correctly signed one gives the
///   same result as [`parse`];
/// - every contact key is canonical (its textual form reads back to the same key).
///
/// ```
/// waguard_webhook::fuzz::exercise(br#"{"object":"whatsapp_business_account","entry":[]}"#);
/// waguard_webhook::fuzz::exercise(b"\xff[[[[");
/// ```
pub fn exercise(data: &[u8]) {
    let received_at = Timestamp::from_unix_seconds(1_750_000_000).expect("in range");
    let limits = Limits::default();
    let parsed = parse(data, received_at, &limits);
    if let Ok(parsed) = &parsed {
        assert!(std::str::from_utf8(data).is_ok(), "parsed bodies are UTF-8");
        for error in &parsed.errors {
            assert!(error.path.starts_with("entry"), "path {}", error.path);
            let _ = error.to_string();
        }
        for event in &parsed.events {
            if let KeyedEvent::Contact { key, .. } = event {
                // Keys are canonical: their textual form reads back to the same key.
                let text = key.to_string();
                assert_eq!(text.parse::<ContactKey>().as_ref(), Ok(key), "{text}");
            }
        }
    }

    // H2: a signed body parses exactly as `parse` does; a wrong signature parses nothing.
    let header = sign(data, SECRET);
    let signed = parse_signed(data, Some(&header), SECRET, received_at, &limits);
    assert_eq!(signed.is_ok(), parsed.is_ok());
    if let (Ok(a), Ok(b)) = (&signed, &parsed) {
        assert_eq!(a.events, b.events);
        assert_eq!(a.errors.len(), b.errors.len());
    }
    assert!(parse_signed(data, None, SECRET, received_at, &limits).is_err());
    assert!(parse_signed(data, Some(&header), b"other", received_at, &limits).is_err());

    // The input as a header and as a verification query.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_signature(b"{}", Some(text), SECRET);
        let query = HubQuery::parse(text);
        if let Ok(challenge) = query.verify("fuzz-token") {
            assert!(!challenge.is_empty() && challenge.len() <= 128);
        }
    }
}
