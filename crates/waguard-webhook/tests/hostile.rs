//! Bad input as a whole (rules H1, H2): typed errors, bounded work, no panic.

use waguard_core::Timestamp;
use waguard_webhook::{
    parse, parse_signed, sign, JsonKind, Limits, ParseError, SignatureError, SignedParseError,
};

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000).unwrap()
}

fn err(body: &[u8]) -> ParseError {
    parse(body, now(), &Limits::default()).unwrap_err()
}

#[test]
fn h1_invalid_json_is_a_typed_error() {
    for body in [
        &b""[..],
        b"{",
        b"{\"object\":}",
        b"nul",
        b"{\"a\":1}}",
        b"\"x",
    ] {
        assert!(
            matches!(err(body), ParseError::InvalidJson { .. }),
            "{body:?}"
        );
    }
}

#[test]
fn h1_invalid_utf8_is_a_typed_error() {
    let e = err(b"{\"object\":\"whatsapp_business_account\xff\"}");
    match &e {
        ParseError::InvalidUtf8 { source } => assert_eq!(source.valid_up_to(), 36),
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&e).is_some(), "source chain kept");
}

#[test]
fn h1_wrong_or_missing_object_is_refused() {
    assert!(
        matches!(err(br#"{"object":"page","entry":[]}"#), ParseError::WrongObject { found } if found == "\"page\"")
    );
    assert!(
        matches!(err(br#"{"entry":[]}"#), ParseError::WrongObject { found } if found == "missing")
    );
    assert!(matches!(err(br#"{"object":7}"#), ParseError::WrongObject { found } if found == "7"));
    assert!(matches!(
        err(b"[1,2]"),
        ParseError::NotAnObject {
            found: JsonKind::Array
        }
    ));
    assert!(matches!(
        err(b"12"),
        ParseError::NotAnObject {
            found: JsonKind::Number
        }
    ));
}

#[test]
fn limits_a_10_mb_body_is_refused_before_parsing() {
    // Valid JSON, so only the size can refuse it.
    let mut body = br#"{"object":"whatsapp_business_account","pad":""#.to_vec();
    body.resize(10 * 1024 * 1024, b'a');
    body.extend_from_slice(br#"","entry":[]}"#);
    match err(&body) {
        ParseError::TooLarge { size, limit } => {
            assert_eq!(size, body.len());
            assert_eq!(limit, 1024 * 1024);
        }
        other => panic!("{other:?}"),
    }
    // The same body passes with a raised limit.
    let limits = Limits::default().with_max_body_bytes(11 * 1024 * 1024);
    assert!(parse(&body, now(), &limits).unwrap().is_clean());
}

#[test]
fn limits_deep_nesting_is_refused_before_parsing() {
    // 500k brackets: the pre-scan refuses it without recursion.
    let body = "[".repeat(500_000);
    let limits = Limits::default().with_max_body_bytes(usize::MAX);
    assert!(matches!(
        parse(body.as_bytes(), now(), &limits),
        Err(ParseError::TooDeep {
            limit: 64,
            offset: 64
        })
    ));
    // Deep nesting inside an otherwise valid payload.
    let deep = format!(
        r#"{{"object":"whatsapp_business_account","entry":[],"x":{}1{}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    assert!(matches!(err(deep.as_bytes()), ParseError::TooDeep { .. }));
    // Brackets inside strings do not count.
    let strings = format!(
        r#"{{"object":"whatsapp_business_account","entry":[],"x":"{}"}}"#,
        "[{".repeat(1000)
    );
    assert!(parse(strings.as_bytes(), now(), &Limits::default())
        .unwrap()
        .is_clean());
    // With the depth limit raised, deep values are still read without recursion: the payload
    // types nest a fixed number of levels and skip anything deeper iteratively.
    let limits = Limits::default()
        .with_max_depth(1_000_000)
        .with_max_body_bytes(usize::MAX);
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse(body.as_bytes(), now(), &limits),
        Err(ParseError::NotAnObject {
            found: JsonKind::Array
        })
    ));
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{}{}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let parsed = parse(body.as_bytes(), now(), &limits).unwrap();
    assert_eq!(parsed.errors.len(), 1);
    assert_eq!(parsed.errors[0].path, "entry[0]");
}

#[test]
fn h1_a_legitimate_payload_is_far_within_the_default_depth() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unknown_type.json"
    ))
    .unwrap();
    assert!(parse(&body, now(), &Limits::default().with_max_depth(16)).is_ok());
}

#[test]
fn h2_bad_signature_means_nothing_is_parsed() {
    let body = b"{ this is not json";
    let limits = Limits::default();
    // Unsigned or wrongly signed: the signature error, not the JSON error, proves no parsing.
    let wrong = sign(b"other body", b"secret");
    for header in [None, Some(wrong.as_str()), Some("sha256=zz")] {
        assert!(matches!(
            parse_signed(body, header, b"secret", now(), &limits),
            Err(SignedParseError::Signature(_))
        ));
    }
    // Signed: now it is parsed, and refused as JSON.
    let good = sign(body, b"secret");
    assert!(matches!(
        parse_signed(body, Some(&good), b"secret", now(), &limits),
        Err(SignedParseError::Parse(ParseError::InvalidJson { .. }))
    ));
    // Oversized bodies are refused before any HMAC is computed.
    let big = vec![b' '; 2 * 1024 * 1024];
    assert!(matches!(
        parse_signed(&big, None, b"secret", now(), &limits),
        Err(SignedParseError::Parse(ParseError::TooLarge { .. }))
    ));
    assert!(matches!(
        parse_signed(b"{}", Some(&sign(b"{}", b"s")), b"", now(), &limits),
        Err(SignedParseError::Signature(SignatureError::EmptySecret))
    ));
}

#[test]
fn errors_say_what_to_do() {
    let e = err(br#"{"object":"page"}"#).to_string();
    assert!(e.contains("whatsapp_business_account"), "{e}");
    let e = err(&vec![b' '; 2 << 20]).to_string();
    assert!(e.contains("max_body_bytes"), "{e}");
    let e = SignedParseError::Signature(SignatureError::Mismatch);
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn limits_many_tiny_items_are_refused_not_amplified() {
    // 1 MiB of `{}` elements would be ~350,000 message structs of ~0.5 KB each.
    let mut body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":["#.to_vec();
    while body.len() < 1_000_000 {
        body.extend_from_slice(b"{},");
    }
    body.extend_from_slice(b"{}]}}]}]}");
    match err(&body) {
        ParseError::TooManyItems { limit } => assert_eq!(limit, 10_000),
        other => panic!("{other:?}"),
    }
    // Within a raised limit the same body is read, each `{}` an item error with its path.
    let limits = Limits::default().with_max_items(1_000_000);
    let parsed = parse(&body, now(), &limits).unwrap();
    assert!(parsed.errors.len() > 300_000);
    // The budget does not leak into the next parse on this thread.
    let small = br#"{"object":"whatsapp_business_account","entry":[{},{}]}"#;
    let parsed = parse(small, now(), &Limits::default().with_max_items(1)).map(|p| p.errors.len());
    assert!(matches!(parsed, Err(ParseError::TooManyItems { limit: 1 })));
    assert_eq!(
        parse(small, now(), &Limits::default())
            .unwrap()
            .errors
            .len(),
        2
    );
}
