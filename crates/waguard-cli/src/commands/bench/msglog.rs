//! PostgreSQL figures: waguard's `check` on `PostgresStore` beside a bare prepared primary-key
//! SELECT, batched ingest, and the message-log baselines (what a team without waguard queries
//! to answer the same question) on the same history.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_postgres::{Client, NoTls};
use waguard::{Decision, Guard, Outgoing, Policy, Reason, TemplateCategory, Timestamp};

use super::workload::{self, Contact};
use super::{figure, percentile_us, Figure};

const DAY_NANOS: i64 = 24 * 3600 * 1_000_000_000;

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {url} for the PostgreSQL figures (start it, or pass --no-postgres)"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Which of the three interleaved figures reads a key.
#[derive(Clone, Copy)]
enum Turn {
    Check,
    Pooled,
    Dedicated,
}

/// The six orders of the three figures, taken in turn.
const TURNS: [[Turn; 3]; 6] = {
    use Turn::*;
    [
        [Check, Pooled, Dedicated],
        [Check, Dedicated, Pooled],
        [Pooled, Check, Dedicated],
        [Pooled, Dedicated, Check],
        [Dedicated, Check, Pooled],
        [Dedicated, Pooled, Check],
    ]
};

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort_unstable();
    v
}

/// Measures the PostgreSQL figures; returns the p50 of the Chatwoot-style window query in µs.
pub async fn measure(
    url: &str,
    contacts: &[Contact],
    indices: &[usize],
    round_trips: usize,
    policy: &Policy,
    figures: &mut Vec<Figure>,
) -> Result<f64> {
    let n = contacts.len();
    let now = workload::now();
    let run = std::process::id();
    let store_schema = format!("waguard_bench_{run}");
    let log_schema = format!("waguard_msglog_{run}");
    let options = waguard_postgres::PostgresOptions::default().with_schema(store_schema.clone());
    eprintln!("waguard bench: PostgreSQL store");
    let store =
        std::sync::Arc::new(waguard_postgres::PostgresStore::connect_with(url, options).await?);
    let result = async {
        let guard = Guard::new(store.clone(), policy.clone())?;
        let (events, took) = super::ingest_all(&guard, contacts, 1000).await?;
        figure(figures, "postgres_ingest_eps", events as f64 / took.as_secs_f64(), "events/s", n, "Guard::ingest in batches of ~1000 events (about 45 contacts each), one transaction each");
        let sample = &indices[..round_trips.min(indices.len())];
        let client = connect(url).await?;
        let floor_sql = format!("SELECT state FROM {store_schema}.contacts WHERE business = $1 AND contact = $2");
        // The pooled floor goes through a pool like the store's (same options, same check-out,
        // same statement cache) but its own, and the dedicated floor has a connection of its
        // own too: each of the three figures reads over its own connection and carries a third
        // of the reads. On a small machine the latency of a round trip depends on where the
        // scheduler places the client and the server process, and a connection carrying two
        // thirds of the reads measured up to twice as slow as one carrying a third, whatever
        // ran on it; sharing one connection between two figures would measure that, not them.
        let floor_options = waguard_postgres::PostgresOptions::default()
            .with_schema(store_schema.clone())
            .with_migrations(waguard_postgres::Migrations::Never);
        let floor_store = waguard_postgres::PostgresStore::connect_with(url, floor_options).await?;
        // The dedicated connection is taken out of that pool: same TLS and session settings.
        let dedicated =
            waguard_postgres::deadpool_postgres::Object::take(floor_store.pool().get().await?);
        let direct_stmt = dedicated.prepare(&floor_sql).await?;
        // Each key is read once, by one of the three figures: the first read of a key costs
        // the server more than a repeat (its pages are not yet in the CPU's caches; measured at
        // ~1.8x), so reading each key three times would favour whichever read comes later.
        // The three take turns in all six orders, so none always follows the same connection.
        let keys = &indices[..(3 * sample.len()).min(indices.len())];
        let mut checks = Vec::with_capacity(sample.len());
        let mut floor = Vec::with_capacity(sample.len());
        let mut direct = Vec::with_capacity(sample.len());
        let mut checkouts = Vec::with_capacity(sample.len());
        for (j, &i) in keys.iter().enumerate() {
            let key = &contacts[i].key;
            let business = key.business.as_str();
            let contact = key.contact.to_string();
            match TURNS[(j / 3) % TURNS.len()][j % 3] {
                Turn::Check => {
                    let started = Instant::now();
                    black_box(guard.check(key, Outgoing::FreeForm, now).await?);
                    checks.push(started.elapsed());
                }
                Turn::Pooled => {
                    let started = Instant::now();
                    let pooled = floor_store.pool().get().await?;
                    checkouts.push(started.elapsed());
                    let statement = pooled.prepare_cached(&floor_sql).await?;
                    black_box(pooled.query_opt(&statement, &[&business, &contact]).await?);
                    drop(pooled);
                    floor.push(started.elapsed());
                }
                Turn::Dedicated => {
                    let started = Instant::now();
                    black_box(dedicated.query_opt(&direct_stmt, &[&business, &contact]).await?);
                    direct.push(started.elapsed());
                }
            }
        }
        let checks = sorted(checks);
        let floor = sorted(floor);
        let check_p50 = figure(figures, "postgres_check_p50_us", percentile_us(&checks, 50.0), "us", n, "Guard::check on PostgresStore (one round trip: contact and sender in one SELECT)");
        figure(figures, "postgres_check_p99_us", percentile_us(&checks, 99.0), "us", n, "same samples");
        let floor_p50 = figure(figures, "postgres_pk_floor_p50_us", percentile_us(&floor, 50.0), "us", n, "bare prepared primary-key SELECT through a pool like the store's, its own connection; interleaved with the checks, each key read once by one of the three");
        let direct = sorted(direct);
        let direct_p50 = figure(figures, "postgres_pk_direct_p50_us", percentile_us(&direct, 50.0), "us", n, "the same SELECT on a dedicated connection (same TLS and settings, no pool), interleaved too");
        figure(figures, "postgres_pk_direct_p99_us", percentile_us(&direct, 99.0), "us", n, "same samples");
        figure(figures, "postgres_pool_checkout_p50_us", percentile_us(&sorted(checkouts), 50.0), "us", n, "the pooled floor's Pool::get alone (part of the pooled floor)");
        figure(figures, "ratio_pg_check_over_floor", check_p50 / floor_p50, "x", n, "p50 over p50, same run");
        figure(figures, "ratio_pg_check_over_direct", check_p50 / direct_p50, "x", n, "p50 over p50, same run: the check beside the dedicated-connection floor");

        // ---- the message-log baselines ----
        eprintln!("waguard bench: message-log baseline");
        load_log(&client, &log_schema, contacts).await?;
        let q = Queries::prepare(&client, &log_schema).await?;
        let mut window = Vec::with_capacity(sample.len());
        let mut rules = Vec::with_capacity(sample.len());
        let mut compared = 0usize;
        for &i in sample {
            let started = Instant::now();
            let last_inbound = q.last_inbound(&client, i as i64).await?;
            window.push(started.elapsed());
            let started = Instant::now();
            let facts = q.facts(&client, i as i64).await?;
            rules.push(started.elapsed());
            // The baselines must agree with waguard on what they cover.
            let key = &contacts[i].key;
            for outgoing in [Outgoing::FreeForm, Outgoing::Template(TemplateCategory::Marketing)] {
                let ours = guard.check(key, outgoing, now).await?;
                let theirs = facts.decide(outgoing, now);
                if (ours.kind(), ours.reason()) != theirs {
                    bail!("message-log baseline disagrees with waguard for {key} ({outgoing:?}): waguard {ours:?}, baseline {theirs:?}");
                }
            }
            let open = last_inbound.is_some_and(|t| now.unix_nanos() < t.unix_nanos() + DAY_NANOS);
            // Chatwoot's single query knows nothing of opt-outs, failures or Meta closing the
            // window (W4): compare it where none of those applies.
            let ours = guard.check(key, Outgoing::FreeForm, now).await?;
            if facts.window_only() && open != matches!(ours, Decision::FreeForm { .. }) {
                bail!("last-inbound query disagrees with waguard for {key}: open={open}, waguard {ours:?}");
            }
            compared += 1;
        }
        let window_p50 = figure(figures, "baseline_msglog_window_p50_us", percentile_us(&sorted(window), 50.0), "us", n, format!("Chatwoot's query: last incoming message (20 messages per contact, index on (conversation, direction, created_at)); answers agree on {compared} contacts"));
        let rules_p50 = figure(figures, "baseline_msglog_rules_p50_us", percentile_us(&sorted(rules), 50.0), "us", n, "5 queries: last inbound, last template, last delivered, latest failures, preferences; same decisions as waguard");
        figure(figures, "ratio_msglog_rules_over_waguard_pg", rules_p50 / check_p50, "x", n, "p50 over p50, same run");
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {log_schema} CASCADE")).await?;
        Ok::<f64, anyhow::Error>(window_p50)
    }
    .await;
    let dropped = store.drop_schema().await;
    let window_p50 = result?;
    dropped?;
    Ok(window_p50)
}

