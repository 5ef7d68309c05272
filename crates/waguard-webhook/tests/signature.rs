//! Rule H2 (X-Hub-Signature-256) and rule H3 (the verify handshake).

use waguard_webhook::{
    sign, verify_signature, verify_subscription, HandshakeError, HubQuery, SignatureError,
};

/// Known answer: HMAC-SHA256 with key "It's a Secret to Everybody" over "Hello, World!"
/// (the vector GitHub documents for its identical `X-Hub-Signature-256` scheme; checked
/// independently with Python's `hmac`).
const KAT_SECRET: &[u8] = b"It's a Secret to Everybody";
const KAT_BODY: &[u8] = b"Hello, World!";
const KAT_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn h2_known_answer_vector() {
    let header = format!("sha256={KAT_HEX}");
    assert_eq!(
        verify_signature(KAT_BODY, Some(&header), KAT_SECRET),
        Ok(())
    );
    assert_eq!(sign(KAT_BODY, KAT_SECRET), header);
}

#[test]
fn h2_known_answer_on_a_fixture_body() {
    // Python: hmac.new(b"app-secret", open("text.json","rb").read(), hashlib.sha256).hexdigest()
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/text.json"
    ))
    .unwrap();
    let header = "sha256=b4e63670265529d1e6294d4f0ee6df81af103f15ec38536921f7f9fd35cdbd78";
    assert_eq!(verify_signature(&body, Some(header), b"app-secret"), Ok(()));
}

#[test]
fn h2_uppercase_hex_and_surrounding_whitespace_are_accepted() {
    let header = format!("sha256={}", KAT_HEX.to_uppercase());
    assert_eq!(
        verify_signature(KAT_BODY, Some(&header), KAT_SECRET),
        Ok(())
    );
    let header = format!("  sha256={KAT_HEX}\t");
    assert_eq!(
        verify_signature(KAT_BODY, Some(&header), KAT_SECRET),
        Ok(())
    );
}

