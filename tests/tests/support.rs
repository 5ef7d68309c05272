//! Running the built `waguard` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `waguard` binary cargo built for this test run (the tests crate depends on
/// `waguard-cli`, so `cargo test` builds the binary into the same target directory).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test> -> target/<profile>/waguard
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join(format!("waguard{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "the waguard binary is missing at {}: build it with `cargo build -p waguard-cli` (scripts/test does)",
        bin.display()
    );
    bin
}

/// Runs `waguard ARGS`, feeding `stdin`.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(binary())
        .args(args)
        .env_remove("WAGUARD_APP_SECRET")
        .env_remove("WAGUARD_DB")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("waguard starts");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().expect("waguard finishes")
}

/// The JSON lines of an output.
pub fn answers(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The scenarios directory.
#[allow(dead_code)] // used by the scenario tests, not by every test that shares this module
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The PostgreSQL server the tests use: `WAGUARD_PG_URL`, default the local one `scripts/test`
/// starts.
#[allow(dead_code)] // used by the PostgreSQL tests, not by every test that shares this module
pub fn pg_url() -> String {
    std::env::var("WAGUARD_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Store flags for a fresh sled store in a temporary directory, and the directory (removed
/// when dropped).
#[allow(dead_code)] // used by the scenario tests, not by every test that shares this module
pub fn sled_flags() -> (Vec<String>, Option<Box<dyn std::any::Any>>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db").to_str().unwrap().to_owned();
    (vec!["--db".into(), db], Some(Box::new(dir)))
}

/// Drops a scenario's PostgreSQL schema when the scenario is done.
#[allow(dead_code)] // used by the scenario tests, not by every test that shares this module
pub struct DropSchema {
    /// The server.
    pub url: String,
    /// The schema to drop.
    pub schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let options =
                waguard_postgres::PostgresOptions::default().with_schema(self.schema.clone());
            if let Ok(store) =
                waguard_postgres::PostgresStore::connect_with(&self.url, options).await
            {
                let _ = store.drop_schema().await;
            }
        });
    }
}
