//! `waguard export` and `waguard import`: NDJSON of every contact record and every sender
//! record (a business number's restrictions, rules S1-S3).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use waguard::{
    Batch, BusinessId, ContactKey, ConversationState, Policy, SenderState, Timestamp, UpdateAction,
};

use crate::answer::write_line;
use crate::{store, PolicyArgs, StoreArgs};

/// Flags of `waguard export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `waguard import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The import instant (RFC 3339), the bound of rule E5: no record may hold an instant
    /// later than it plus the policy's `max_clock_skew`. Default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// NDJSON written by `export`; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// One exported contact record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exported {
    key: String,
    state: ConversationState,
}

/// One exported sender record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedSender {
    business: String,
    sender: SenderState,
}

/// A line of an export file, as read: the record's parts before they are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    state: Option<serde_json::Value>,
    #[serde(default)]
    business: Option<String>,
    #[serde(default)]
    sender: Option<serde_json::Value>,
}

/// A checked line of an export file.
#[derive(Debug)]
enum Record {
    Contact(ContactKey, Box<ConversationState>),
    Sender(BusinessId, SenderState),
}

/// Writes every contact record as one JSON line.
pub async fn export(args: ExportArgs) -> Result<ExitCode> {
    let store = store::open_read_only(&args.store).await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut scan = store.scan();
    let mut count = 0usize;
    while let Some(item) = scan.next().await {
        let (key, bytes) = item.context("export stopped")?;
        let state = ConversationState::decode(&bytes)
            .with_context(|| format!("record of {key} cannot be decoded"))?;
        write_line(
            &mut out,
            &Exported {
                key: key.to_string(),
                state,
            },
        )?;
        count += 1;
    }
    let mut senders = 0usize;
    for (business, bytes) in store.all_senders().await.context("export stopped")? {
        let sender = SenderState::decode(&bytes)
            .with_context(|| format!("sender record of {business} cannot be decoded"))?;
        write_line(
            &mut out,
            &ExportedSender {
                business: business.to_string(),
                sender,
            },
        )?;
        senders += 1;
    }
    out.flush()?;
    eprintln!("waguard: exported {count} contact records and {senders} sender records");
    Ok(ExitCode::SUCCESS)
}

/// Merges exported records into the store (lattice join: importing twice changes nothing).
///
/// All or nothing: every line is read and checked first (JSON shape with no unknown field,
/// keys, ordered lists, and rule E5: no instant later than the import time plus the policy's
/// `max_clock_skew`), and only a file without a bad line is applied, in one store batch. A bad
/// file changes nothing, creates no store, and the error names its first bad line.
pub async fn import(args: ImportArgs) -> Result<ExitCode> {
    let mut reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?,
        ))
    };
    let policy = store::policy(&args.policy)?;
    let now = store::instant(args.at.as_deref())?;
    let mut records = Vec::new();
    let mut first_bad: Option<(usize, String)> = None;
    let mut bad = 0usize;
    let mut buffer = Vec::new();
    let mut number = 0usize;
    loop {
        buffer.clear();
        if reader
            .read_until(b'\n', &mut buffer)
            .with_context(|| format!("cannot read {}", args.file.display()))?
            == 0
        {
            break;
        }
        number += 1;
        let checked = match std::str::from_utf8(&buffer) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => check_line(text, now, &policy),
            Err(e) => Err(format!(
                "not UTF-8 text (invalid byte at column {})",
                e.valid_up_to() + 1
            )),
        };
        match checked {
            Ok(record) if first_bad.is_none() => records.push(record),
            Ok(_) => {}
            Err(message) => {
                bad += 1;
                if first_bad.is_none() {
                    first_bad = Some((number, message));
                    records = Vec::new(); // nothing will be applied
                }
            }
        }
    }
    if let Some((line, message)) = first_bad {
        let others = match bad - 1 {
            0 => String::new(),
            n => format!(" ({n} more bad lines after it)"),
        };
        anyhow::bail!(
            "import refused, nothing was imported: line {line}: {message}{others}; fix the file \
             (its lines are records as `export` writes them) and import it again"
        );
    }
    let contacts = records
        .iter()
        .filter(|r| matches!(r, Record::Contact(..)))
        .count();
    let senders = records.len() - contacts;
    let store = store::open(&args.store).await?;
    let mut batch = Batch::new();
    for record in &records {
        let policy = &policy;
        match record {
            Record::Contact(key, incoming) => {
                let record_key = waguard::RecordKey::Contact(key.clone());
                batch.contact(key.clone(), move |current, _sender| {
                    let mut state = match current {
                        Some(bytes) => ConversationState::decode(bytes).map_err(|source| {
                            waguard::StoreError::Decode {
                                record: record_key.clone(),
                                source,
                            }
                        })?,
                        None => ConversationState::default(),
                    };
                    state.merge(incoming, policy);
                    Ok(UpdateAction::Write(state.encode()))
                });
            }
            Record::Sender(business, incoming) => {
                let record_key = waguard::RecordKey::Sender(business.clone());
                batch.sender(business.clone(), move |current| {
                    let mut state = match current {
                        Some(bytes) => SenderState::decode(bytes).map_err(|source| {
                            waguard::StoreError::Decode {
                                record: record_key.clone(),
                                source,
                            }
                        })?,
                        None => SenderState::default(),
                    };
                    state.merge(incoming);
                    Ok(UpdateAction::Write(state.encode()))
                });
            }
        }
    }
    store
        .apply_batch(&mut batch)
        .await
        .context("import failed, nothing was imported")?;
    store.flush().await?;
    eprintln!("waguard: imported {contacts} contact records and {senders} sender records");
    Ok(ExitCode::SUCCESS)
}

