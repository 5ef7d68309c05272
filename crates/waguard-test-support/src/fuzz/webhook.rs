//! Targets `signature_verify`, `webhook_limits` and `webhook_parse`.

use waguard::{ContactKey, KeyedEvent, Timestamp};
use waguard_webhook::{parse, parse_signed, sign, verify_signature, HubQuery, Limits};

// ---------------------------------------------------------------------------------------------
// signature_verify

/// Target `signature_verify`: the input split into an app secret, a header value and a body
/// (byte 0: secret length mod 65; byte 1: header length; then the secret, the header (lossy
/// UTF-8), the rest is the body), through [`waguard_webhook::verify_signature`] and
/// [`waguard_webhook::sign`] (rule H2).
///
/// Checks: nothing panics; an empty secret is always refused; the given header verifies only
/// if it is the body's signature (up to hex case and surrounding whitespace); `sign` then
/// `verify_signature` succeeds, also in uppercase hex and with surrounding whitespace; a
/// flipped byte of the body, a changed hex digit, another secret, a missing header and a
/// header without its `sha256=` prefix all fail.
pub fn signature_verify(data: &[u8]) {
    let (secret, header, body) = split_signature_input(data);
    let header = String::from_utf8_lossy(header);
    let given = waguard_webhook::verify_signature(body, Some(&header), secret);
    if secret.is_empty() {
        assert!(given.is_err(), "an empty secret is refused");
        assert!(waguard_webhook::verify_signature(body, None, secret).is_err());
        return;
    }
    let good = waguard_webhook::sign(body, secret);
    assert_eq!(good.len(), "sha256=".len() + 64);
    match given {
        Ok(()) => {
            let normalised = header
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .to_ascii_lowercase();
            assert_eq!(normalised, good, "only the body's signature verifies");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let verify = |b: &[u8], h: Option<&str>, s: &[u8]| waguard_webhook::verify_signature(b, h, s);
    assert_eq!(verify(body, Some(&good), secret), Ok(()));
    let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(verify(body, Some(&upper), secret), Ok(()));
    assert_eq!(verify(body, Some(&format!(" {good}\t")), secret), Ok(()));
    assert!(verify(body, None, secret).is_err());
    assert!(verify(body, Some(&good["sha256=".len()..]), secret).is_err());
    let mut other_secret = secret.to_vec();
    other_secret.push(b'x');
    assert!(verify(body, Some(&good), &other_secret).is_err());
    if !body.is_empty() {
        let mut flipped = body.to_vec();
        let i = usize::from(data[0]) % flipped.len();
        flipped[i] ^= 0x01;
        assert!(
            verify(&flipped, Some(&good), secret).is_err(),
            "flipped byte {i}"
        );
    }
    let mut digits = good.clone().into_bytes();
    let i = "sha256=".len() + usize::from(data.get(1).copied().unwrap_or(0)) % 64;
    digits[i] = if digits[i] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(digits).expect("ASCII");
    assert!(
        verify(body, Some(&changed), secret).is_err(),
        "changed digit {i}"
    );
}

/// Splits a `signature_verify` input into (secret, header, body).
pub fn split_signature_input(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (Some(&s), Some(&h)) = (data.first(), data.get(1)) else {
        return (b"", b"", data);
    };
    let rest = &data[2..];
    let s = (usize::from(s) % 65).min(rest.len());
    let (secret, rest) = rest.split_at(s);
    let h = usize::from(h).min(rest.len());
    let (header, body) = rest.split_at(h);
    (secret, header, body)
}

/// Builds a `signature_verify` input from its three parts (for seed corpora); the inverse of
/// [`split_signature_input`] for a secret of at most 64 bytes and a header of at most 255.
pub fn join_signature_input(secret: &[u8], header: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(secret.len() <= 64 && header.len() <= 255);
    let mut out = vec![secret.len() as u8, header.len() as u8];
    out.extend_from_slice(secret);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// webhook_limits

/// Target `webhook_limits`: the input limits of the webhook crate ([`Limits`]), checked
/// against an independent reference.
///
/// The input is a body. A reference scan computes its nesting depth (brackets outside JSON
/// strings, escapes honoured, the top level counting as 1) and the offset of the first bracket
/// beyond each depth. Checks:
///
/// - size: with `max_body_bytes` one below the body's length, [`waguard_webhook::parse`] fails
///   with `TooLarge` (whatever the bytes: invalid UTF-8 or JSON included, so the limit is
///   enforced before parsing); at the body's length it never fails with `TooLarge`;
/// - depth: with `max_depth` at the reference depth, `Limits::check` passes and `parse` never
///   fails with `TooDeep`; one below, both fail with `TooDeep` at exactly the reference offset,
///   again whatever the bytes (before parsing);
/// - items: with a `max_items` budget of 0 to 3, `parse` never panics, and a body it accepts
///   gives no more events than that many items can carry (none for a budget of 0);
/// - `parse` with the default limits never panics.
pub fn webhook_limits(data: &[u8]) {
    use waguard_webhook::ParseError;
    let at = Timestamp::from_unix_seconds(1_750_000_000).expect("in range");
    let n = data.len();
    let default = Limits::default();
    let _ = waguard_webhook::parse(data, at, &default);

    if n > 0 {
        let small = default.with_max_body_bytes(n - 1);
        match waguard_webhook::parse(data, at, &small) {
            Err(ParseError::TooLarge { size, limit }) => assert_eq!((size, limit), (n, n - 1)),
            other => panic!(
                "a body of {n} bytes under a limit of {} gave {other:?}",
                n - 1
            ),
        }
    }
    let exact = default.with_max_body_bytes(n);
    assert!(!matches!(
        waguard_webhook::parse(data, at, &exact),
        Err(ParseError::TooLarge { .. })
    ));

    let (depth, offsets, terminated) = reference_depth(data);
    let at_depth = Limits::default().with_max_depth(depth);
    let checked = at_depth.check(data);
    if terminated {
        assert!(
            checked.is_ok(),
            "depth {depth} within its own limit: {checked:?}"
        );
        assert!(!matches!(
            waguard_webhook::parse(data, at, &at_depth),
            Err(ParseError::TooDeep { .. })
        ));
    }
    // With an unterminated string (invalid JSON) the parser may stop at another place than the
    // pre-scan; either way the body is never found shallower than the reference, so the limit
    // is never weaker. (The pre-scan once counted brackets inside an unterminated string; the
    // regression test is in `crates/waguard-test-support/tests/fuzz_corpus.rs`.)
    if depth > 0 {
        let below = Limits::default().with_max_depth(depth - 1);
        let want = offsets[depth - 1];
        for (what, result) in [
            ("check", below.check(data)),
            (
                "parse",
                waguard_webhook::parse(data, at, &below).map(|_| ()),
            ),
        ] {
            match result {
                Err(ParseError::TooDeep { limit, offset }) => {
                    assert_eq!(limit, depth - 1);
                    if terminated {
                        assert_eq!(offset, want, "{what}: TooDeep offset");
                    } else {
                        assert!(offset <= want, "{what}: TooDeep offset {offset} > {want}");
                    }
                }
                other => panic!(
                    "{what}: depth {depth} under a limit of {} gave {other:?}",
                    depth - 1
                ),
            }
        }
    }

    for items in 0..=3usize {
        let limits = Limits::default().with_max_items(items);
        if let Ok(parsed) = waguard_webhook::parse(data, at, &limits) {
            // Every event comes from an item read (an entry, a change, a message, a status,
            // ...): none without a budget, a few per item at most. (Item errors are not
            // bounded so: a payload without `entry` reports one with no item read.)
            assert!(
                parsed.events.len() <= 4 * items,
                "{} events from a budget of {items} items",
                parsed.events.len()
            );
        }
    }
}

/// The nesting depth of `body` as `Limits::check` documents it (brackets outside strings, the
/// top level being depth 1), for each depth `d` the offset of the first bracket that reaches
/// depth `d + 1`, and whether every string is terminated. A reference implementation: one byte
/// at a time, no shortcuts.
pub fn reference_depth(body: &[u8]) -> (usize, Vec<usize>, bool) {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut first_at = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    first_at.push(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max, first_at, !in_string)
}

// ---------------------------------------------------------------------------------------------
// webhook_parse

/// The app secret the `webhook_parse` target signs with.
const SECRET: &[u8] = b"fuzz-app-secret";

/// Target `webhook_parse`: runs every entry point on arbitrary bytes and checks what must hold whatever the input:
///
/// - nothing panics;
/// - every item error has a path inside the payload (`entry...`);
/// - an unsigned or wrongly signed body is never parsed, and a correctly signed one gives the
///   same result as [`parse`];
/// - every contact key is canonical (its textual form reads back to the same key).
///
/// ```
/// waguard_test_support::fuzz::webhook_parse(br#"{"object":"whatsapp_business_account","entry":[]}"#);
/// waguard_test_support::fuzz::webhook_parse(b"\xff[[[[");
/// ```
pub fn webhook_parse(data: &[u8]) {
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
