//! The command line beyond the scenarios: exit statuses, stores, signatures, subcommands.

mod support;

use std::process::{Command, Stdio};

use support::{answers, binary, run};

const INBOUND: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000001","phone_number_id":"100000001"},"messages":[{"from":"33612345678","id":"wamid.cli.1","timestamp":"1772323200","type":"text","text":{"body":"hi"}}]}}]}]}"#;
const RESTRICTED: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000001","phone_number_id":"100000001"},"statuses":[{"id":"wamid.cli.2","status":"failed","timestamp":"1772325000","recipient_id":"33612345678","errors":[{"code":368,"title":"Temporarily blocked for policies violations"}]}]}}]}]}"#;
const CHECK: &str = r#"{"at":"2026-03-01T00:00:01Z","check":{"from":"100000001","to":"33612345678","message":"free_form"}}"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn exit_0_when_every_line_applied_and_1_when_one_failed() {
    let ok = run(&["replay", "--memory", "-"], Some(CHECK.as_bytes()));
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let input = format!("{CHECK}\n{{broken\n");
    let bad = run(&["replay", "--memory", "-"], Some(input.as_bytes()));
    assert_eq!(bad.status.code(), Some(1));
    let a = answers(&bad);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1]["line"], 2);
    assert!(a[1]["error"].as_str().unwrap().contains("JSON"));
}

