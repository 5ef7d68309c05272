//! Commands that only read never create a store; imports are checked whole before anything is
//! written; replay goes on past bad bytes.

mod support;

use support::{answers, run};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const OPT_OUT: &str =
    r#"{"at":"2026-03-01T00:00:00Z","opt_out":{"from":"100000001","to":"33612345678"}}"#;

fn check_args(db: &str) -> Vec<&str> {
    vec![
        "check",
        "--db",
        db,
        "--from",
        "100000001",
        "--to",
        "33612345678",
        "--message",
        "template",
        "--category",
        "utility",
        "--at",
        "2026-03-01T01:00:00Z",
    ]
}

#[test]
fn commands_that_only_read_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db");
    let typo = typo.to_str().unwrap();
    let show = [
        "show",
        "--db",
        typo,
        "--from",
        "100000001",
        "--to",
        "33612345678",
    ];
    for args in [
        check_args(typo),
        show.to_vec(),
        vec!["export", "--db", typo],
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("no store at") && err.contains("typo.db"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} answered");
        assert!(!dir.path().join("typo.db").exists(), "{args:?} created it");
    }
    // A directory without sled's `db` file is no store either.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(&check_args(empty.to_str().unwrap()), None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sled database"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // The store exists once a command that writes made it.
    let real = dir.path().join("real");
    let real = real.to_str().unwrap();
    let replay = run(&["replay", "--db", real], Some(OPT_OUT.as_bytes()));
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    let out = run(&check_args(real), None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(answers(&out)[0]["allowed"], false);
}

fn export_of(db: &str) -> String {
    let export = run(&["export", "--db", db], None);
    assert_eq!(export.status.code(), Some(0), "{}", stderr(&export));
    String::from_utf8(export.stdout).unwrap()
}