/// Creates and fills the message log: one row per message, preferences in a side table.
async fn load_log(client: &Client, schema: &str, contacts: &[Contact]) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.messages (
                 id bigserial PRIMARY KEY,
                 conversation_id bigint NOT NULL,
                 direction smallint NOT NULL,      -- 0 incoming, 1 outgoing
                 is_template boolean NOT NULL,
                 error_code integer,
                 created_at timestamptz NOT NULL);
             CREATE TABLE {schema}.contact_prefs (
                 conversation_id bigint PRIMARY KEY,
                 marketing_stop_at timestamptz,
                 opted_out_at timestamptz);"
        ))
        .await?;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {schema}.messages (conversation_id, direction, is_template, error_code, created_at)
             SELECT c, d, t, e, to_timestamp(s) FROM unnest($1::bigint[], $2::smallint[], $3::bool[], $4::int[], $5::float8[]) AS u(c, d, t, e, s)"
        ))
        .await?;
    let secs = |t: Timestamp| t.unix_nanos() as f64 / 1e9;
    for (chunk_start, chunk) in contacts
        .chunks(2000)
        .enumerate()
        .map(|(i, c)| (i * 2000, c))
    {
        let (mut c, mut d, mut t, mut e, mut s) = (vec![], vec![], vec![], vec![], vec![]);
        for (offset, contact) in chunk.iter().enumerate() {
            for m in &contact.messages {
                c.push((chunk_start + offset) as i64);
                d.push(if m.inbound { 0i16 } else { 1 });
                t.push(m.template);
                e.push(m.error_code.map(|x| x as i32));
                s.push(secs(m.at));
            }
        }
        client.execute(&insert, &[&c, &d, &t, &e, &s]).await?;
    }
    let prefs = client
        .prepare(&format!(
            "INSERT INTO {schema}.contact_prefs SELECT c, to_timestamp(m), to_timestamp(o)
             FROM unnest($1::bigint[], $2::float8[], $3::float8[]) AS u(c, m, o)"
        ))
        .await?;
    let (mut c, mut m, mut o) = (vec![], vec![], vec![]);
    for (i, contact) in contacts.iter().enumerate() {
        if contact.marketing_stop.is_some() || contact.opted_out.is_some() {
            c.push(i as i64);
            m.push(contact.marketing_stop.map(secs));
            o.push(contact.opted_out.map(secs));
        }
    }
    client.execute(&prefs, &[&c, &m, &o]).await?;
    client
        .batch_execute(&format!(
            "CREATE INDEX ON {schema}.messages (conversation_id, direction, created_at);
             ANALYZE {schema}.messages; ANALYZE {schema}.contact_prefs;"
        ))
        .await?;
    Ok(())
}

