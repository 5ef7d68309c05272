//! Every scenario of `scenarios/` through the binary, on every store: the answers must match
//! the expected file field by field (instants compared as instants), and no other line may
//! answer.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

const APP_SECRET: &str = "scenario-secret";

fn instant(v: &Value) -> Option<i64> {
    v.as_str().map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("until `{s}` is not RFC 3339: {e}"))
            .timestamp_nanos_opt()
            .unwrap()
    })
}

/// Replays one scenario with the given store flags; returns the mismatches.
fn replay(input: &Path, store: &[&str]) -> Vec<String> {
    let expected_path = input.with_extension("").with_extension("expected.ndjson");
    let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut args = vec!["replay", "--app-secret", APP_SECRET];
    args.extend_from_slice(store);
    let file = input.to_str().unwrap();
    args.push(file);
    let out = support::run(&args, None);
    let mut got: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for a in support::answers(&out) {
        got.entry(a["line"].as_u64().expect("every answer has a line"))
            .or_default()
            .push(a);
    }
    let mut problems = vec![];
    let expects_error = expected.iter().any(|e| e.get("error").is_some());
    let code = out.status.code();
    if code != Some(if expects_error { 1 } else { 0 }) {
        problems.push(format!(
            "exit status {code:?}, stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for exp in &expected {
        let line = exp["line"].as_u64().unwrap();
        let Some(answers) = got.remove(&line) else {
            problems.push(format!("line {line}: no answer, want {exp}"));
            continue;
        };
        let first = &answers[0];
        if exp.get("error").is_some() {
            if first["error"].as_str().is_none_or(|e| e.is_empty()) {
                problems.push(format!("line {line}: want an error, got {first}"));
            }
            continue;
        }
        for field in ["decision", "allowed", "reason"] {
            if first[field] != exp[field] {
                problems.push(format!(
                    "line {line}: {field} differs: got {first}, want {exp}"
                ));
            }
        }
        if instant(&first["until"]) != instant(&exp["until"]) {
            problems.push(format!(
                "line {line}: until differs: got {first}, want {exp}"
            ));
        }
        if answers.len() > 1 {
            problems.push(format!(
                "line {line}: {} answers, want 1: {answers:?}",
                answers.len()
            ));
        }
    }
    for (line, answers) in got {
        problems.push(format!("line {line}: unexpected answer {answers:?}"));
    }
    problems
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(support::scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".ndjson") && !name.ends_with(".expected.ndjson")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "scenario files are missing: {files:?}");
    files
}

/// A fresh store per scenario: its flags, and what to keep alive (or clean up) until the
/// scenario ran.
type Fresh = (Vec<String>, Option<Box<dyn std::any::Any>>);

fn all_scenarios(store: impl Fn(&str) -> Fresh) {
    let mut failures = vec![];
    for file in scenario_files() {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (flags, _keep) = store(&name);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        for p in replay(&file, &flags) {
            failures.push(format!(
                "{}: {p}",
                file.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn scenarios_on_memory() {
    all_scenarios(|_| (vec!["--memory".into()], None));
}

#[test]
fn scenarios_on_sled() {
    all_scenarios(|_| support::sled_flags());
}

/// Every scenario on PostgreSQL, each in a schema of its own. Needs the server `scripts/test`
/// starts (`WAGUARD_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`); fails
/// loudly without it.
#[test]
fn scenarios_on_postgres() {
    let url = support::pg_url();
    let run = std::process::id();
    all_scenarios(|name| {
        let schema = format!("wg_scenario_{run}_{}", name.replace('-', "_"));
        let flags = vec![
            "--postgres".into(),
            url.clone(),
            "--pg-schema".into(),
            schema.clone(),
        ];
        let keep = support::DropSchema {
            url: url.clone(),
            schema,
        };
        (flags, Some(Box::new(keep)))
    });
}

/// The examples of `shared/scenarios/next` (rules revised this round) that this build
/// implements; the others join the list as their rules land.
const NEXT_EXAMPLES: [&str; 2] = ["consent-after-erasure", "template-registry"];

/// The shared examples of the replay contract, when they are beside the repository.
#[test]
fn shared_examples_match() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        // The shared examples live beside the repository, where CI always puts them; a clone
        // elsewhere has only the project's own scenarios above, which cover the same contract.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the shared examples at {}",
            shared.display()
        );
        eprintln!(
            "note: {} not found; shared examples not replayed",
            shared.display()
        );
        return;
    };
    let mut failures = vec![];
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    // The examples of this round's rules that waguard implements.
    for name in NEXT_EXAMPLES {
        paths.push(shared.join("next").join(format!("{name}.ndjson")));
    }
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".ndjson") && !name.ends_with(".expected.ndjson") {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("db");
            for store in [&["--memory"][..], &["--db", db.to_str().unwrap()]] {
                for p in replay(&path, store) {
                    // The shared bad-input example expects exit status 1 like ours.
                    failures.push(format!("{name} ({store:?}): {p}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