#[test]
fn a_bad_import_file_changes_nothing_and_names_its_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let source = source.to_str().unwrap();
    let lines: String = (0..3)
        .map(|i| {
            format!(
                "{{\"at\":\"2026-03-01T00:00:00Z\",\"opt_out\":{{\"from\":\"100000001\",\"to\":\"3361234567{i}\"}}}}\n"
            )
        })
        .collect();
    let replay = run(&["replay", "--db", source], Some(lines.as_bytes()));
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    let exported = export_of(source);
    let good: Vec<&str> = exported.lines().collect();
    assert_eq!(good.len(), 3, "{exported}");

    let target = dir.path().join("target");
    let target_s = target.to_str().unwrap();
    let file = dir.path().join("import.ndjson");
    let at = "2026-03-01T00:00:00Z";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}\n{{\"key\": \n{}\n", good[0], good[1]),
            "line 2: not valid JSON",
        ),
        (
            format!(
                "{}\n{}\n",
                good[0],
                good[1].replacen('{', r#"{"note":"x","#, 1)
            ),
            "line 2",
        ),
        (
            format!(
                "{}\n{}\n",
                good[0],
                good[1].replace(r#""opt_all":{"#, r#""opt_all":{"extra":1,"#)
            ),
            "`state.opt_all.extra`: unknown field",
        ),
        (
            format!(
                "{}\n{{\"key\":\"100000001/p:33612345679\",\"state\":{{}}}}\n",
                good[0]
            ),
            "line 2: `state` is not a contact state",
        ),
        (
            format!(
                "{}\n{}\n",
                good[0],
                good[1].replace("2026-03-01T00:00:00Z", "2255-01-01T00:00:00Z")
            ),
            "E5",
        ),
        (format!("{}\n\n{}\n", good[0], "[1,2]"), "line 3"),
    ];
    for (text, expected) in &cases {
        std::fs::write(&file, text).unwrap();
        let out = run(
            &[
                "import",
                "--db",
                target_s,
                "--at",
                at,
                file.to_str().unwrap(),
            ],
            None,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(!err.contains("untagged"), "{err}");
        assert!(
            !target.exists(),
            "a refused import created the store: {text}"
        );
    }

    // A good file is applied whole.
    std::fs::write(&file, &exported).unwrap();
    let out = run(
        &[
            "import",
            "--db",
            target_s,
            "--at",
            at,
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(export_of(target_s), exported);
    // And a bad file after it changes nothing of what is there.
    std::fs::write(
        &file,
        format!("{}\n{{}}\n", good[0].replace("33612345670", "33612345677")),
    )
    .unwrap();
    let out = run(
        &[
            "import",
            "--db",
            target_s,
            "--at",
            at,
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(export_of(target_s), exported);
}

#[test]
fn replay_goes_on_past_a_line_that_is_not_utf8_and_exits_1() {
    let mut input =
        b"{\"at\":\"2026-03-01T00:00:00Z\",\"opt_out\":{\"from\":\"1\xff\"}}\n".to_vec();
    input.extend_from_slice(OPT_OUT.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(
        br#"{"at":"2026-03-01T00:01:00Z","check":{"from":"100000001","to":"33612345678","message":"free_form"}}"#,
    );
    let out = run(&["replay", "--memory"], Some(&input));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let answers = answers(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["line"], 1);
    assert!(answers[0]["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(answers[1]["line"], 3);
    assert_eq!(answers[1]["allowed"], false);
}

#[test]
fn a_store_error_says_its_cause_once_with_advice_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let out = run(&["replay", "--db", file.to_str().unwrap()], Some(b""));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    assert_eq!(err.matches("not-a-directory").count(), 1, "{err}");
    assert!(err.contains("read and write"), "{err}");
    assert!(!err.contains("retry"), "{err}");
}

#[test]
fn verify_finds_damage_and_repair_accepts_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store");
    let db_s = db.to_str().unwrap();
    let lines: String = (0..200)
        .map(|i| {
            format!(
                "{{\"at\":\"2026-03-01T00:00:00Z\",\"opt_out\":{{\"from\":\"100000001\",\"to\":\"33612{i:06}\"}}}}\n"
            )
        })
        .collect();
    let replay = run(&["replay", "--db", db_s], Some(lines.as_bytes()));
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    let sound = run(&["verify", "--db", db_s], None);
    assert_eq!(sound.status.code(), Some(0), "{}", stderr(&sound));
    assert_eq!(answers(&sound)[0]["contacts"], 200);

    // A copy whose sled data file is emptied: sled cannot open it, not even to accept the
    // loss, and says what to do.
    let emptied = dir.path().join("emptied");
    std::fs::create_dir(&emptied).unwrap();
    for entry in std::fs::read_dir(&db).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), emptied.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(emptied.join("db"), b"").unwrap();
    for args in [vec!["verify"], vec!["verify", "--repair"]] {
        let mut args = args;
        args.extend(["--db", emptied.to_str().unwrap()]);
        let out = run(&args, None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("damaged") && err.contains("restore"), "{err}");
    }

    // The journal is deleted: the writes since the last checkpoint could be gone with it.
    std::fs::remove_file(db.join("waguard-journal")).unwrap();
    let found = run(&["verify", "--db", db_s], None);
    let err = stderr(&found);
    assert_eq!(found.status.code(), Some(1), "{err}");
    assert!(
        err.contains("journal file (waguard-journal) is missing"),
        "{err}"
    );
    let refused = run(&["export", "--db", db_s], None);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("verify --repair"),
        "{}",
        stderr(&refused)
    );
    let repair = run(&["verify", "--db", db_s, "--repair"], None);
    let err = stderr(&repair);
    assert_eq!(repair.status.code(), Some(0), "{err}");
    assert!(err.contains("repaired") && err.contains("export"), "{err}");
    assert_eq!(answers(&repair)[0]["repaired"], true);
    let after = run(&["verify", "--db", db_s], None);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    let export = run(&["export", "--db", db_s], None);
    assert_eq!(export.status.code(), Some(0), "{}", stderr(&export));
    // The store was closed cleanly: sled held every record, nothing was lost.
    assert_eq!(String::from_utf8_lossy(&export.stdout).lines().count(), 200);
}
