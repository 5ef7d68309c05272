//! One replay line, read and validated: every way a line can be wrong becomes an error message
//! that says what and where (design.md section 7).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use waguard::{BusinessId, ContactKey, Outgoing, Scope, TemplateCategory, TemplateName, Timestamp};

use crate::key::{business_from, key_from_parts};

mod body;

pub use body::{parse_body, Body, Kind};

/// A valid replay line.
#[derive(Debug)]
#[non_exhaustive]
pub enum Line<'a> {
    /// `check`: a read-only decision.
    Check {
        /// The template the message names (rules T1-T3), if any.
        template: Option<TemplateName>,
        /// The contact.
        key: ContactKey,
        /// The message to decide about.
        outgoing: Outgoing,
    },
    /// `reserve`: an atomic check-and-record.
    Reserve {
        /// The template the message names (rules T1-T3), if any.
        template: Option<TemplateName>,
        /// The contact.
        key: ContactKey,
        /// The message to reserve.
        outgoing: Outgoing,
        /// The caller's key for one logical message (G1).
        idempotency_key: Option<Cow<'a, str>>,
    },
    /// `send_error`: the error code of a synchronous send.
    SendError {
        /// The template the failed send named (rule T2), if any.
        template: Option<TemplateName>,
        /// The contact.
        key: ContactKey,
        /// Meta's error code.
        code: u32,
        /// The message id, if known (D2).
        wamid: Option<Cow<'a, str>>,
    },
    /// `opt_out`.
    OptOut {
        /// The contact.
        key: ContactKey,
        /// Which register (O1 or O2).
        scope: Scope,
    },
    /// `opt_in`.
    OptIn {
        /// The contact.
        key: ContactKey,
        /// Which register (O1 or O2).
        scope: Scope,
    },
    /// `forget`.
    Forget {
        /// The contact to erase (E4).
        key: ContactKey,
        /// Erase the consent registers too (`include_opt_out`, E4).
        include_opt_out: bool,
    },
    /// `clear_sender`.
    ClearSender {
        /// The business number whose restriction is lifted (S1).
        business: BusinessId,
    },
    /// `webhook`: a payload as received, verbatim JSON.
    Webhook {
        /// The payload's JSON text.
        body: &'a str,
    },
    /// `webhook_raw`: the exact body as a string, with its signature header.
    WebhookRaw {
        /// The body as received.
        body: Cow<'a, str>,
        /// The `X-Hub-Signature-256` header value.
        signature: Option<Cow<'a, str>>,
    },
}

/// A line with its instant.
#[derive(Debug)]
pub struct Timed<'a> {
    /// The `at` of the line.
    pub at: Timestamp,
    /// What the line asks.
    pub line: Line<'a>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(borrow, default)]
    at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    check: Option<Fields<'a>>,
    #[serde(borrow, default)]
    reserve: Option<Fields<'a>>,
    #[serde(borrow, default)]
    send_error: Option<Fields<'a>>,
    #[serde(borrow, default)]
    opt_out: Option<Fields<'a>>,
    #[serde(borrow, default)]
    opt_in: Option<Fields<'a>>,
    #[serde(borrow, default)]
    forget: Option<Fields<'a>>,
    #[serde(borrow, default)]
    clear_sender: Option<Fields<'a>>,
    #[serde(borrow, default)]
    webhook: Option<&'a RawValue>,
    #[serde(borrow, default)]
    webhook_raw: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
}

/// Every field any line kind takes; each kind then refuses the fields that are not its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    group_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    idempotency_key: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(borrow, default)]
    wamid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    scope: Option<Cow<'a, str>>,
    #[serde(default)]
    include_opt_out: Option<serde_json::Value>,
    #[serde(default)]
    template: Option<serde_json::Value>,
}

