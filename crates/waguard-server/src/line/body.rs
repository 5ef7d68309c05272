//! The body of one `/v1` call of `waguard serve`: the inner object of the replay line of that
//! kind, read by the same code as the line, so that both refuse and accept the same things.

use serde_json::{Map, Value};
use waguard::Timestamp;

use super::{from_raw, Fields, Line, RawLine};

/// The line kinds whose body is one object of fields: one `/v1` endpoint each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `check`, `POST /v1/check`.
    Check,
    /// `reserve`, `POST /v1/reserve`.
    Reserve,
    /// `send_error`, `POST /v1/send-errors`.
    SendError,
    /// `opt_out`, `POST /v1/opt-outs`.
    OptOut,
    /// `opt_in`, `POST /v1/opt-ins`.
    OptIn,
    /// `forget`, `POST /v1/forget`.
    Forget,
    /// `clear_sender`, `POST /v1/clear-sender`.
    ClearSender,
}

impl Kind {
    /// The replay name of the kind (`send_error`), which prefixes the fields in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Reserve => "reserve",
            Kind::SendError => "send_error",
            Kind::OptOut => "opt_out",
            Kind::OptIn => "opt_in",
            Kind::Forget => "forget",
            Kind::ClearSender => "clear_sender",
        }
    }
}

/// A body read by [`parse_body`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Body<'a> {
    /// The body's own `"at"` (RFC 3339), when it has one; a server honours it only when told
    /// to trust the client's clock.
    pub at: Option<Timestamp>,
    /// What the body asks, as the replay line of its kind would.
    pub line: Line<'a>,
}

/// Reads the body of a `/v1` call of `kind`: the inner object of the replay line of that kind
/// (`{"from": ..., "to": ..., "message": ...}`), plus an optional `"at"`; a `send_error` body
/// may instead carry Meta's error object as the Graph API returned it
/// (`{"from", "to", "wamid"?, "error": {"code": ...}}`). The error text says what and where,
/// with the same words as replay's.
///
/// ```
/// use waguard_server::line::{parse_body, Kind, Line};
/// let body = parse_body(Kind::Check, r#"{"from": "1", "to": "+33612345678", "message": "free_form"}"#).unwrap();
/// assert!(body.at.is_none());
/// assert!(matches!(body.line, Line::Check { .. }));
/// let graph = r#"{"from": "1", "to": "+33612345678", "error": {"code": 131047, "message": "Re-engagement message"}}"#;
/// assert!(matches!(parse_body(Kind::SendError, graph).unwrap().line, Line::SendError { code: 131047, .. }));
/// assert!(parse_body(Kind::Check, r#"{"from": "1", "to": "+33612345678"}"#).unwrap_err().contains("check.message"));
/// ```
pub fn parse_body(kind: Kind, text: &str) -> Result<Body<'_>, String> {
    // Most bodies are exactly the line's fields: one pass, borrowing the strings.
    let (at, fields) = match serde_json::from_str::<Fields<'_>>(text) {
        Ok(fields) => (None, fields),
        Err(_) => extended(kind, text)?,
    };
    let mut raw = RawLine::default();
    let slot = match kind {
        Kind::Check => &mut raw.check,
        Kind::Reserve => &mut raw.reserve,
        Kind::SendError => &mut raw.send_error,
        Kind::OptOut => &mut raw.opt_out,
        Kind::OptIn => &mut raw.opt_in,
        Kind::Forget => &mut raw.forget,
        Kind::ClearSender => &mut raw.clear_sender,
    };
    *slot = Some(fields);
    let line = from_raw(Timestamp::MIN, raw)?.line;
    Ok(Body { at, line })
}

