//! Every scenario through `waguard serve` as well as through `waguard replay`: each replay line
//! becomes its HTTP call (`--trust-client-time`, the line's `at` in the body or in the
//! `Waguard-Received-At` header), and the answers must be those of replay on a store of the same
//! kind, line by line, on memory, sled and PostgreSQL. The server is then stopped with SIGTERM
//! and must exit 0.

use waguard_test_support::http as client;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

const APP_SECRET: &str = "scenario-secret";
const TOKEN: &str = "scenario-token-0123456789";

/// A `waguard serve` child process on ephemeral loopback ports.
struct Served {
    child: Child,
    main: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(store: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
        let mut child = Command::new(support::binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--tokens-file")
            .arg(&tokens)
            .args(["--app-secret", APP_SECRET, "--verify-token", "verify-me"])
            .arg("--trust-client-time")
            .args(store)
            .env_remove("WAGUARD_APP_SECRET")
            .env_remove("WAGUARD_VERIFY_TOKEN")
            .env_remove("WAGUARD_TOKENS_FILE")
            .env_remove("WAGUARD_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("waguard serve starts");
        // The first stdout line names the main address once the server listens; reading
        // ends at EOF if the process exits instead.
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let main = match first.trim().rsplit("http://").next().map(str::parse) {
            Some(Ok(addr)) => addr,
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "waguard serve did not print its address: {first:?}, stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            }
        };
        Served {
            child,
            main,
            _dir: dir,
        }
    }

    /// SIGTERM, then the exit status (within 10 s) and stderr.
    fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                return (status.code(), stderr);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("waguard serve did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `/v1` path of each line kind that has one.
fn endpoint(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "check" => "/v1/check",
        "reserve" => "/v1/reserve",
        "send_error" => "/v1/send-errors",
        "opt_out" => "/v1/opt-outs",
        "opt_in" => "/v1/opt-ins",
        "forget" => "/v1/forget",
        "clear_sender" => "/v1/clear-sender",
        _ => return None,
    })
}

/// One line as its HTTP call; the answers it yields in replay's form (with `"line"`), or
/// `None` when the line has no HTTP form (not JSON, no `at`, no single known kind).
fn through_http(addr: SocketAddr, number: usize, text: &str) -> Option<Vec<Value>> {
    let fields: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let at: String = serde_json::from_str(fields.get("at")?.get()).ok()?;
    let kinds: Vec<&String> = fields
        .keys()
        .filter(|k| *k != "at" && *k != "signature")
        .collect();
    let [kind] = kinds.as_slice() else {
        return None;
    };
    let raw = fields[kind.as_str()].get();
    let answer = if let Some(path) = endpoint(kind) {
        if fields.contains_key("signature") {
            return None;
        }
        let mut body: Value = serde_json::from_str(raw).unwrap();
        if let Some(object) = body.as_object_mut() {
            object.insert("at".into(), json!(at));
        }
        let auth = format!("Bearer {TOKEN}");
        client::request(
            addr,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    } else {
        let (body, signature) = match kind.as_str() {
            "webhook" => (
                raw.to_owned(),
                Some(waguard_webhook::sign(raw.as_bytes(), APP_SECRET.as_bytes())),
            ),
            "webhook_raw" => {
                let body: String = serde_json::from_str(raw).ok()?;
                let signature = fields
                    .get("signature")
                    .map(|s| serde_json::from_str::<String>(s.get()).unwrap());
                (body, signature)
            }
            _ => return None,
        };
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Waguard-Received-At", at.as_str()),
        ];
        if let Some(signature) = &signature {
            headers.push(("X-Hub-Signature-256", signature));
        }
        client::request(addr, "POST", "/webhook", &headers, body.as_bytes())
    };
    let mut answers = vec![];
    match answer.status {
        200 if endpoint(kind).is_some() => {
            let mut decision = answer.json();
            decision
                .as_object_mut()
                .unwrap()
                .insert("line".into(), json!(number));
            answers.push(decision);
        }
        200 => {
            for item in answer.json()["errors"].as_array().unwrap() {
                answers.push(json!({"line": number, "error": item["error"], "path": item["path"]}));
            }
        }
        204 => {}
        // A store that cannot do what the line asks is an error answer in replay too.
        400 | 401 | 503 => answers.push(json!({"line": number, "error": answer.json()["error"]})),
        other => panic!("line {number}: HTTP {other}: {}", answer.body),
    }
    Some(answers)
}

/// Replays `input` with `waguard replay` on `replay_store` and through a server on `store`
/// (two fresh stores of the same kind); returns the differences.
fn compare(input: &Path, replay_store: &[&str], store: &[&str]) -> Vec<String> {
    let file = input.to_str().unwrap();
    let mut args = vec!["replay", "--app-secret", APP_SECRET];
    args.extend_from_slice(replay_store);
    args.push(file);
    let replayed = support::run(&args, None);
    let mut want: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for a in support::answers(&replayed) {
        want.entry(a["line"].as_u64().unwrap() as usize)
            .or_default()
            .push(a);
    }
    let served = Served::start(store);
    let mut got: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    let mut problems = vec![];
    let text = std::fs::read_to_string(input).unwrap();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match through_http(served.main, number, line) {
            Some(answers) if !answers.is_empty() => {
                got.insert(number, answers);
            }
            Some(_) => {}
            // No HTTP form: replay must have refused the line.
            None => match want.get(&number) {
                Some(answers) if answers.iter().all(|a| a.get("error").is_some()) => {
                    got.insert(number, answers.clone());
                }
                other => problems.push(format!(
                    "line {number} has no HTTP form but replay answered {other:?}"
                )),
            },
        }
    }
    let (status, stderr) = served.terminate();
    if status != Some(0) || !stderr.contains("stopped") {
        problems.push(format!(
            "after SIGTERM: exit status {status:?}, stderr: {stderr}"
        ));
    }
    let lines: std::collections::BTreeSet<usize> = want.keys().chain(got.keys()).copied().collect();
    for number in lines {
        let (w, g) = (want.get(&number), got.get(&number));
        let same = match (w, g) {
            (Some(w), Some(g)) => {
                w.len() == g.len() && w.iter().zip(g).all(|(w, g)| same_answer(w, g))
            }
            _ => false,
        };
        if !same {
            problems.push(format!("line {number}: replay {w:?}, serve {g:?}"));
        }
    }
    problems
}

/// Decisions must be equal; errors must both be errors, with the same path and text for
/// webhook items, and the same text when replay names a field (both read the fields with the
/// same code).
fn same_answer(want: &Value, got: &Value) -> bool {
    match (want.get("error"), got.get("error")) {
        (None, None) => want == got,
        (Some(w), Some(g)) => {
            if want.get("path").is_some() || w.as_str().is_some_and(|w| w.starts_with('`')) {
                w == g && want.get("path") == got.get("path")
            } else {
                g.as_str().is_some_and(|g| !g.is_empty())
            }
        }
        _ => false,
    }
}

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".ndjson") && !name.ends_with(".expected.ndjson")
        })
        .collect();
    files.sort();
    files
}

