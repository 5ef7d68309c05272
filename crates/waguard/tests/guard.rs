//! Guard-level behaviour that does not depend on the store: clocks, policies, reports.

use std::sync::Arc;
use std::time::Duration;

use waguard::*;

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn key() -> ContactKey {
    "100000001/p:33612345678".parse().unwrap()
}

#[tokio::test]
async fn a_guard_works_over_a_shared_dyn_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let guard = Guard::new(Arc::clone(&store), Policy::default()).unwrap();
    let inbound = Event::Inbound {
        at: t("2026-03-01T10:00:00Z"),
        text: None,
        referral: false,
    };
    let report = guard
        .ingest([
            KeyedEvent::Contact {
                key: key(),
                event: inbound.clone(),
            },
            KeyedEvent::Contact {
                key: key(),
                event: inbound,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        (report.events, report.contacts, report.contacts_written),
        (2, 1, 1)
    );
    let again = guard
        .ingest([KeyedEvent::Contact {
            key: key(),
            event: Event::Inbound {
                at: t("2026-03-01T09:00:00Z"),
                text: None,
                referral: false,
            },
        }])
        .await
        .unwrap();
    assert_eq!(
        again.contacts_written, 0,
        "an older inbound changes no max register: nothing is written"
    );
}

#[tokio::test]
async fn the_now_conveniences_read_the_guards_clock() {
    let clock = Arc::new(ManualClock::new(t("2026-03-01T10:00:00Z")));
    let guard = Guard::with_clock(MemoryStore::new(), Policy::default(), clock.clone()).unwrap();
    let k = key();
    guard
        .ingest([KeyedEvent::Contact {
            key: k.clone(),
            event: Event::Inbound {
                at: t("2026-03-01T10:00:00Z"),
                text: None,
                referral: false,
            },
        }])
        .await
        .unwrap();
    assert!(guard
        .check_now(&k, Outgoing::FreeForm)
        .await
        .unwrap()
        .permits(Outgoing::FreeForm));
    assert!(guard
        .reserve_now(&k, Outgoing::FreeForm, None)
        .await
        .unwrap()
        .permits(Outgoing::FreeForm));
    clock.advance(Duration::from_secs(24 * 3600));
    let d = guard.check_now(&k, Outgoing::FreeForm).await.unwrap();
    assert_eq!(
        d,
        Decision::TemplateRequired {
            reason: TemplateReason::WindowExpired
        }
    );
    assert!(SystemClock.now() > t("2020-01-01T00:00:00Z"));
}

#[test]
fn an_invalid_policy_is_refused() {
    let policy = Policy {
        max_attempts: 0,
        ..Policy::default()
    };
    let err = Guard::new(MemoryStore::new(), policy).unwrap_err();
    assert!(matches!(err, GuardError::Policy(_)), "{err}");
}

#[tokio::test]
async fn opt_out_and_opt_in_follow_o3() {
    let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
    let k = key();
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    guard
        .opt_out(&k, Scope::All, t("2026-03-01T10:00:00Z"))
        .await
        .unwrap();
    let d = guard
        .check(&k, tpl, t("2026-03-01T11:00:00Z"))
        .await
        .unwrap();
    assert_eq!(d.reason().unwrap().as_str(), "opted_out");
    // An older opt-in does not override a newer opt-out.
    guard
        .opt_in(&k, Scope::All, t("2026-03-01T09:00:00Z"))
        .await
        .unwrap();
    assert!(!guard
        .check(&k, tpl, t("2026-03-01T11:00:00Z"))
        .await
        .unwrap()
        .permits(tpl));
    guard
        .opt_in(&k, Scope::All, t("2026-03-01T10:30:00Z"))
        .await
        .unwrap();
    assert!(guard
        .check(&k, tpl, t("2026-03-01T11:00:00Z"))
        .await
        .unwrap()
        .permits(tpl));
    // Marketing scope is a separate register.
    guard
        .opt_out(&k, Scope::Marketing, t("2026-03-01T10:40:00Z"))
        .await
        .unwrap();
    let mkt = Outgoing::Template(TemplateCategory::Marketing);
    let d = guard
        .check(&k, mkt, t("2026-03-01T11:00:00Z"))
        .await
        .unwrap();
    assert_eq!(d.reason().unwrap().as_str(), "marketing_opted_out");
    assert!(guard
        .check(&k, tpl, t("2026-03-01T11:00:00Z"))
        .await
        .unwrap()
        .permits(tpl));
}

#[tokio::test]
async fn sender_level_send_errors_block_the_whole_business_number() {
    let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
    let k = key();
    let other: ContactKey = "100000001/p:33698765432".parse().unwrap();
    let effect = guard
        .record_send_error(&k, 130429, None, t("2026-03-01T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(effect, CodeEffect::ThroughputLimited);
    let d = guard
        .check(&other, Outgoing::FreeForm, t("2026-03-01T10:00:00.5Z"))
        .await
        .unwrap();
    assert_eq!(d.reason().unwrap().as_str(), "throughput_limited");
    assert_eq!(d.until(), Some(t("2026-03-01T10:00:01Z")));
    let (_, sender) = guard.state(&other).await.unwrap();
    assert_eq!(sender.throughput_at, Some(t("2026-03-01T10:00:00Z")));
}