impl Fields<'_> {
    /// Refuses fields that `kind` does not take.
    fn only(&self, kind: &str, allowed: &[&str]) -> Result<(), String> {
        let present = [
            ("to", self.to.is_some()),
            ("user_id", self.user_id.is_some()),
            ("group_id", self.group_id.is_some()),
            ("message", self.message.is_some()),
            ("category", self.category.is_some()),
            ("idempotency_key", self.idempotency_key.is_some()),
            ("code", self.code.is_some()),
            ("wamid", self.wamid.is_some()),
            ("scope", self.scope.is_some()),
            ("include_opt_out", self.include_opt_out.is_some()),
            ("template", self.template.is_some()),
        ];
        match present
            .iter()
            .find(|(name, there)| *there && !allowed.contains(name))
        {
            Some((name, _)) => Err(format!(
                "`{kind}.{name}`: `{kind}` lines do not take `{name}`"
            )),
            None => Ok(()),
        }
    }
}

const CONTACT: [&str; 3] = ["to", "user_id", "group_id"];

const KINDS: &str =
    "check, reserve, send_error, opt_out, opt_in, forget, clear_sender, webhook or webhook_raw";

/// Reads one line. The error text says what is wrong and in which field.
///
/// ```
/// let line = r#"{"at": "2026-03-01T00:00:00Z", "check": {"from": "1", "to": "+33612345678", "message": "free_form"}}"#;
/// assert!(waguard_server::line::parse(line).is_ok());
/// assert!(waguard_server::line::parse("{not json").unwrap_err().contains("JSON"));
/// ```
pub fn parse(text: &str) -> Result<Timed<'_>, String> {
    let raw: RawLine<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            format!("not a valid replay line: {e} (a line holds `at` and one of {KINDS})")
        } else {
            format!("not valid JSON: {e}")
        }
    })?;
    let at =
        match raw.at.as_deref() {
            None => return Err(
                "missing `at`: every line needs an RFC 3339 instant such as 2026-03-01T00:00:00Z"
                    .into(),
            ),
            Some(at) => Timestamp::parse_rfc3339(at).map_err(|e| format!("`at`: {e}"))?,
        };
    from_raw(at, raw)
}

/// The line kind a [`RawLine`] holds, validated.
fn from_raw(at: Timestamp, raw: RawLine<'_>) -> Result<Timed<'_>, String> {
    let mut kinds = Vec::new();
    let mut line = None;
    if let Some(f) = raw.check {
        kinds.push("check");
        f.only(
            "check",
            &[CONTACT.as_slice(), &["message", "category", "template"]].concat(),
        )?;
        let outgoing = outgoing("check", &f)?;
        line = Some(Line::Check {
            key: contact_key("check", &f)?,
            template: template("check", &f, Some(outgoing))?,
            outgoing,
        });
    }
    if let Some(f) = raw.reserve {
        kinds.push("reserve");
        f.only(
            "reserve",
            &[
                CONTACT.as_slice(),
                &["message", "category", "idempotency_key", "template"],
            ]
            .concat(),
        )?;
        let key = contact_key("reserve", &f)?;
        let outgoing = outgoing("reserve", &f)?;
        line = Some(Line::Reserve {
            key,
            template: template("reserve", &f, Some(outgoing))?,
            outgoing,
            idempotency_key: f.idempotency_key,
        });
    }
    if let Some(f) = raw.send_error {
        kinds.push("send_error");
        f.only(
            "send_error",
            &[CONTACT.as_slice(), &["code", "wamid", "template"]].concat(),
        )?;
        let named = template("send_error", &f, None)?;
        let key = contact_key("send_error", &f)?;
        let code = match &f.code {
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|c| u32::try_from(c).ok()),
            Some(serde_json::Value::String(s)) => s.trim().parse::<u32>().ok(),
            _ => None,
        }
        .ok_or_else(|| match &f.code {
            None => "`send_error.code`: missing; give Meta's numeric error code, such as 131047".to_string(),
            Some(v) => format!("`send_error.code`: {v} is not an error code (a non-negative integer such as 131047)"),
        })?;
        line = Some(Line::SendError {
            key,
            template: named,
            code,
            wamid: f.wamid,
        });
    }
    for (name, fields, is_out) in [
        ("opt_out", raw.opt_out, true),
        ("opt_in", raw.opt_in, false),
    ] {
        if let Some(f) = fields {
            kinds.push(name);
            f.only(name, &[CONTACT.as_slice(), &["scope"]].concat())?;
            let key = contact_key(name, &f)?;
            let scope = match f.scope.as_deref() {
                None | Some("all") => Scope::All,
                Some("marketing") => Scope::Marketing,
                Some(other) => {
                    return Err(format!(
                        "`{name}.scope`: `{other}` is not a scope (use `all` or `marketing`)"
                    ))
                }
            };
            line = Some(if is_out {
                Line::OptOut { key, scope }
            } else {
                Line::OptIn { key, scope }
            });
        }
    }
    if let Some(f) = raw.forget {
        kinds.push("forget");
        f.only(
            "forget",
            &[CONTACT.as_slice(), &["include_opt_out"]].concat(),
        )?;
        let include_opt_out = match &f.include_opt_out {
            None => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "`forget.include_opt_out`: {other} is not true or false"
                ))
            }
        };
        line = Some(Line::Forget {
            key: contact_key("forget", &f)?,
            include_opt_out,
        });
    }
    if let Some(f) = raw.clear_sender {
        kinds.push("clear_sender");
        f.only("clear_sender", &[])?;
        line = Some(Line::ClearSender {
            business: business("clear_sender", &f.from)?,
        });
    }
    if let Some(body) = raw.webhook {
        kinds.push("webhook");
        line = Some(Line::Webhook { body: body.get() });
    }
    if let Some(body) = raw.webhook_raw {
        kinds.push("webhook_raw");
        line = Some(Line::WebhookRaw {
            body,
            signature: raw.signature,
        });
    } else if raw.signature.is_some() {
        return Err("`signature` belongs to `webhook_raw` lines only".into());
    }
    match (kinds.len(), line) {
        (1, Some(line)) => Ok(Timed { at, line }),
        (0, _) => Err(format!(
            "no line kind: a line holds `at` and one of {KINDS}"
        )),
        _ => Err(format!(
            "more than one line kind ({}): put each on its own line",
            kinds.join(", ")
        )),
    }
}

