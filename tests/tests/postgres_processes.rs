//! Two `waguard` processes reserving on one PostgreSQL database at once: the portfolio's
//! messaging limit (rule L3) holds across processes, and every count has its reservation.
//!
//! Needs the server `scripts/test` starts (`WAGUARD_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); fails loudly without it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use waguard::{PortfolioState, RegistryKey, Store};
use waguard_postgres::{PostgresOptions, PostgresStore};

const LIMIT: usize = 40;
const PER_PROCESS: usize = 60;

/// The replay line that sets the account's portfolio limit (L2).
fn limit_line() -> String {
    format!(
        r#"{{"at": "2026-01-01T00:00:00Z", "webhook": {{"object": "whatsapp_business_account", "entry": [{{"id": "900000001", "time": 1767225600, "changes": [{{"field": "business_capability_update", "value": {{"max_daily_conversations_per_business": {LIMIT}}}}}]}}]}}}}"#
    ) + "\n"
        // T4: the number belongs to the account (a status webhook carrying its metadata).
        + r#"{"at": "2026-01-01T00:00:01Z", "webhook": {"object": "whatsapp_business_account", "entry": [{"id": "900000001", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000001", "phone_number_id": "100000001"}, "statuses": [{"id": "wamid.x", "status": "delivered", "timestamp": "1767225601", "recipient_id": "33612300000"}]}}]}]}}"#
        + "\n"
}

/// `PER_PROCESS` template reservations to users no other process names.
fn reservations(process: usize) -> String {
    (0..PER_PROCESS)
        .map(|n| {
            format!(
                r#"{{"at": "2026-01-01T00:10:00Z", "reserve": {{"from": "100000001", "to": "3361{process}{n:06}", "message": "template", "category": "utility"}}}}"#
            ) + "\n"
        })
        .collect()
}

fn replay_args(schema: &str) -> Vec<String> {
    vec![
        "replay".into(),
        "--postgres".into(),
        support::pg_url(),
        "--pg-schema".into(),
        schema.into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_take_more_than_the_limit() {
    let schema = format!("wg_two_processes_{}", std::process::id());
    let setup = support::run(
        &replay_args(&schema)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Some(limit_line().as_bytes()),
    );
    assert!(
        setup.status.success(),
        "setup replay failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );

    // Both processes start before either is fed, then get their lines at once.
    let mut children: Vec<_> = (1..=2)
        .map(|_| {
            Command::new(support::binary())
                .args(replay_args(&schema))
                .env_remove("WAGUARD_DB")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("waguard starts")
        })
        .collect();
    for (i, child) in children.iter_mut().enumerate() {
        let mut stdin = child.stdin.take().unwrap();
        let lines = reservations(i + 1);
        std::thread::spawn(move || stdin.write_all(lines.as_bytes()).unwrap());
    }
    let mut allowed = 0;
    let mut refused = 0;
    for child in children {
        let output = child.wait_with_output().expect("waguard finishes");
        assert!(
            output.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let answers = support::answers(&output);
        assert_eq!(answers.len(), PER_PROCESS, "one answer per reservation");
        for answer in answers {
            if answer["allowed"] == true {
                allowed += 1;
            } else {
                assert_eq!(answer["reason"], "messaging_limit_reached", "{answer}");
                refused += 1;
            }
        }
    }
    assert_eq!(allowed, LIMIT, "exactly the limit's units were taken");
    assert_eq!(refused, 2 * PER_PROCESS - LIMIT);

    // The portfolio holds one count per allowed reservation: none without its reservation.
    let options = PostgresOptions::default().with_schema(schema);
    let store = PostgresStore::connect_with(&support::pg_url(), options)
        .await
        .expect("PostgreSQL is running (scripts/test starts it)");
    let bytes = store
        .load_registry(&RegistryKey::Portfolio("a/900000001".into()))
        .await
        .unwrap()
        .expect("the portfolio record exists");
    let portfolio = PortfolioState::decode(&bytes).unwrap();
    let at = waguard::Timestamp::parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
    let count = portfolio.live_count(at, &waguard::Policy::default());
    store.drop_schema().await.unwrap();
    assert_eq!(count, LIMIT as u64);
}