const CONTACT_SHAPE: &str = r#"a contact record is {"key", "state"}"#;
const SENDER_SHAPE: &str = r#"a sender record is {"business", "sender"}"#;

/// Reads and checks one line of an export file; the error says what is wrong and where.
fn check_line(text: &str, now: Timestamp, policy: &Policy) -> Result<Record, String> {
    let raw: RawLine = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            format!("not a record as `export` writes it: {e} ({CONTACT_SHAPE}; {SENDER_SHAPE})")
        } else {
            format!("not valid JSON: {e}")
        }
    })?;
    match raw {
        RawLine {
            key: Some(key),
            state: Some(state),
            business: None,
            sender: None,
        } => {
            let key: ContactKey = key.parse().map_err(|e| format!("`key`: {e}"))?;
            let typed = typed::<ConversationState>("state", "contact state", &state)?;
            // The stored form checks the lists (ordered, no repeats): a record that does not
            // come back the same from it is not one the state machine writes.
            match ConversationState::decode(&typed.encode()) {
                Ok(back) if back == typed => {}
                Ok(_) => {
                    return Err(
                        "`state`: its lists are out of order or hold repeated entries \
                                (export writes them sorted)"
                            .into(),
                    )
                }
                Err(e) => return Err(format!("`state`: {e}")),
            }
            not_later(&typed, "state", now, policy)?;
            Ok(Record::Contact(key, Box::new(typed)))
        }
        RawLine {
            key: None,
            state: None,
            business: Some(business),
            sender: Some(sender),
        } => {
            let business = BusinessId::parse(&business)
                .map_err(|e| format!("`business`: {}", e.with_field("business")))?;
            let typed = typed::<SenderState>("sender", "sender state", &sender)?;
            not_later(&typed, "sender", now, policy)?;
            Ok(Record::Sender(business, typed))
        }
        RawLine {
            key: Some(_),
            state: None,
            business: None,
            sender: None,
        } => Err(format!("`state`: missing; {CONTACT_SHAPE}")),
        RawLine {
            key: None,
            state: Some(_),
            business: None,
            sender: None,
        } => Err(format!("`key`: missing; {CONTACT_SHAPE}")),
        RawLine {
            key: None,
            state: None,
            business: Some(_),
            sender: None,
        } => Err(format!("`sender`: missing; {SENDER_SHAPE}")),
        RawLine {
            key: None,
            state: None,
            business: None,
            sender: Some(_),
        } => Err(format!("`business`: missing; {SENDER_SHAPE}")),
        RawLine {
            key: None,
            state: None,
            business: None,
            sender: None,
        } => Err(format!("an empty record: {CONTACT_SHAPE}; {SENDER_SHAPE}")),
        RawLine { .. } => Err(format!(
            "a line holds one record, not the fields of both kinds: {CONTACT_SHAPE}; {SENDER_SHAPE}"
        )),
    }
}

/// Reads `value` (the `field` of a line) as a `T`, refusing any field `T` does not have, at
/// any depth: what `T` writes back must name every field the line had.
fn typed<T: Serialize + serde::de::DeserializeOwned>(
    field: &str,
    what: &str,
    value: &serde_json::Value,
) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("`{field}` is not a {what} as `export` writes it: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("`{field}`: {e}"))?;
    match unknown_field(value, &back, field) {
        Some(path) => Err(format!(
            "`{path}`: unknown field; a {what} has only the fields `export` writes"
        )),
        None => Ok(typed),
    }
}

