use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Bsuid, BusinessId, ContactId, GroupId, PhoneNumber};
use crate::error::IdError;

/// The key all per-contact state hangs off: (business number, contact).
///
/// Its [`storage_key`](ContactKey::storage_key) bytes are what stores index by; they sort by
/// business first, so a store can scan one business's contacts.
///
/// ```
/// use waguard_core::{BusinessId, ContactId, ContactKey, PhoneNumber};
/// let key = ContactKey::new(
///     BusinessId::parse("100000001").unwrap(),
///     ContactId::Phone(PhoneNumber::parse("+33 6 12 34 56 78").unwrap()),
/// );
/// assert_eq!(key.to_string(), "100000001/p:33612345678");
/// assert_eq!(ContactKey::from_storage_key(&key.storage_key()).unwrap(), key);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContactKey {
    /// The business phone number id.
    pub business: BusinessId,
    /// The contact.
    pub contact: ContactId,
}

/// A storage key or textual key could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyParseError {
    /// Not of the form `BUSINESS/TAG:ID`.
    #[error("`{value}` is not a contact key: expected BUSINESS/p:PHONE, BUSINESS/u:USER_ID or BUSINESS/g:GROUP_ID")]
    Shape {
        /// The text that was given (lossy UTF-8 for storage keys).
        value: String,
    },
    /// One of the parts failed validation.
    #[error(transparent)]
    Id(#[from] IdError),
}

impl ContactKey {
    /// A key from its two parts.
    pub fn new(business: BusinessId, contact: ContactId) -> Self {
        ContactKey { business, contact }
    }

    /// The bytes stores index by: `BUSINESS/TAG:ID` in UTF-8 (the same as the `Display` form).
    pub fn storage_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.storage_key_len());
        self.write_storage_key(&mut out);
        out
    }

    /// How many bytes [`storage_key`](ContactKey::storage_key) has.
    pub fn storage_key_len(&self) -> usize {
        self.business.as_str().len() + 3 + self.contact.as_str().len()
    }

    /// Appends the [`storage_key`](ContactKey::storage_key) bytes to `out`: a few copies, no
    /// formatting machinery, for stores that build a key on every read.
    ///
    /// ```
    /// use waguard_core::ContactKey;
    /// let key: ContactKey = "100000001/u:US.123abc".parse().unwrap();
    /// let mut out = b"prefix:".to_vec();
    /// key.write_storage_key(&mut out);
    /// assert_eq!(out, b"prefix:100000001/u:US.123abc");
    /// ```
    pub fn write_storage_key(&self, out: &mut Vec<u8>) {
        out.reserve(self.storage_key_len());
        out.extend_from_slice(self.business.as_str().as_bytes());
        // Tags are ASCII letters.
        out.extend_from_slice(&[b'/', self.contact.tag() as u8, b':']);
        out.extend_from_slice(self.contact.as_str().as_bytes());
    }

    /// Reads back [`storage_key`](ContactKey::storage_key) bytes.
    pub fn from_storage_key(bytes: &[u8]) -> Result<Self, KeyParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| KeyParseError::Shape {
            value: String::from_utf8_lossy(bytes).into_owned(),
        })?;
        text.parse()
    }
}

impl fmt::Display for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.business, self.contact)
    }
}

impl std::str::FromStr for ContactKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || KeyParseError::Shape {
            value: text.to_owned(),
        };
        let (business, contact) = text.split_once('/').ok_or_else(shape)?;
        let (tag, id) = contact.split_once(':').ok_or_else(shape)?;
        let contact = match tag {
            "p" => ContactId::Phone(PhoneNumber::parse(id)?),
            "u" => ContactId::User(Bsuid::parse(id)?),
            "g" => ContactId::Group(GroupId::parse(id)?),
            _ => return Err(shape()),
        };
        Ok(ContactKey::new(BusinessId::parse(business)?, contact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textual_keys_round_trip_for_every_contact_kind() {
        for text in [
            "1/p:33612345678",
            "22/u:US.123abc",
            "333/g:120363@g.us",
            "4/u:BR.ENT.9",
        ] {
            let key: ContactKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
            assert_eq!(key.storage_key(), text.as_bytes());
            assert_eq!(key.storage_key_len(), text.len());
            assert_eq!(
                ContactKey::from_storage_key(&key.storage_key()).unwrap(),
                key
            );
        }
    }

    #[test]
    fn bad_textual_keys_are_errors() {
        for text in ["", "1", "1/x:2", "a/p:33612345678", "1/p:123"] {
            assert!(text.parse::<ContactKey>().is_err(), "{text}");
        }
        assert!(ContactKey::from_storage_key(&[0xff, 0xfe]).is_err());
    }
}
