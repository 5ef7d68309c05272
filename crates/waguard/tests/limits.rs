//! Rules L1-L3 through the guard: the live count never exceeds the limit, whatever the order
//! of reservations (and when tasks race); a key counts at most once per 24 hours; refused and
//! free-form reservations count nothing.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use waguard::*;

const BIZ: &str = "100000001";

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + s).unwrap()
}

fn key(n: usize) -> ContactKey {
    format!("{BIZ}/p:336123460{n:02}").parse().unwrap()
}

fn policy(limit: u64) -> Policy {
    Policy {
        messaging_limit: Some(limit),
        // The business number's pace (S4) is not what these tests look at.
        throughput: PairRate {
            interval: Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
        .block_on(f)
}

const UTILITY: Outgoing = Outgoing::Template(TemplateCategory::Utility);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Reservations of templates to random keys at increasing times: the allowed ones that
    /// counted never exceed the limit within any 24 hours, and a key counts at most once per
    /// 24 hours (a model of L3 with one-second buckets would allow exactly these).
    #[test]
    fn l3_the_live_count_never_exceeds_the_limit(
        steps in prop::collection::vec((0usize..6, 0i64..20_000), 1..40),
        limit in 1u64..4,
    ) {
        let guard = Guard::new(MemoryStore::new(), policy(limit)).unwrap();
        let mut now = 0;
        let mut counted: Vec<(usize, i64)> = vec![];
        block_on(async {
            for (k, dt) in steps {
                now += dt;
                let recent = |counted: &Vec<(usize, i64)>| {
                    counted.iter().filter(|(_, at)| at + 86_400 > now).count() as u64
                };
                let key_counted = counted.iter().any(|(c, at)| *c == k && at + 86_400 > now);
                let d = guard.reserve(&key(k), UTILITY, None, t(now)).await.unwrap();
                if d.permits(UTILITY) && !key_counted {
                    counted.push((k, now));
                    // Buckets of 1h live up to 25h: the guard's live count covers at least
                    // the last 24h, so counts within any 24h never exceed the limit.
                    assert!(recent(&counted) <= limit, "over the limit at {now}: {counted:?}");
                }
                if !d.permits(UTILITY) {
                    assert_eq!(d.reason().unwrap().as_str(), "messaging_limit_reached");
                    assert!(!key_counted, "a counted key is never refused by L3");
                    let until = d.until().expect("until: a bucket's end");
                    assert!(until > t(now));
                }
            }
        });
    }
}

/// Tasks racing for the last units: exactly the limit's worth of new users get through.
#[test]
fn l3_racing_reservations_take_exactly_the_free_units() {
    block_on(async {
        let guard = Arc::new(Guard::new(MemoryStore::new(), policy(5)).unwrap());
        let mut tasks = Vec::new();
        for n in 0..40 {
            let guard = Arc::clone(&guard);
            tasks.push(tokio::spawn(async move {
                guard.reserve(&key(n), UTILITY, None, t(0)).await.unwrap()
            }));
        }
        let mut allowed = 0;
        for task in tasks {
            if task.await.unwrap().permits(UTILITY) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
        // A check of a counted key is not refused; of a new one it is, read-only.
        let d = guard.check(&key(39), UTILITY, t(1)).await.unwrap();
        let again = guard.check(&key(39), UTILITY, t(1)).await.unwrap();
        assert_eq!(d, again);
    });
}

/// Free-form and templates inside an open window count nothing.
#[test]
fn l3_inside_the_window_nothing_counts() {
    block_on(async {
        let guard = Guard::new(MemoryStore::new(), policy(1)).unwrap();
        for n in 0..3 {
            let inbound = Event::Inbound {
                at: t(0),
                text: None,
                referral: false,
            };
            guard
                .ingest_at(
                    [KeyedEvent::Contact {
                        key: key(n),
                        event: inbound,
                    }],
                    t(0),
                )
                .await
                .unwrap();
            assert!(guard
                .reserve(&key(n), UTILITY, None, t(1))
                .await
                .unwrap()
                .permits(UTILITY));
            assert!(guard
                .reserve(&key(n), Outgoing::FreeForm, None, t(1))
                .await
                .unwrap()
                .permits(Outgoing::FreeForm));
        }
        // The limit of one is still free for a user outside a window.
        assert!(guard
            .reserve(&key(9), UTILITY, None, t(2))
            .await
            .unwrap()
            .permits(UTILITY));
        assert!(!guard
            .reserve(&key(8), UTILITY, None, t(3))
            .await
            .unwrap()
            .permits(UTILITY));
    });
}