struct Queries {
    last_inbound: tokio_postgres::Statement,
    last_template: tokio_postgres::Statement,
    last_delivered: tokio_postgres::Statement,
    failures: tokio_postgres::Statement,
    prefs: tokio_postgres::Statement,
}

/// What the message log says about one contact.
struct Facts {
    last_inbound: Option<Timestamp>,
    last_template: Option<Timestamp>,
    last_delivered: Option<Timestamp>,
    failures: Vec<(u32, Timestamp)>,
    marketing_stop: Option<Timestamp>,
    opted_out: Option<Timestamp>,
}

fn ts(t: Option<f64>) -> Option<Timestamp> {
    t.map(|s| Timestamp::from_unix_nanos((s * 1e9).round() as i64))
}

impl Queries {
    async fn prepare(client: &Client, schema: &str) -> Result<Self> {
        let p = |sql: String| async move { client.prepare(&sql).await };
        Ok(Queries {
            last_inbound: p(format!("SELECT extract(epoch FROM created_at)::float8 FROM {schema}.messages WHERE conversation_id = $1 AND direction = 0 ORDER BY created_at DESC LIMIT 1")).await?,
            last_template: p(format!("SELECT extract(epoch FROM created_at)::float8 FROM {schema}.messages WHERE conversation_id = $1 AND direction = 1 AND is_template ORDER BY created_at DESC LIMIT 1")).await?,
            last_delivered: p(format!("SELECT extract(epoch FROM created_at)::float8 FROM {schema}.messages WHERE conversation_id = $1 AND direction = 1 AND error_code IS NULL ORDER BY created_at DESC LIMIT 1")).await?,
            failures: p(format!("SELECT error_code, extract(epoch FROM created_at)::float8 FROM {schema}.messages WHERE conversation_id = $1 AND direction = 1 AND error_code IS NOT NULL ORDER BY created_at DESC LIMIT 20")).await?,
            prefs: p(format!("SELECT extract(epoch FROM marketing_stop_at)::float8, extract(epoch FROM opted_out_at)::float8 FROM {schema}.contact_prefs WHERE conversation_id = $1")).await?,
        })
    }