/// A body with `"at"` or with Meta's `"error"` object (or an invalid one): the object is read
/// as a map, those two are taken out, and the rest is read as the line's fields.
fn extended(kind: Kind, text: &str) -> Result<(Option<Timestamp>, Fields<'static>), String> {
    let name = kind.name();
    let mut map: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            format!("not a valid `{name}` body: {e} (a JSON object with the fields of a `{name}` replay line)")
        } else {
            format!("not valid JSON: {e}")
        }
    })?;
    let at = match map.remove("at") {
        None => None,
        Some(Value::String(at)) => {
            Some(Timestamp::parse_rfc3339(&at).map_err(|e| format!("`at`: {e}"))?)
        }
        Some(other) => {
            return Err(format!(
                "`at`: {other} is not an RFC 3339 instant such as \"2026-03-01T00:00:00Z\""
            ))
        }
    };
    if kind == Kind::SendError {
        if let Some(error) = map.remove("error") {
            if map.contains_key("code") {
                return Err(format!(
                    "`{name}`: give `code` or Meta's `error` object, not both"
                ));
            }
            let code = match error {
                Value::Object(mut error) => error.remove("code").ok_or_else(|| {
                    format!("`{name}.error.code`: missing; Meta's error object carries a numeric `code`")
                })?,
                other => {
                    return Err(format!(
                        "`{name}.error`: {other} is not Meta's error object (`{{\"code\": 131047, ...}}`)"
                    ))
                }
            };
            map.insert("code".into(), code);
        }
    }
    let fields = <Fields<'static> as serde::Deserialize<'static>>::deserialize(Value::Object(map))
        .map_err(|e| format!("not a valid `{name}` body: {e}"))?;
    Ok((at, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_the_inner_object_of_its_line() {
        let body = parse_body(
            Kind::Reserve,
            r#"{"from":"1","to":"33612345678","message":"template","category":"utility","idempotency_key":"k","at":"2026-03-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            body.at,
            Some(Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap())
        );
        match body.line {
            Line::Reserve {
                idempotency_key, ..
            } => assert_eq!(idempotency_key.as_deref(), Some("k")),
            other => panic!("{other:?}"),
        }
        let forget = parse_body(Kind::Forget, r#"{"from":"1","user_id":"US.1"}"#).unwrap();
        assert!(matches!(forget.line, Line::Forget { .. }));
        let clear = parse_body(Kind::ClearSender, r#"{"from":"1"}"#).unwrap();
        assert!(matches!(clear.line, Line::ClearSender { .. }));
        let out = parse_body(
            Kind::OptOut,
            r#"{"from":"1","to":"33612345678","scope":"marketing"}"#,
        )
        .unwrap();
        assert!(matches!(
            out.line,
            Line::OptOut {
                scope: waguard::Scope::Marketing,
                ..
            }
        ));
    }

    #[test]
    fn bad_bodies_say_what_and_where() {
        let err = |kind, text| parse_body(kind, text).unwrap_err();
        assert!(err(Kind::Check, "{not json").contains("not valid JSON"));
        assert!(err(Kind::Check, "[1]").contains("`check` body"));
        assert!(err(
            Kind::Check,
            r#"{"from":"1","to":"33612345678","message":"free_form","idempotency_key":"k"}"#
        )
        .contains("`check.idempotency_key`"));
        assert!(err(
            Kind::Check,
            r#"{"from":"1","to":"33612345678","message":"free_form","teleport":1}"#
        )
        .contains("teleport"));
        assert!(err(
            Kind::Check,
            r#"{"from":"1","to":"33612345678","message":"free_form","at":"yesterday"}"#
        )
        .contains("`at`"));
        assert!(err(
            Kind::SendError,
            r#"{"from":"1","to":"33612345678","code":1,"error":{"code":131047}}"#
        )
        .contains("not both"));
        assert!(err(
            Kind::SendError,
            r#"{"from":"1","to":"33612345678","error":{"message":"x"}}"#
        )
        .contains("`send_error.error.code`"));
        assert!(err(
            Kind::Check,
            r#"{"from":"1","to":"33612345678","message":"free_form","error":{"code":1}}"#
        )
        .contains("error"));
    }
}