#[test]
fn exit_2_when_replay_cannot_run() {
    let missing = run(&["replay", "--memory", "/nonexistent/input.ndjson"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/input.ndjson"));
    assert_eq!(
        stderr(&missing).trim().lines().count(),
        1,
        "one line on stderr"
    );
    let flags = run(&["replay", "--memory", "--db", "x", "-"], Some(b""));
    assert_eq!(flags.status.code(), Some(2));
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "max_attempts = 0\n").unwrap();
    let bad_policy = run(
        &[
            "replay",
            "--memory",
            "--policy",
            policy.path().to_str().unwrap(),
            "-",
        ],
        Some(b""),
    );
    assert_eq!(bad_policy.status.code(), Some(2));
    assert!(
        stderr(&bad_policy).contains("max_attempts"),
        "{}",
        stderr(&bad_policy)
    );
}

#[test]
fn a_locked_sled_directory_is_a_one_line_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    // The first process holds the directory while it waits for stdin.
    let mut holder = Command::new(binary())
        .args(["replay", "--db", db, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the holder has opened the store.
    for _ in 0..200 {
        if std::path::Path::new(db).join("conf").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let second = run(&["replay", "--db", db, "-"], Some(CHECK.as_bytes()));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(stderr(&second).contains(db), "{}", stderr(&second));
    assert_eq!(stderr(&second).trim().lines().count(), 1);
}

#[test]
fn default_store_is_the_sled_directory_waguard_db_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args(["replay", "-"])
        .current_dir(dir.path())
        .env_remove("WAGUARD_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            r#"{{"at":"2026-03-01T00:00:00Z","webhook":{INBOUND}}}"#
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("waguard.db"));
    assert!(dir.path().join("waguard.db").is_dir());
    // The state persisted: a second run sees the open window.
    let again = Command::new(binary())
        .args(["replay", "-"])
        .current_dir(dir.path())
        .env_remove("WAGUARD_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut again = again;
    {
        use std::io::Write;
        writeln!(again.stdin.take().unwrap(), "{CHECK}").unwrap();
    }
    let out = again.wait_with_output().unwrap();
    assert_eq!(answers(&out)[0]["decision"], "free_form");
}

#[test]
fn webhook_raw_is_applied_only_with_a_valid_signature() {
    let body = serde_json::to_string(INBOUND).unwrap();
    let good = waguard_webhook::sign(INBOUND.as_bytes(), b"s3cret");
    let line = |sig: &str| {
        format!(r#"{{"at":"2026-03-01T00:00:00Z","webhook_raw":{body},"signature":"{sig}"}}"#)
    };
    // Wrong signature: an error answer, nothing applied.
    let input = format!(
        "{}\n{CHECK}\n",
        line("sha256=0000000000000000000000000000000000000000000000000000000000000000")
    );
    let out = run(
        &["replay", "--memory", "--app-secret", "s3cret", "-"],
        Some(input.as_bytes()),
    );
    let a = answers(&out);
    assert!(a[0]["error"].as_str().unwrap().contains("nothing"), "{a:?}");
    assert_eq!(a[1]["reason"], "first_contact");
    // Missing secret: an error answer.
    let input = format!("{}\n{CHECK}\n", line(&good));
    let out = run(&["replay", "--memory", "-"], Some(input.as_bytes()));
    assert!(answers(&out)[0]["error"]
        .as_str()
        .unwrap()
        .contains("app secret"));
    // Right signature: applied.
    let out = run(
        &["replay", "--memory", "--app-secret", "s3cret", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(answers(&out)[0]["decision"], "free_form");
    // Uppercase hex is accepted too (H2).
    let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
    let input = format!("{}\n{CHECK}\n", line(&upper));
    let out = run(
        &["replay", "--memory", "--app-secret", "s3cret", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(answers(&out)[0]["decision"], "free_form");
}

/// `waguard check --db DB --from 100000001 --to TO --message free_form --at AT`.
fn check_free_form(db: &str, to: &str, at: &str) -> std::process::Output {
    run(
        &[
            "check",
            "--db",
            db,
            "--from",
            "100000001",
            "--to",
            to,
            "--message",
            "free_form",
            "--at",
            at,
        ],
        None,
    )
}

/// Writes `body` to `path` and runs `waguard ingest` on it, signed with the app secret `k`.
fn ingest_signed(db: &str, path: &std::path::Path, body: &str) -> std::process::Output {
    std::fs::write(path, body).unwrap();
    let sig = waguard_webhook::sign(body.as_bytes(), b"k");
    run(
        &[
            "ingest",
            "--db",
            db,
            "--app-secret",
            "k",
            "--signature",
            &sig,
            path.to_str().unwrap(),
        ],
        None,
    )
}

#[test]
fn check_show_forget_export_import_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let body = dir.path().join("body.json");
    let ingest = ingest_signed(db, &body, INBOUND);
    assert_eq!(ingest.status.code(), Some(0), "{}", stderr(&ingest));
    assert_eq!(answers(&ingest)[0]["events"], 1);
    let bad_sig = run(
        &[
            "ingest",
            "--db",
            db,
            "--app-secret",
            "k",
            "--signature",
            "sha256=00",
            body.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(bad_sig.status.code(), Some(2));

    let check = check_free_form(db, "+33 6 12 34 56 78", "2026-03-01T01:00:00Z");
    let a = &answers(&check)[0];
    assert_eq!(a["decision"], "free_form");
    assert_eq!(a["until"], "2026-03-02T00:00:00Z");

    let show = run(
        &[
            "show",
            "--db",
            db,
            "--from",
            "100000001",
            "--to",
            "33612345678",
            "--at",
            "2026-03-01T01:00:00Z",
        ],
        None,
    );
    let shown = &answers(&show)[0];
    assert_eq!(shown["state"]["last_inbound"], "2026-03-01T00:00:00Z");
    assert_eq!(shown["decisions"]["marketing"]["allowed"], true);

    // A send to the contact failed with 368: the business number is restricted (rule S1), a
    // sender record that export and import must carry too.
    let ingest = ingest_signed(db, &dir.path().join("restricted.json"), RESTRICTED);
    assert_eq!(ingest.status.code(), Some(0), "{}", stderr(&ingest));

    let export = run(&["export", "--db", db], None);
    let exported = String::from_utf8(export.stdout.clone()).unwrap();
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(exported.contains("100000001/p:33612345678"));
    assert!(exported.contains(r#""business":"100000001""#), "{exported}");
    assert!(stderr(&export).contains("1 contact records and 1 sender records"));

    let other = dir.path().join("other");
    let file = dir.path().join("backup.ndjson");
    std::fs::write(&file, &exported).unwrap();
    let import = run(
        &[
            "import",
            "--db",
            other.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(import.status.code(), Some(0), "{}", stderr(&import));
    let check_other = check_free_form(
        other.to_str().unwrap(),
        "33612345678",
        "2026-03-01T01:00:00Z",
    );
    assert_eq!(answers(&check_other)[0]["decision"], "blocked");
    assert_eq!(answers(&check_other)[0]["reason"], "sender_restricted");
    let show_other = run(
        &[
            "show",
            "--db",
            other.to_str().unwrap(),
            "--from",
            "100000001",
            "--to",
            "33612345678",
            "--at",
            "2026-03-01T01:00:00Z",
        ],
        None,
    );
    assert_eq!(
        answers(&show_other)[0]["state"]["last_inbound"],
        "2026-03-01T00:00:00Z"
    );

    let forget = run(
        &[
            "forget",
            "--db",
            db,
            "--from",
            "100000001",
            "--to",
            "33612345678",
            "--at",
            "2026-03-01T02:00:00Z",
        ],
        None,
    );
    assert_eq!(forget.status.code(), Some(0), "{}", stderr(&forget));
    // The contact's record is gone (the business number's restriction stays: it is not the
    // contact's data, and S1 is reported before anything about the contact).
    let after = run(
        &[
            "show",
            "--db",
            db,
            "--from",
            "100000001",
            "--to",
            "33612345678",
            "--at",
            "2026-03-01T03:00:00Z",
        ],
        None,
    );
    let after = &answers(&after)[0];
    assert_eq!(
        after["state"]["last_inbound"],
        serde_json::Value::Null,
        "{after}"
    );
    assert_eq!(
        after["decisions"]["free_form"]["reason"], "sender_restricted",
        "{after}"
    );

    let bad_phone = run(
        &[
            "check",
            "--memory",
            "--from",
            "100000001",
            "--to",
            "12345",
            "--message",
            "free_form",
        ],
        None,
    );
    assert_eq!(bad_phone.status.code(), Some(2));
    assert!(stderr(&bad_phone).contains("12345"));

    for format in ["toml", "json"] {
        let policy = run(&["policy", "--format", format], None);
        assert_eq!(policy.status.code(), Some(0));
        let path = dir.path().join(format!("policy.{format}"));
        std::fs::write(&path, &policy.stdout).unwrap();
        let used = run(
            &[
                "check",
                "--memory",
                "--policy",
                path.to_str().unwrap(),
                "--from",
                "1",
                "--to",
                "33612345678",
                "--message",
                "free_form",
            ],
            None,
        );
        assert_eq!(used.status.code(), Some(0), "{format}: {}", stderr(&used));
    }
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "replay", "check", "ingest", "show", "forget", "export", "import", "policy",
    ] {
        let help = run(&[sub, "--help"], None);
        let text = String::from_utf8_lossy(&help.stdout);
        assert_eq!(help.status.code(), Some(0));
        assert!(
            text.contains("Example"),
            "{sub} --help has no example:\n{text}"
        );
    }
}

/// `waguard templates` lists the registry after a replay: each template's status, category and
/// what rule T1 answers at `--at`.
#[test]
fn templates_lists_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let scenario = support::scenarios_dir().join("templates.ndjson");
    let replayed = run(&["replay", "--db", db, scenario.to_str().unwrap()], None);
    assert_eq!(replayed.status.code(), Some(1), "{}", stderr(&replayed));
    let listed = run(
        &["templates", "--db", db, "--at", "2026-01-01T21:30:00Z"],
        None,
    );
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let lines = answers(&listed);
    let find = |name: &str| {
        lines
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {lines:?}"))
    };
    assert_eq!(find("receipt")["refusal"]["reason"], "template_disabled");
    assert_eq!(find("promo")["refusal"]["until"], "2026-01-02T00:00:00Z");
    assert_eq!(find("notice")["status"], serde_json::Value::Null);
    assert_eq!(find("notice")["category"], "marketing");
    // Read-only: a missing store is an error, not a new empty one.
    let missing = dir.path().join("typo.db");
    let refused = run(&["templates", "--db", missing.to_str().unwrap()], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(!missing.exists());
}