fn business(kind: &str, from: &Option<Cow<'_, str>>) -> Result<BusinessId, String> {
    business_from(&format!("{kind}."), from.as_deref())
}

fn contact_key(kind: &str, f: &Fields<'_>) -> Result<ContactKey, String> {
    key_from_parts(
        &format!("{kind}."),
        f.from.as_deref(),
        f.to.as_deref(),
        f.user_id.as_deref(),
        f.group_id.as_deref(),
    )
}

/// `template: {"name": N, "language": L}` (rules T1-T3); refused on free-form messages.
fn template(
    kind: &str,
    f: &Fields<'_>,
    outgoing: Option<Outgoing>,
) -> Result<Option<TemplateName>, String> {
    let Some(value) = &f.template else {
        return Ok(None);
    };
    if outgoing.is_some_and(|o| !o.is_template()) {
        return Err(format!(
            "`{kind}.template`: only template messages name a template"
        ));
    }
    let object = value.as_object().ok_or_else(|| {
        format!("`{kind}.template`: an object {{\"name\": ..., \"language\": ...}} is expected")
    })?;
    if let Some(other) = object.keys().find(|k| *k != "name" && *k != "language") {
        return Err(format!(
            "`{kind}.template.{}`: a template has only `name` and `language`",
            crate::answer::short(other)
        ));
    }
    let field = |name: &str| -> Result<&str, String> {
        object
            .get(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("`{kind}.template.{name}`: missing, or not a string"))
    };
    TemplateName::new(field("name")?, field("language")?)
        .map(Some)
        .map_err(|e| format!("`{kind}.template`: {e}"))
}

