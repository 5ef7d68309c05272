//! [`MetaError`]: an error as Meta reports it, read from its JSON.

use std::fmt;

use serde_json::{Map, Value};

use crate::code::CodeEffect;

/// An error as Meta reports it: the error object of a failed Graph API call (a send that
/// Meta refused), or an item of a webhook's `errors` array.
///
/// Read one with [`MetaError::from_json`] and record it with `waguard::Guard::record_meta_error`
/// (which records its [`code`](MetaError::code) as `record_send_error` does). Only the code
/// drives the rules ([`CodeEffect::of`]); the other fields are kept for logs.
///
/// ```
/// use waguard_core::{CodeEffect, MetaError};
/// let body = r#"{"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
///     "code": 131047, "error_data": {"messaging_product": "whatsapp",
///     "details": "Message failed to send because more than 24 hours have passed"},
///     "fbtrace_id": "AbCdEf"}}"#;
/// let error = MetaError::from_json(body).unwrap();
/// assert_eq!(error.code, 131047);
/// assert_eq!(error.effect(), CodeEffect::WindowClosed);
/// assert_eq!(error.kind.as_deref(), Some("OAuthException"));
/// assert_eq!(error.fbtrace_id.as_deref(), Some("AbCdEf"));
///
/// // A webhook's `errors[]` item, and the object without its `error` wrapper, read alike.
/// let item = r#"{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
///     "error_data": {"details": "Message Undeliverable."}}"#;
/// let error = MetaError::from_json(item).unwrap();
/// assert_eq!((error.code, error.title.as_deref()), (131026, Some("Message undeliverable")));
///
/// assert!(MetaError::from_json(r#"{"error": {"message": "no code"}}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MetaError {
    /// Meta's error code (`code`), such as 131047.
    pub code: u32,
    /// The Graph API's `error_subcode`, when given.
    pub subcode: Option<u32>,
    /// `message`.
    pub message: Option<String>,
    /// A webhook item's `title`.
    pub title: Option<String>,
    /// The Graph API's `type`, such as `OAuthException`.
    pub kind: Option<String>,
    /// `error_data.details`: what went wrong, in words.
    pub details: Option<String>,
    /// The Graph API's `fbtrace_id`, for Meta's support.
    pub fbtrace_id: Option<String>,
}

/// A text could not be read as Meta's error object. A refusal to send is never this error:
/// it only says the input was not what [`MetaError::from_json`] reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaErrorParseError {
    /// The text is not JSON.
    #[error("not JSON ({source}); give the body of Meta's error answer, such as {{\"error\": {{\"code\": 131047, \"message\": \"...\"}}}}")]
    Json {
        /// What the JSON reader found.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is not an object (or its `error` is not one).
    #[error("{found} is not Meta's error object; give a JSON object such as {{\"error\": {{\"code\": 131047, \"message\": \"...\"}}}}")]
    NotAnObject {
        /// What was found instead (`an array`, `a string`, ...).
        found: &'static str,
    },
    /// The object has no `code`.
    #[error("Meta's error object has no `code`; it carries a numeric `code` such as 131047 (is this the whole error answer, or its `error` object?)")]
    MissingCode,
    /// The code (or subcode) is not a non-negative integer that fits 32 bits.
    #[error("`{field}`: {value} is not an error code (a non-negative integer such as 131047)")]
    BadCode {
        /// `code` or `error_subcode`.
        field: &'static str,
        /// The value found, as JSON.
        value: String,
    },
}

impl MetaError {
    /// An error with only its code.
    ///
    /// ```
    /// let error = waguard_core::MetaError::new(131047);
    /// assert_eq!(error.to_string(), "Meta error 131047");
    /// ```
    pub fn new(code: u32) -> Self {
        MetaError {
            code,
            subcode: None,
            message: None,
            title: None,
            kind: None,
            details: None,
            fbtrace_id: None,
        }
    }