#[test]
fn h2_tampered_bodies_and_other_secrets_are_rejected() {
    let header = format!("sha256={KAT_HEX}");
    assert_eq!(
        verify_signature(b"Hello, World?", Some(&header), KAT_SECRET),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"Hello, World! ", Some(&header), KAT_SECRET),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"", Some(&header), KAT_SECRET),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(KAT_BODY, Some(&header), b"another secret"),
        Err(SignatureError::Mismatch)
    );
    // Every single-bit flip of the body is caught.
    for i in 0..KAT_BODY.len() {
        let mut body = KAT_BODY.to_vec();
        body[i] ^= 0x01;
        assert_eq!(
            verify_signature(&body, Some(&header), KAT_SECRET),
            Err(SignatureError::Mismatch)
        );
    }
    // And of the digest.
    let mut digest = KAT_HEX.as_bytes().to_vec();
    digest[63] = if digest[63] == b'7' { b'8' } else { b'7' };
    let header = format!("sha256={}", String::from_utf8(digest).unwrap());
    assert_eq!(
        verify_signature(KAT_BODY, Some(&header), KAT_SECRET),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn h2_malformed_headers_have_distinct_errors() {
    let v = |h: Option<&str>| verify_signature(KAT_BODY, h, KAT_SECRET);
    assert_eq!(v(None), Err(SignatureError::Missing));
    assert_eq!(v(Some("")), Err(SignatureError::Missing));
    assert_eq!(v(Some("   ")), Err(SignatureError::Missing));
    assert_eq!(v(Some(KAT_HEX)), Err(SignatureError::WrongPrefix));
    assert_eq!(
        v(Some(&format!("sha1={KAT_HEX}"))),
        Err(SignatureError::WrongPrefix)
    );
    assert_eq!(
        v(Some(&format!("SHA256={KAT_HEX}"))),
        Err(SignatureError::WrongPrefix)
    );
    assert_eq!(
        v(Some("sha256=")),
        Err(SignatureError::WrongLength { found: 0 })
    );
    assert_eq!(
        v(Some(&format!("sha256={}", &KAT_HEX[..63]))),
        Err(SignatureError::WrongLength { found: 63 })
    );
    assert_eq!(
        v(Some(&format!("sha256={KAT_HEX}00"))),
        Err(SignatureError::WrongLength { found: 66 })
    );
    let mut bad = KAT_HEX.to_string();
    bad.replace_range(10..11, "g");
    assert_eq!(
        v(Some(&format!("sha256={bad}"))),
        Err(SignatureError::NotHex { position: 10 })
    );
    // A multi-byte character is never sliced: it is a non-hex character where the length
    // in bytes is right, and counts as one character where it is not.
    let weird = format!("sha256={}é", &KAT_HEX[..62]);
    assert_eq!(
        v(Some(&weird)),
        Err(SignatureError::NotHex { position: 62 })
    );
    let weird = format!("sha256={}é", &KAT_HEX[..61]);
    assert_eq!(
        v(Some(&weird)),
        Err(SignatureError::WrongLength { found: 62 })
    );
    assert_eq!(
        verify_signature(KAT_BODY, Some(&format!("sha256={KAT_HEX}")), b""),
        Err(SignatureError::EmptySecret)
    );
}

#[test]
fn h3_subscribe_with_the_right_token_answers_the_challenge() {
    let q = HubQuery::parse(
        "?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
    );
    assert_eq!(q.verify("meatyhamhock"), Ok("1158201444"));
    let q = HubQuery::parse("hub.verify_token=a%26b+c&hub.mode=subscribe&hub.challenge=42&other=1");
    assert_eq!(q.verify("a&b c"), Ok("42"));
    assert_eq!(
        verify_subscription(Some("subscribe"), Some("t"), Some("abc-1_2.3"), "t"),
        Ok("abc-1_2.3")
    );
}

#[test]
fn h3_anything_else_is_refused() {
    let v = |q: &str| HubQuery::parse(q).verify("token").map(str::to_owned);
    assert_eq!(
        v("hub.verify_token=token&hub.challenge=1"),
        Err(HandshakeError::MissingMode)
    );
    assert_eq!(
        v("hub.mode=unsubscribe&hub.verify_token=token&hub.challenge=1"),
        Err(HandshakeError::WrongMode {
            found: "unsubscribe".into()
        })
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.challenge=1"),
        Err(HandshakeError::MissingToken)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=tokem&hub.challenge=1"),
        Err(HandshakeError::TokenMismatch)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=token2&hub.challenge=1"),
        Err(HandshakeError::TokenMismatch)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=&hub.challenge=1"),
        Err(HandshakeError::TokenMismatch)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=token"),
        Err(HandshakeError::MissingChallenge)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=token&hub.challenge=%3Cscript%3E"),
        Err(HandshakeError::InvalidChallenge)
    );
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=token&hub.challenge="),
        Err(HandshakeError::InvalidChallenge)
    );
    let long = format!(
        "hub.mode=subscribe&hub.verify_token=token&hub.challenge={}",
        "1".repeat(129)
    );
    assert_eq!(v(&long), Err(HandshakeError::InvalidChallenge));
    // The first occurrence of a repeated parameter wins.
    assert_eq!(
        v("hub.mode=subscribe&hub.verify_token=token&hub.verify_token=x&hub.challenge=5"),
        Ok("5".to_owned())
    );
    assert_eq!(
        HubQuery::parse("hub.mode=subscribe&hub.verify_token=&hub.challenge=1").verify(""),
        Err(HandshakeError::EmptyExpectedToken)
    );
    // Malformed escapes do not panic.
    let q = HubQuery::parse("hub.mode=%&hub.verify_token=%zz%4&hub.challenge=%");
    assert!(q.verify("token").is_err());
}