/// The path of the first field of `input` that `known` (the same value written back by its
/// type) does not have.
fn unknown_field(
    input: &serde_json::Value,
    known: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => input.iter().find_map(|(name, value)| {
            let path = format!("{path}.{name}");
            match known.get(name) {
                None => Some(path),
                Some(known) => unknown_field(value, known, &path),
            }
        }),
        (Value::Array(input), Value::Array(known)) => input
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (value, known))| unknown_field(value, known, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Rule E5 for imports: refuses a record holding an instant later than the import time plus
/// `max_clock_skew` (the pair budget's arrival time may run ahead by one full burst).
fn not_later(
    record: &impl Serialize,
    field: &str,
    now: Timestamp,
    policy: &Policy,
) -> Result<(), String> {
    let value = serde_json::to_value(record).map_err(|e| format!("`{field}`: {e}"))?;
    let bound = now.saturating_add(policy.max_clock_skew);
    let burst = policy
        .pair_rate
        .interval
        .saturating_mul(policy.pair_rate.burst);
    let budget_bound = bound.saturating_add(burst);
    let mut instants = Vec::new();
    collect_instants(&value, field, &mut instants);
    for (path, instant) in instants {
        let limit = if path.ends_with(".pair_budget_tat") {
            budget_bound
        } else {
            bound
        };
        if instant > limit {
            return Err(format!(
                "`{path}`: {instant} is later than the import time {now} plus `max_clock_skew` \
                 ({} s); rule E5 refuses records from the future (check the clock of the \
                 machine that wrote them, or import with a later `--at`)",
                policy.max_clock_skew.as_secs()
            ));
        }
    }
    Ok(())
}

/// Every instant (an RFC 3339 string, as [`Timestamp`] writes itself) in `value`, with its
/// path.
fn collect_instants(value: &serde_json::Value, path: &str, out: &mut Vec<(String, Timestamp)>) {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let Ok(instant) = Timestamp::parse_rfc3339(text) {
                out.push((path.to_string(), instant));
            }
        }
        Value::Object(map) => {
            for (name, value) in map {
                collect_instants(value, &format!("{path}.{name}"), out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                collect_instants(value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap()
    }

    fn check(text: &str) -> Result<Record, String> {
        check_line(text, now(), &Policy::default())
    }

    fn exported_contact(out_at: &str) -> String {
        let mut state = ConversationState::default();
        state.apply(
            &waguard::Event::OptOut {
                at: Timestamp::parse_rfc3339(out_at).unwrap(),
                scope: waguard::Scope::All,
            },
            &Policy::default(),
        );
        serde_json::to_string(&Exported {
            key: "100000001/p:33612345678".into(),
            state,
        })
        .unwrap()
    }

    #[test]
    fn an_exported_record_is_read_back() {
        assert!(matches!(
            check(&exported_contact("2026-02-28T00:00:00Z")),
            Ok(Record::Contact(..))
        ));
        let sender = serde_json::to_string(&ExportedSender {
            business: "100000001".into(),
            sender: SenderState::default(),
        })
        .unwrap();
        assert!(matches!(check(&sender), Ok(Record::Sender(..))));
    }

    #[test]
    fn unknown_fields_are_refused_at_any_depth() {
        let line = exported_contact("2026-02-28T00:00:00Z");
        let top = line.replacen('{', r#"{"extra":1,"#, 1);
        assert!(check(&top).unwrap_err().contains("extra"), "{top}");
        let nested = line.replace(r#""opt_all":{"#, r#""opt_all":{"sneaky":true,"#);
        assert_ne!(nested, line);
        let e = check(&nested).unwrap_err();
        assert!(e.contains("`state.opt_all.sneaky`: unknown field"), "{e}");
    }

    #[test]
    fn an_empty_state_says_what_is_missing_in_words() {
        let e = check(r#"{"key":"100000001/p:33612345678","state":{}}"#).unwrap_err();
        assert!(e.contains("`state` is not a contact state"), "{e}");
        assert!(e.contains("missing field"), "{e}");
        assert!(!e.contains("untagged"), "{e}");
        let e = check(r#"{"key":"100000001/p:33612345678"}"#).unwrap_err();
        assert!(e.contains("`state`: missing"), "{e}");
        let e = check(r#"{"key":"nonsense","state":{}}"#).unwrap_err();
        assert!(e.contains("`key`"), "{e}");
    }

    #[test]
    fn an_instant_beyond_the_import_time_plus_the_skew_is_refused() {
        // Five minutes of skew by default: 4 minutes ahead passes, 6 minutes ahead does not.
        assert!(check(&exported_contact("2026-03-01T00:04:00Z")).is_ok());
        let e = check(&exported_contact("2026-03-01T00:06:00Z")).unwrap_err();
        assert!(
            e.contains("`state.") && e.contains("00:06:00Z") && e.contains("E5"),
            "{e}"
        );
        let e = check(&exported_contact("2255-01-01T00:00:00Z")).unwrap_err();
        assert!(e.contains("2255"), "{e}");
    }

    #[test]
    fn lists_out_of_order_are_refused() {
        let line = exported_contact("2026-02-28T00:00:00Z");
        let attempts = r#""attempts":[{"key_hash":2,"first_at":"2026-02-01T00:00:00Z","count":1},{"key_hash":1,"first_at":"2026-02-01T00:00:00Z","count":1}]"#;
        let unordered = line.replace(r#""attempts":[]"#, attempts);
        assert_ne!(unordered, line);
        let e = check(&unordered).unwrap_err();
        assert!(e.contains("`state`"), "{e}");
    }
}