fn outgoing(kind: &str, m: &Fields<'_>) -> Result<Outgoing, String> {
    match (m.message.as_deref(), m.category.as_deref()) {
        (Some("free_form"), None) => Ok(Outgoing::FreeForm),
        (Some("free_form"), Some(_)) => Err(format!("`{kind}.category`: only template messages have a category")),
        (Some("template"), Some(category)) => Ok(Outgoing::Template(match category {
            "marketing" => TemplateCategory::Marketing,
            "utility" => TemplateCategory::Utility,
            "authentication" => TemplateCategory::Authentication,
            other => {
                return Err(format!(
                    "`{kind}.category`: `{other}` is not a template category (marketing, utility or authentication)"
                ))
            }
        })),
        (Some("template"), None) => Err(format!("`{kind}.category`: missing; a template needs marketing, utility or authentication")),
        (Some(other), _) => Err(format!("`{kind}.message`: `{other}` is not a message kind (free_form or template)")),
        (None, _) => Err(format!("`{kind}.message`: missing; give free_form or template")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn reads_every_kind() {
        let at = r#""at":"2026-03-01T00:00:00Z""#;
        let cases = [
            format!(r#"{{{at},"check":{{"from":"1","to":"+33612345678","message":"free_form"}}}}"#),
            format!(
                r#"{{{at},"reserve":{{"from":"1","user_id":"US.1","message":"template","category":"utility","idempotency_key":"k"}}}}"#
            ),
            format!(
                r#"{{{at},"send_error":{{"from":"1","group_id":"g1","code":131047,"wamid":"w"}}}}"#
            ),
            format!(r#"{{{at},"opt_out":{{"from":"1","to":"33612345678","scope":"marketing"}}}}"#),
            format!(r#"{{{at},"opt_in":{{"from":"1","to":"33612345678"}}}}"#),
            format!(r#"{{{at},"forget":{{"from":"1","to":"33612345678"}}}}"#),
            format!(
                r#"{{{at},"forget":{{"from":"1","to":"33612345678","include_opt_out":true}}}}"#
            ),
            format!(r#"{{{at},"clear_sender":{{"from":"1"}}}}"#),
            format!(r#"{{{at},"webhook":{{"object":"whatsapp_business_account","entry":[]}}}}"#),
            format!(r#"{{{at},"webhook_raw":"{{}}","signature":"sha256=00"}}"#),
        ];
        for case in &cases {
            parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
        }
    }

    #[test]
    fn bad_lines_say_what_and_where() {
        assert!(err("{not json").contains("not valid JSON"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","check":{"from":"1","to":"12345","message":"free_form"}}"#).contains("`to`"));
        assert!(
            err(r#"{"check":{"from":"1","to":"33612345678","message":"free_form"}}"#)
                .contains("`at`")
        );
        assert!(err(
            r#"{"at":"yesterday","check":{"from":"1","to":"33612345678","message":"free_form"}}"#
        )
        .contains("`at`"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","check":{"from":"1","to":"33612345678","message":"template"}}"#).contains("category"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","check":{"from":"1","to":"33612345678","message":"free_form","category":"utility"}}"#).contains("category"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","check":{"from":"1","to":"33612345678","message":"template","category":"promo"}}"#).contains("promo"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","check":{"from":"1","to":"33612345678","user_id":"US.1","message":"free_form"}}"#).contains("exactly one"));
        // K3: a parent id is never a key, on any line kind.
        for kind in ["check", "reserve"] {
            assert!(err(&format!(r#"{{"at":"2026-03-01T00:00:00Z","{kind}":{{"from":"1","user_id":"US.ENT.123","message":"free_form"}}}}"#)).contains("parent id"));
        }
        assert!(err(
            r#"{"at":"2026-03-01T00:00:00Z","opt_out":{"from":"1","user_id":"US.ENT.123"}}"#
        )
        .contains("parent id"));
        assert!(
            err(r#"{"at":"2026-03-01T00:00:00Z","forget":{"from":"1","user_id":"BR.ENT.9"}}"#)
                .contains("parent id")
        );
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","teleport":{}}"#).contains("teleport"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z"}"#).contains("no line kind"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","send_error":{"from":"1","to":"33612345678","code":-1}}"#).contains("code"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","opt_out":{"from":"1","to":"33612345678","scope":"some"}}"#).contains("scope"));
        assert!(err(r#"[1,2]"#).contains("replay line"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","forget":{"from":"1","to":"33612345678","include_opt_out":"yes"}}"#).contains("include_opt_out"));
        assert!(err(r#"{"at":"2026-03-01T00:00:00Z","opt_out":{"from":"1","to":"33612345678","include_opt_out":true}}"#).contains("include_opt_out"));
    }
}