fn all(files: &[PathBuf], store: impl Fn(&str) -> (Vec<String>, Option<Box<dyn std::any::Any>>)) {
    let mut failures = vec![];
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (replay_flags, _keep_replay) = store(&format!("{name}_replay"));
        let (flags, _keep) = store(&name);
        let replay_flags: Vec<&str> = replay_flags.iter().map(String::as_str).collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        for p in compare(file, &replay_flags, &flags) {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn own_scenarios() -> Vec<PathBuf> {
    let files = scenario_files(&support::scenarios_dir());
    assert!(files.len() >= 10, "scenario files are missing: {files:?}");
    files
}

#[test]
fn serve_answers_as_replay_on_memory() {
    all(&own_scenarios(), |_| (vec!["--memory".into()], None));
}

#[test]
fn serve_answers_as_replay_on_sled() {
    all(&own_scenarios(), |_| support::sled_flags());
}

/// On PostgreSQL, each scenario in a schema of its own. Needs the server `scripts/test`
/// starts (`WAGUARD_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).
#[test]
fn serve_answers_as_replay_on_postgres() {
    let url = support::pg_url();
    let run = std::process::id();
    all(&own_scenarios(), |name| {
        let schema = format!("wg_serve_{run}_{}", name.replace('-', "_"));
        let flags = vec![
            "--postgres".into(),
            url.clone(),
            "--pg-schema".into(),
            schema.clone(),
        ];
        (
            flags,
            Some(Box::new(support::DropSchema {
                url: url.clone(),
                schema,
            })),
        )
    });
}

/// The shared examples of the replay contract, when they are beside the repository (CI always
/// puts them there).
#[test]
fn serve_answers_as_replay_on_the_shared_examples() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/scenarios");
    if !shared.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the shared examples at {}",
            shared.display()
        );
        eprintln!(
            "note: {} not found; shared examples not served",
            shared.display()
        );
        return;
    }
    let mut files = scenario_files(&shared);
    // The examples of this round's rules that waguard implements (as `scenarios.rs` lists them).
    for name in ["consent-after-erasure", "template-registry"] {
        files.push(shared.join("next").join(format!("{name}.ndjson")));
    }
    all(&files, |_| (vec!["--memory".into()], None));
}

/// `examples/python-client/client.py` against the built binary: allowed, reserved, refused by
/// its fake Cloud API, reported, then blocked (its exit status 0 says the story held).
#[test]
fn the_python_client_tells_its_story() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-client/client.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("WAGUARD_BIN", support::binary())
        .env_remove("WAGUARD_URL")
        .env_remove("WAGUARD_TOKEN")
        .env_remove("WAGUARD_TOKENS_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs (the example needs only its standard library)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("send-errors: 204"), "{stdout}");
    assert!(stdout.contains("'reason': 'undeliverable'"), "{stdout}");
}
