//! Concurrent reservations: the pair budget (D3), the resend cap (G1) and the portfolio's
//! messaging limit (L3).

use std::sync::Arc;

use crate::{
    BlockReason, ContactKey, Decision, Guard, Outgoing, Policy, Store, TemplateCategory, Timestamp,
};

use super::{guard, key, t};

/// Many tasks race for the last slots of the pair budget (D3, default burst 45) and for the
/// attempts of one idempotency key (G1, default 3): exactly the allowed number succeed.
pub async fn reserve_races_take_exactly_the_free_slots<S: Store + 'static>(store: Arc<S>) {
    // The business number's pace (S4) is the guard's, not the store's: out of the way here.
    let policy = Policy {
        throughput: crate::PairRate {
            interval: std::time::Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    let burst = policy.pair_rate.burst as usize;
    let max_attempts = policy.max_attempts as usize;
    let guard = guard(&store, policy);
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = t(1000);

    async fn race<S: Store + 'static>(
        guard: &Guard<Arc<S>>,
        k: &ContactKey,
        tasks: usize,
        idempotency: Option<&'static str>,
        now: Timestamp,
    ) -> (usize, Vec<Decision>) {
        let tpl = Outgoing::Template(TemplateCategory::Utility);
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let guard = guard.clone();
                let k = k.clone();
                tokio::spawn(async move { guard.reserve(&k, tpl, idempotency, now).await.unwrap() })
            })
            .collect();
        let mut decisions = Vec::new();
        for h in handles {
            decisions.push(h.await.expect("a task panicked"));
        }
        let allowed = decisions.iter().filter(|d| d.permits(tpl)).count();
        (allowed, decisions)
    }

    // The last 5 slots: 40 taken one by one, then 32 tasks race.
    let k = key(8, 1);
    for i in 0..burst - 5 {
        let d = guard.reserve(&k, tpl, None, now).await.unwrap();
        assert!(
            d.permits(tpl),
            "reservation {i} within the burst was refused: {d:?}"
        );
    }
    let (allowed, decisions) = race(&guard, &k, 32, None, now).await;
    assert_eq!(allowed, 5, "exactly the 5 free slots may be taken");
    for d in decisions.iter().filter(|d| !d.permits(tpl)) {
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: BlockReason::PairRateLimited,
                    until: Some(_)
                }
            ),
            "{d:?}"
        );
    }
    let d = guard.check(&k, tpl, now).await.unwrap();
    assert!(
        matches!(
            d,
            Decision::Blocked {
                reason: BlockReason::PairRateLimited,
                ..
            }
        ),
        "check reports the spent budget: {d:?}"
    );
    let (state, _) = guard.state(&k).await.unwrap();
    assert_eq!(
        state.last_template_at,
        Some(now),
        "an allowed template reservation records a template sent"
    );

    // A whole burst from nothing.
    let (allowed, _) = race(&guard, &key(8, 2), 100, None, now).await;
    assert_eq!(
        allowed, burst,
        "exactly one burst may be taken at one instant"
    );

    // The resend cap of one idempotency key.
    let (allowed, decisions) = race(&guard, &key(8, 3), 20, Some("order-42"), now).await;
    assert_eq!(
        allowed, max_attempts,
        "exactly max_attempts reservations of one idempotency key"
    );
    for d in decisions.iter().filter(|d| !d.permits(tpl)) {
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: BlockReason::ResendLimit,
                    ..
                }
            ),
            "{d:?}"
        );
    }
}

/// L3 on the store: many tasks reserve templates for new users of one portfolio at once;
/// exactly the limit's worth get through, the portfolio record counts exactly them, and a
/// counted user reserving again is neither refused nor counted twice.
pub async fn counting_reservations_race<S: Store + 'static>(store: Arc<S>) {
    let limit = 7;
    let policy = Policy {
        messaging_limit: Some(limit),
        throughput: crate::PairRate {
            interval: std::time::Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    // Two guards on one store, as two processes of a service: each groups its own counting
    // reservations, and the store alone keeps the two apart.
    let guards = [
        Arc::new(guard(&store, policy.clone())),
        Arc::new(guard(&store, policy)),
    ];
    let guard = Arc::clone(&guards[0]);
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = t(5000);
    let mut handles = Vec::new();
    for n in 0..32 {
        let guard = Arc::clone(&guards[n as usize % 2]);
        handles.push(tokio::spawn(async move {
            guard.reserve(&key(9, n), tpl, None, now).await.unwrap()
        }));
    }
    let mut allowed = Vec::new();
    for (n, h) in handles.into_iter().enumerate() {
        let d = h.await.expect("a task panicked");
        if d.permits(tpl) {
            allowed.push(n as u32);
        } else {
            assert_eq!(
                d.reason().map(|r| r.as_str()),
                Some("messaging_limit_reached")
            );
        }
    }
    assert_eq!(
        allowed.len() as u64,
        limit,
        "exactly the free units: {allowed:?}"
    );
    let business = key(9, 0).business;
    let portfolio = crate::RegistryKey::Portfolio(format!("n/{business}"));
    let bytes = store
        .load_registry(&portfolio)
        .await
        .unwrap()
        .expect("counted");
    let state = crate::PortfolioState::decode(&bytes).unwrap();
    assert_eq!(state.live_count(now, guard.policy()), limit);
    // A counted user is not counted again within 24 hours, and is not refused.
    let again = guard
        .reserve(&key(9, allowed[0]), tpl, None, now)
        .await
        .unwrap();
    assert!(again.permits(tpl), "{again:?}");
    let bytes = store.load_registry(&portfolio).await.unwrap().unwrap();
    let state = crate::PortfolioState::decode(&bytes).unwrap();
    assert_eq!(state.live_count(now, guard.policy()), limit);
}
