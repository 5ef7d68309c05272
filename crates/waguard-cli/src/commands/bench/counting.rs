//! Rule L3's hot row: counting reservations of one portfolio from several tasks at once. Every
//! reservation is a template to a user outside a window, so each takes a unit of the same
//! portfolio record (and writes its contact record) before it answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use waguard::{ContactKey, Guard, Outgoing, PairRate, Policy, Store, TemplateCategory};

use super::{figure, percentile_us, workload, Figure};

/// Tasks reserving at once.
const TASKS: usize = 8;

/// Runs `TASKS` tasks of `per_task` counting reservations each on `store`; reports the
/// reservations per second, p50 and p99, under `name`, and checks that every one counted.
pub async fn measure<S: Store + 'static>(
    store: S,
    name: &str,
    per_task: usize,
    contacts: usize,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let policy = Policy {
        // The guard's own pace (S4) would stop a burst of one number first: out of the way.
        throughput: PairRate {
            interval: Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    let guard = Arc::new(Guard::new(store, policy)?);
    let now = workload::now();
    let utility = Outgoing::Template(TemplateCategory::Utility);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let guard = Arc::clone(&guard);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for j in 0..per_task {
                let key: ContactKey = format!("100000777/p:4477{:08}", task * 1_000_000 + j)
                    .parse()
                    .expect("a valid key");
                let t0 = Instant::now();
                let d = guard.reserve(&key, utility, None, now).await?;
                latencies.push(t0.elapsed());
                if !d.permits(utility) {
                    bail!("a counting reservation was refused: {d:?}");
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(TASKS * per_task);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let took = started.elapsed();
    let business = waguard::BusinessId::parse("100000777")?;
    let (_, portfolio) = guard.portfolio(&business).await?;
    let counted = portfolio.live_count(now, guard.policy());
    if counted != (TASKS * per_task) as u64 {
        bail!("{counted} counts for {} reservations", TASKS * per_task);
    }
    latencies.sort_unstable();
    let total = latencies.len();
    figure(
        figures,
        &format!("{name}_counting_reservations_per_s"),
        total as f64 / took.as_secs_f64(),
        "res/s",
        contacts,
        format!("{TASKS} tasks, {total} template reservations to new users, all on one portfolio record (L3)"),
    );
    figure(
        figures,
        &format!("{name}_counting_reservation_p50_us"),
        percentile_us(&latencies, 50.0),
        "us",
        contacts,
        "one counting reservation, under that load",
    );
    figure(
        figures,
        &format!("{name}_counting_reservation_p99_us"),
        percentile_us(&latencies, 99.0),
        "us",
        contacts,
        "one counting reservation, under that load",
    );
    Ok(())
}

/// T1: the check of a named template beside the plain check of the same template message, on
/// the same keys, one after the other (so both see the same load). A named check also reads
/// the number's sender record, the template's record and the portfolio's.
pub async fn named_template_check<S: Store + 'static>(
    store: S,
    name: &str,
    samples: usize,
    contacts: usize,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let mut policy = Policy::default();
    policy
        .accounts
        .insert("900000777".into(), vec!["100000778".into()]);
    let guard = Guard::new(store, policy)?;
    let now = workload::now();
    let template = waguard::TemplateName::new("order_update", "en_US")?;
    let id = waguard::TemplateId {
        account: waguard::AccountId::parse("900000777")?,
        template: template.clone(),
    };
    let approved = waguard::TemplateEvent::Status {
        at: now,
        status: waguard::TemplateStatus::Approved,
    };
    guard
        .ingest_at(
            [waguard::KeyedEvent::Template {
                template: id,
                event: approved,
            }],
            now,
        )
        .await?;
    let utility = Outgoing::Template(TemplateCategory::Utility);
    let mut plain = Vec::with_capacity(samples);
    let mut named = Vec::with_capacity(samples);
    for i in 0..samples {
        let key: ContactKey = format!("100000778/p:4478{:08}", i % 1000).parse()?;
        let t0 = Instant::now();
        std::hint::black_box(guard.check(&key, utility, now).await?);
        plain.push(t0.elapsed());
        let t0 = Instant::now();
        let d = guard
            .check_named(&key, utility, Some(&template), now)
            .await?;
        named.push(t0.elapsed());
        if !d.permits(utility) {
            bail!("an approved template was refused: {d:?}");
        }
    }
    plain.sort_unstable();
    named.sort_unstable();
    let (p, q) = (percentile_us(&plain, 50.0), percentile_us(&named, 50.0));
    figure(
        figures,
        &format!("{name}_template_check_p50_us"),
        p,
        "us",
        contacts,
        "Guard::check of a utility template (not named), interleaved with the named one",
    );
    figure(
        figures,
        &format!("{name}_named_template_check_p50_us"),
        q,
        "us",
        contacts,
        "Guard::check_named of an approved template (T1), same keys",
    );
    figure(
        figures,
        &format!("ratio_{name}_named_over_plain_template_check"),
        q / p,
        "x",
        contacts,
        "same run, p50 over p50",
    );
    Ok(())
}
