use std::fmt;

use serde::{Deserialize, Serialize};

use super::PhoneNumber;
use crate::error::{IdError, IdProblem};

/// A business-scoped user id (BSUID, rule K3), such as `US.13491208655302741918`, or a
/// portfolio-wide parent id such as `US.ENT.13491208655302741918`.
///
/// ```
/// use waguard_core::Bsuid;
/// let id = Bsuid::parse("US.13491208655302741918").unwrap();
/// assert_eq!(id.country(), "US");
/// assert!(!id.is_parent());
/// assert!(Bsuid::parse("us.123").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Bsuid(Box<str>);

impl Bsuid {
    /// Validates the BSUID shape: two uppercase ASCII letters, a dot, optionally `ENT.`, then 1
    /// to 128 ASCII letters or digits.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let err = || IdError::new("user id", value, IdProblem::BsuidShape);
        let b = value.as_bytes();
        if b.len() < 4 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_uppercase() || b[2] != b'.' {
            return Err(err());
        }
        let rest = &value[3..];
        let body = rest.strip_prefix("ENT.").unwrap_or(rest);
        if body.is_empty() || body.len() > 128 || !body.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err());
        }
        Ok(Bsuid(value.into()))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-letter country the id starts with (R1, R3).
    pub fn country(&self) -> &str {
        &self.0[..2]
    }

    /// Whether this is a portfolio-wide parent id (`CC.ENT.…`).
    pub fn is_parent(&self) -> bool {
        self.0[3..].starts_with("ENT.")
    }
}

impl<'de> Deserialize<'de> for Bsuid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Bsuid::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A WhatsApp group id (Groups API, rule W7): 1 to 128 printable ASCII characters without
/// whitespace (K4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GroupId(Box<str>);

impl GroupId {
    /// Validates a group id.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if ok {
            Ok(GroupId(value.into()))
        } else {
            Err(IdError::new("group id", value, IdProblem::GroupShape))
        }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        GroupId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Who the business talks to: exactly one of a phone number, a business-scoped user id or a
/// group (section 0 of the rules).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContactId {
    /// A WhatsApp user's phone number (K1, K2).
    Phone(PhoneNumber),
    /// A business-scoped user id (K3).
    User(Bsuid),
    /// A group (W7).
    Group(GroupId),
}

impl ContactId {
    /// The one-letter tag used in storage keys and the textual form: `p`, `u` or `g`.
    pub fn tag(&self) -> char {
        match self {
            ContactId::Phone(_) => 'p',
            ContactId::User(_) => 'u',
            ContactId::Group(_) => 'g',
        }
    }

    /// The id without its tag.
    pub fn as_str(&self) -> &str {
        match self {
            ContactId::Phone(p) => p.digits(),
            ContactId::User(u) => u.as_str(),
            ContactId::Group(g) => g.as_str(),
        }
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.tag(), self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3_bsuid_shapes() {
        assert!(Bsuid::parse("US.13491208655302741918").is_ok());
        assert!(Bsuid::parse("BR.abcDEF123").is_ok());
        let parent = Bsuid::parse("US.ENT.13491208655302741918").unwrap();
        assert!(parent.is_parent());
        assert_eq!(parent.country(), "US");
        assert!(Bsuid::parse(&format!("US.{}", "1".repeat(128))).is_ok());
        for bad in [
            "",
            "US.",
            "US13491208655302741918",
            "us.123",
            "USA.123",
            "US.12-3",
            "US.ENT.",
            &format!("US.{}", "1".repeat(129)),
        ] {
            assert_eq!(
                Bsuid::parse(bad).unwrap_err().problem,
                IdProblem::BsuidShape,
                "{bad}"
            );
        }
    }

    #[test]
    fn k4_group_ids() {
        assert!(GroupId::parse("120363025246125486@g.us").is_ok());
        assert!(GroupId::parse(&"g".repeat(128)).is_ok());
        for bad in ["", "has space", "tab\there", "é", &"g".repeat(129)] {
            assert_eq!(
                GroupId::parse(bad).unwrap_err().problem,
                IdProblem::GroupShape,
                "{bad}"
            );
        }
    }
}
