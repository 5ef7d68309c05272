//! `waguard bench --quick --json` end to end, on a small workload: every figure the benchmark
//! promises is printed once, finite and positive, and the message-log baselines agreed with
//! waguard (the command fails when they do not). Needs the PostgreSQL server `scripts/test`
//! starts (`WAGUARD_PG_URL`); fails loudly without it.

// Shared by several test files; this one uses only `run`.
#[allow(dead_code)]
mod support;

use support::run;

/// The figures `docs/performance.md` names.
const FIGURES: &[&str] = &[
    "decide_ns",
    "record_bytes_typical",
    "memory_check_ns",
    "memory_floor_ns",
    "ratio_memory_check_over_floor",
    "sled_ingest_group_commit_eps",
    "sled_check_ns",
    "sled_record_cache_share",
    "sled_record_cache_hit_rate",
    "sled_record_cache_mb",
    "sled_floor_ns",
    "ratio_sled_check_over_floor",
    "sled_bytes_per_contact",
    "sled_ingest_durable_each_eps",
    "disk_fdatasync_per_s",
    "disk_fdatasync_append_per_s",
    "ratio_sled_durable_over_fdatasync",
    "sled_open_checked_ms",
    "sled_open_trusted_ms",
    "sled_open_no_manifest_ms",
    "ratio_sled_open_checked_over_no_manifest",
    "sled_ingest_manifest_eps",
    "sled_ingest_no_manifest_eps",
    "ratio_sled_ingest_manifest_over_none",
    "webhook_parse_mb_s",
    "postgres_ingest_eps",
    "postgres_check_p50_us",
    "postgres_check_p99_us",
    "postgres_pk_floor_p50_us",
    "ratio_pg_check_over_floor",
    "postgres_pk_direct_p50_us",
    "postgres_pool_checkout_p50_us",
    "ratio_pg_check_over_direct",
    "baseline_msglog_window_p50_us",
    "baseline_msglog_rules_p50_us",
    "ratio_msglog_rules_over_waguard_pg",
    "ratio_msglog_window_over_waguard_sled",
];

#[test]
fn bench_quick_json_prints_every_figure() {
    let url = std::env::var("WAGUARD_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let out = run(
        &[
            "bench",
            "--quick",
            "--json",
            "--contacts",
            "1000",
            "--postgres",
            &url,
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "waguard bench failed: {stderr}");
    let figures: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    for name in FIGURES {
        let found: Vec<_> = figures.iter().filter(|f| f["name"] == *name).collect();
        assert_eq!(found.len(), 1, "{name} printed once: {figures:?}");
        let f = found[0];
        let value = f["value"].as_f64().expect("a number");
        assert!(value.is_finite() && value > 0.0, "{name} = {value}");
        assert_eq!(f["contacts"], 1000, "{name}");
        assert!(f["unit"].as_str().is_some_and(|u| !u.is_empty()), "{name}");
        assert!(f["note"].as_str().is_some(), "{name}");
    }
    // The baselines were compared with waguard on every sampled contact.
    let window = figures
        .iter()
        .find(|f| f["name"] == "baseline_msglog_window_p50_us")
        .unwrap();
    assert!(
        window["note"]
            .as_str()
            .unwrap()
            .contains("answers agree on"),
        "{window}"
    );
}
