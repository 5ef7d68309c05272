//! Target `contact_parse`.

use waguard::{Bsuid, BusinessId, ContactId, ContactKey, GroupId, PhoneNumber};

// ---------------------------------------------------------------------------------------------
// contact_parse

/// Target `contact_parse`: the input (lossy UTF-8, and each `\n`-separated part) through
/// [`PhoneNumber::parse`], [`Bsuid::parse`], [`GroupId::parse`], [`BusinessId::parse`],
/// [`ContactKey`]'s `FromStr` and [`ContactKey::from_storage_key`] (on the raw bytes).
///
/// Checks: nothing panics; a parsed phone number is 7 to 15 ASCII digits not starting with
/// `0` (K1) and its digits re-parse to the same number (canonicalisation is idempotent, K2);
/// a BSUID, group or business id reads back from its text (K3, K4); a key's textual form and
/// its storage key both read back to the same key, and a key's parts parse on their own.
pub fn contact_parse(data: &[u8]) {
    if let Ok(key) = ContactKey::from_storage_key(data) {
        check_key(&key);
    }
    let text = String::from_utf8_lossy(data);
    contact_parse_text(&text);
    for part in text.split('\n') {
        contact_parse_text(part);
    }
}

fn contact_parse_text(text: &str) {
    if let Ok(phone) = PhoneNumber::parse(text) {
        check_phone(&phone);
    }
    if let Ok(user) = Bsuid::parse(text) {
        assert_eq!(Bsuid::parse(user.as_str()).as_ref(), Ok(&user));
        assert_eq!(user.as_str(), text, "a BSUID is kept as written");
        assert_eq!(user.country().len(), 2);
        assert!(user.country().bytes().all(|b| b.is_ascii_uppercase()));
    }
    if let Ok(group) = GroupId::parse(text) {
        assert_eq!(GroupId::parse(group.as_str()).as_ref(), Ok(&group));
        assert!(!group.as_str().is_empty() && group.as_str().len() <= 128);
    }
    if let Ok(business) = BusinessId::parse(text) {
        assert_eq!(BusinessId::parse(business.as_str()).as_ref(), Ok(&business));
        assert_eq!(business.to_string(), business.as_str());
        let b = business.as_str();
        assert!(!b.is_empty() && b.len() <= 32 && b.bytes().all(|c| c.is_ascii_digit()));
    }
    if let Ok(key) = text.parse::<ContactKey>() {
        check_key(&key);
    }
}

fn check_phone(phone: &PhoneNumber) {
    let digits = phone.digits();
    assert!(
        (7..=15).contains(&digits.len()),
        "K1: {digits} is not 7 to 15 digits"
    );
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "K1: {digits}");
    assert!(!digits.starts_with('0'), "K1: {digits} starts with 0");
    let again = PhoneNumber::parse(digits).unwrap_or_else(|e| panic!("{digits} re-parses: {e}"));
    assert_eq!(&again, phone, "K2: canonical form is a fixed point");
    assert_eq!(again.region(), phone.region());
    let plus = format!("+{digits}");
    assert_eq!(PhoneNumber::parse(&plus).as_ref(), Ok(phone));
}

fn check_key(key: &ContactKey) {
    let text = key.to_string();
    assert_eq!(text.parse::<ContactKey>().as_ref(), Ok(key), "{text}");
    let stored = key.storage_key();
    assert_eq!(stored, text.as_bytes());
    assert_eq!(ContactKey::from_storage_key(&stored).as_ref(), Ok(key));
    assert_eq!(
        BusinessId::parse(key.business.as_str()).as_ref(),
        Ok(&key.business)
    );
    match &key.contact {
        ContactId::Phone(p) => check_phone(p),
        ContactId::User(u) => assert_eq!(Bsuid::parse(u.as_str()).as_ref(), Ok(u)),
        ContactId::Group(g) => assert_eq!(GroupId::parse(g.as_str()).as_ref(), Ok(g)),
        _ => {}
    }
}
