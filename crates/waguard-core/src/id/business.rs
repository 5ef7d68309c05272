use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{IdError, IdProblem};

/// A business phone number id (`metadata.phone_number_id`): 1 to 32 ASCII digits (rule K4).
///
/// Windows, limits and sender restrictions are per business number, not per account.
///
/// ```
/// use waguard_core::BusinessId;
/// assert_eq!(BusinessId::parse("100000001").unwrap().as_str(), "100000001");
/// assert!(BusinessId::parse("abc").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BusinessId(Box<str>);

impl BusinessId {
    /// Validates a business phone number id.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok =
            !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(BusinessId(value.into()))
        } else {
            Err(IdError::new("business id", value, IdProblem::BusinessShape))
        }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BusinessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BusinessId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        BusinessId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A WhatsApp Business Account (WABA) id, as webhooks name it in `entry[].id`: 1 to 32 ASCII
/// digits (rules H1, T4). Templates belong to an account (T1), accounts to a portfolio (L1).
///
/// ```
/// use waguard_core::AccountId;
/// assert!(AccountId::parse("900000001").is_ok());
/// assert!(AccountId::parse("waba-1").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(Box<str>);

impl AccountId {
    /// Parses an account id: 1 to 32 ASCII digits.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok =
            !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(AccountId(value.into()))
        } else {
            Err(IdError::new("account id", value, IdProblem::AccountShape))
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The order of T4's tie-break: compared as numbers (equal lengths compare as text).
    pub(crate) fn numeric_key(&self) -> (usize, &str) {
        let digits = self.0.trim_start_matches('0');
        (digits.len(), digits)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AccountId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_business_ids_are_1_to_32_digits() {
        assert!(BusinessId::parse("1").is_ok());
        assert!(BusinessId::parse(&"9".repeat(32)).is_ok());
        for bad in ["", "12a", " 1", &"9".repeat(33)] {
            let err = BusinessId::parse(bad).unwrap_err();
            assert_eq!(err.problem, IdProblem::BusinessShape, "{bad}");
        }
    }
}