    /// Reads Meta's error object from JSON: the Graph API's answer to a failed call
    /// (`{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"},
    /// "fbtrace_id"}}`), the same object without its `error` wrapper, or a webhook's `errors[]`
    /// item (`{"code", "title", "message", "error_data": {"details"}}`).
    ///
    /// The code (and the subcode, when present) must be a non-negative integer, written as a
    /// number or as a string of digits. The text fields are taken when they are strings and
    /// left out otherwise, so a change Meta makes to them never stops a code from being read.
    pub fn from_json(text: &str) -> Result<Self, MetaErrorParseError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| MetaErrorParseError::Json { source })?;
        let object = match &value {
            Value::Object(outer) => match outer.get("error") {
                Some(Value::Object(inner)) => inner,
                Some(other) if !outer.contains_key("code") => {
                    return Err(MetaErrorParseError::NotAnObject {
                        found: json_kind(other),
                    })
                }
                _ => outer,
            },
            other => {
                return Err(MetaErrorParseError::NotAnObject {
                    found: json_kind(other),
                })
            }
        };
        let code = match object.get("code") {
            None | Some(Value::Null) => return Err(MetaErrorParseError::MissingCode),
            Some(code) => code_of("code", code)?,
        };
        let subcode = match object.get("error_subcode") {
            None | Some(Value::Null) => None,
            Some(subcode) => Some(code_of("error_subcode", subcode)?),
        };
        let details = match object.get("error_data") {
            Some(Value::Object(data)) => string_field(data, "details"),
            _ => None,
        };
        Ok(MetaError {
            code,
            subcode,
            message: string_field(object, "message"),
            title: string_field(object, "title"),
            kind: string_field(object, "type"),
            details,
            fbtrace_id: string_field(object, "fbtrace_id"),
        })
    }

    /// Meta's error code.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// What the code does to the guard's state ([`CodeEffect::of`] of the code).
    pub fn effect(&self) -> CodeEffect {
        CodeEffect::of(self.code)
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Meta error {}", self.code)?;
        if let Some(subcode) = self.subcode {
            write!(f, " (subcode {subcode})")?;
        }
        if let Some(text) = self.message.as_ref().or(self.title.as_ref()) {
            write!(f, ": {text}")?;
        }
        if let Some(details) = &self.details {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

impl std::error::Error for MetaError {}

/// A code written as a number or as a string of digits.
fn code_of(field: &'static str, value: &Value) -> Result<u32, MetaErrorParseError> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| MetaErrorParseError::BadCode {
        field,
        value: value.to_string(),
    })
}

/// A text field, when it is a string.
fn string_field(object: &Map<String, Value>, field: &str) -> Option<String> {
    object.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// What a JSON value is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_of_the_graph_error() {
        let error = MetaError::from_json(
            r#"{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."},"fbtrace_id":"A1"}}"#,
        )
        .unwrap();
        assert_eq!(
            error,
            MetaError {
                code: 131026,
                subcode: Some(2494010),
                message: Some("(#131026) Message undeliverable".into()),
                title: None,
                kind: Some("OAuthException".into()),
                details: Some("Message Undeliverable.".into()),
                fbtrace_id: Some("A1".into()),
            }
        );
        assert_eq!(
            error.to_string(),
            "Meta error 131026 (subcode 2494010): (#131026) Message undeliverable (Message Undeliverable.)"
        );
    }

    #[test]
    fn codes_as_strings_and_odd_text_fields_are_read() {
        let error =
            MetaError::from_json(r#"{"code":"131047","message":7,"error_data":"text"}"#).unwrap();
        assert_eq!(error, MetaError::new(131047));
    }

    #[test]
    fn bad_input_is_a_typed_error_that_says_what_to_give() {
        let err = |text: &str| MetaError::from_json(text).unwrap_err();
        assert!(matches!(err("{"), MetaErrorParseError::Json { .. }));
        assert!(matches!(
            err("[1]"),
            MetaErrorParseError::NotAnObject { found: "an array" }
        ));
        assert!(matches!(
            err(r#"{"error":"denied"}"#),
            MetaErrorParseError::NotAnObject { found: "a string" }
        ));
        assert!(matches!(
            err(r#"{"error":{"message":"x"}}"#),
            MetaErrorParseError::MissingCode
        ));
        for bad in [
            r#"{"code":-1}"#,
            r#"{"code":1.5}"#,
            r#"{"code":"x"}"#,
            r#"{"code":4294967296}"#,
        ] {
            let e = err(bad);
            assert!(
                matches!(e, MetaErrorParseError::BadCode { field: "code", .. }),
                "{bad}"
            );
            assert!(e.to_string().contains("non-negative integer"), "{e}");
        }
        assert!(matches!(
            err(r#"{"code":1,"error_subcode":true}"#),
            MetaErrorParseError::BadCode {
                field: "error_subcode",
                ..
            }
        ));
        assert!(err("{").to_string().contains("131047"));
    }
}