    async fn one(
        &self,
        client: &Client,
        stmt: &tokio_postgres::Statement,
        id: i64,
    ) -> Result<Option<Timestamp>> {
        Ok(ts(client
            .query_opt(stmt, &[&id])
            .await?
            .map(|r| r.get::<_, f64>(0))))
    }

    async fn last_inbound(&self, client: &Client, id: i64) -> Result<Option<Timestamp>> {
        self.one(client, &self.last_inbound, id).await
    }

    async fn facts(&self, client: &Client, id: i64) -> Result<Facts> {
        let last_inbound = self.one(client, &self.last_inbound, id).await?;
        let last_template = self.one(client, &self.last_template, id).await?;
        let last_delivered = self.one(client, &self.last_delivered, id).await?;
        let failures = client
            .query(&self.failures, &[&id])
            .await?
            .iter()
            .map(|r| {
                (
                    r.get::<_, i32>(0) as u32,
                    ts(Some(r.get::<_, f64>(1))).expect("some"),
                )
            })
            .collect();
        let prefs = client.query_opt(&self.prefs, &[&id]).await?;
        let (marketing_stop, opted_out) = match prefs {
            Some(r) => (ts(r.get(0)), ts(r.get(1))),
            None => (None, None),
        };
        Ok(Facts {
            last_inbound,
            last_template,
            last_delivered,
            failures,
            marketing_stop,
            opted_out,
        })
    }
}

impl Facts {
    /// Whether the window alone decides: no opt-out, no failure at all.
    fn window_only(&self) -> bool {
        self.opted_out.is_none() && self.failures.is_empty()
    }

    /// The decision a message-log design derives, for the rules this workload exercises
    /// (O1, D1, O2, W2-W4), written the way such a service would, from the rows.
    fn decide(&self, outgoing: Outgoing, now: Timestamp) -> (&'static str, Option<Reason>) {
        use waguard::{BlockReason as B, TemplateReason as T};
        let now = now.unix_nanos();
        let nanos = |t: Option<Timestamp>| t.map(|t| t.unix_nanos());
        let (li, lt, ld) = (
            nanos(self.last_inbound),
            nanos(self.last_template),
            nanos(self.last_delivered),
        );
        if self.opted_out.is_some() {
            return ("blocked", Some(Reason::Blocked(B::OptedOut)));
        }
        let latest = |code: u32| {
            self.failures
                .iter()
                .filter(|(c, _)| *c == code)
                .map(|(_, t)| t.unix_nanos())
                .max()
        };
        if let Some(f) = latest(131026) {
            if now < f + DAY_NANOS && li <= Some(f) && ld <= Some(f) {
                return ("blocked", Some(Reason::Blocked(B::Undeliverable)));
            }
        }
        if outgoing == Outgoing::Template(TemplateCategory::Marketing)
            && self.marketing_stop.is_some()
        {
            return ("blocked", Some(Reason::Blocked(B::MarketingOptedOut)));
        }
        let Some(li) = li else {
            let reason = if lt.is_some() {
                T::AwaitingReply
            } else {
                T::FirstContact
            };
            return ("template_required", Some(Reason::Template(reason)));
        };
        let closes = li + DAY_NANOS;
        let mark = latest(131047).filter(|m| *m >= li);
        if now < closes && mark.is_none() {
            return ("free_form", None);
        }
        let closed_at = mark.map_or(closes, |m| m.min(closes));
        let reason = match lt {
            Some(t) if t >= li && t >= closed_at => T::AwaitingReply,
            _ if mark.is_some() && now < closes => T::WindowClosedByPlatform,
            _ => T::WindowExpired,
        };
        ("template_required", Some(Reason::Template(reason)))
    }
}
