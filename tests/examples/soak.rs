//! The fault soak, run by hand (not in CI); figures go to `docs/reliability.md`.
//!
//! ```text
//! cargo run --release -p waguard-tests --example soak -- [sled [CYCLES] | postgres [RESTARTS] | corrupt | all]
//! ```
//!
//! - `sled` (default 100 cycles): the SIGKILL cycles of the crash test of `waguard-sled`
//!   (`waguard_test_support::crash`), for as many cycles as
//!   asked: a child process (this program, `sled-child`) records webhook batches and
//!   reservations through a [`SledStore`], acknowledging each event once durable; the parent
//!   SIGKILLs it at a random moment, reopens the store and checks that every acknowledged
//!   event is reflected in the state, and that the batch a kill interrupted is there whole or
//!   not at all. Prints acknowledged, found, lost, journal records recovered and the
//!   interrupted batches found whole and absent.
//! - `postgres` (default 3 restarts): a PRIVATE cluster (`initdb` in a temporary directory,
//!   `pg_ctl` on port 54329 or `WAGUARD_SOAK_PG_PORT`; never the shared server) takes ingests
//!   from two tasks through [`PostgresStore`] while the server is restarted with
//!   `pg_ctl restart -m immediate` (a crash: no checkpoint, WAL replay on start); afterwards
//!   every event whose ingest returned `Ok` must be in the store.
//! - `corrupt`: damaged bytes planted in one contact record of a sled store give a typed
//!   decode error naming that key, while the other keys stay readable and writable.
//!
//! Exit status 1 when an acknowledged event is lost or a check fails.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waguard::testing::RawAccess;
use waguard::{
    ContactKey, Event, Guard, GuardError, KeyedEvent, Outgoing, Policy, RecordKey, Records, Store,
    StoreError, Timestamp,
};
use waguard_postgres::PostgresStore;
use waguard_sled::SledStore;

/// Events one child ingests at most.
const PER_CYCLE: u64 = 5_000;

/// 2026-03-01T00:00:00Z plus one millisecond per event: 100 cycles stay within minutes, so
/// no acknowledged fact expires (feedback lives 8 days).
fn at(cycle: u64, seq: u64) -> Timestamp {
    let ms = 1_772_323_200_000 + (cycle * PER_CYCLE + seq) as i64;
    Timestamp::from_unix_nanos(ms * 1_000_000)
}

fn key(n: u32) -> ContactKey {
    format!("100000001/p:3361{n:07}")
        .parse()
        .expect("a valid key")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let number = |default: u64| args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    let ok = match what {
        "sled-child" => crash_harness::child(Path::new(&args[1]), args[2].parse().expect("cycle")),
        "sled" => sled_soak(number(100)),
        "postgres" => postgres_soak(number(3)),
        "corrupt" => corrupt_record(),
        "all" => {
            let a = sled_soak(100);
            let b = postgres_soak(3);
            let c = corrupt_record();
            a && b && c
        }
        other => {
            eprintln!(
                "unknown soak `{other}`: use sled [CYCLES], postgres [RESTARTS], corrupt or all"
            );
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// sled: SIGKILL cycles

/// One implementation of the SIGKILL cycles for the crash test of `waguard-sled` and this
/// soak, so the two cannot drift apart.
use waguard_test_support::crash as crash_harness;

fn sled_soak(cycles: u64) -> bool {
    let seed: u64 = std::env::var("WAGUARD_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let exe = std::env::current_exe().expect("own path");
    let spawn = |dir: &Path, cycle: u64| {
        let mut command = Command::new(&exe);
        command.arg("sled-child").arg(dir).arg(cycle.to_string());
        command
    };
    println!("sled soak: {cycles} SIGKILL cycles (odd cycles in group-commit mode), seed {seed}");
    let mut progress = |cycle: u64, acknowledged: usize| {
        if cycle % 10 == 9 || cycle + 1 == cycles {
            println!(
                "  cycle {:>3}: {acknowledged:>6} acknowledged so far, 0 lost",
                cycle + 1
            );
        }
    };
    match crash_harness::run(cycles, seed, &spawn, &mut progress) {
        Ok(report) => {
            println!(
                "sled soak: {cycles} cycles, {} events acknowledged, {} found, 0 lost, {} writes recovered from the journal, interrupted batches whole {} / absent {} / torn 0 ({} large), {:.1} s (seed {seed})",
                report.acknowledged,
                report.acknowledged,
                report.recovered,
                report.interrupted_whole,
                report.interrupted_absent,
                report.interrupted_large,
                report.elapsed.as_secs_f64()
            );
            true
        }
        Err(e) => {
            eprintln!("sled soak: {e}");
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: server restarts mid-ingest on a private cluster

struct Cluster {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn bin(name: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        versions.sort();
        versions
            .iter()
            .rev()
            .map(|v| v.join("bin").join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn start(port: u16) -> Result<Cluster, String> {
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!("waguard-soak-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cluster = Cluster {
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .map_err(|e| e.to_string())?;
        }
        let data = cluster.dir.join("data");
        let out = cluster
            .command(&Self::bin("initdb"))
            .args(["-D", data.to_str().expect("UTF-8 path")])
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    /// `pg_ctl ACTION` on this cluster; fsync stays on (the default): the soak is about
    /// acknowledged commits surviving a crash of the server.
    fn pg_ctl(&self, action: &[&str]) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let out = self
            .command(&Self::bin("pg_ctl"))
            .args(["-D", data.to_str().expect("UTF-8 path")])
            .args(["-l", log.to_str().expect("UTF-8 path")])
            .args(["-o", &options, "-w", "-t", "60"])
            .args(action)
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {action:?}: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres_soak(restarts: u64) -> bool {
    let port: u16 = std::env::var("WAGUARD_SOAK_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(54329);
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        eprintln!("postgres soak: port {port} is in use; set WAGUARD_SOAK_PG_PORT to a free one");
        return false;
    }
    let cluster = match Cluster::start(port) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postgres soak: cannot start a private cluster: {e}");
            return false;
        }
    };
    println!(
        "postgres soak: private cluster on port {port} ({}), {restarts} restarts with -m immediate",
        cluster.dir.display()
    );
    let rt = runtime();
    let url = cluster.url();
    let store = match rt.block_on(PostgresStore::connect(&url)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("postgres soak: connect: {e}");
            return false;
        }
    };
    let guard = Arc::new(Guard::new(Arc::clone(&store), Policy::default()).expect("valid policy"));
    let acked: Arc<Mutex<Vec<crash_harness::Ack>>> = Arc::default();
    let attempted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..2u64 {
        let (guard, acked, attempted, errors, stop) = (
            Arc::clone(&guard),
            Arc::clone(&acked),
            Arc::clone(&attempted),
            Arc::clone(&errors),
            Arc::clone(&stop),
        );
        tasks.push(rt.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let n = rng.u64(1..=16);
                let mut events = Vec::new();
                let mut batch = Vec::new();
                for _ in 0..n {
                    let key = key(rng.u32(0..300));
                    let wamid = format!("wamid.t{task}s{seq}");
                    events.push(crash_harness::failure(&key, at(task, seq), &wamid));
                    batch.push(crash_harness::Ack::Failure(key, wamid));
                    seq += 1;
                }
                attempted.fetch_add(n, Ordering::Relaxed);
                match guard.ingest(events).await {
                    Ok(_) => acked.lock().expect("lock").extend(batch),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let mut ok = true;
    for r in 0..restarts {
        std::thread::sleep(Duration::from_secs(3));
        let before = acked.lock().expect("lock").len();
        let t = Instant::now();
        if let Err(e) = cluster.pg_ctl(&["-m", "immediate", "restart"]) {
            eprintln!("postgres soak: restart {}: {e}", r + 1);
            ok = false;
            break;
        }
        println!(
            "  restart {}: after {before} acknowledged events; server back in {:.1} s",
            r + 1,
            t.elapsed().as_secs_f64()
        );
    }
    // Run on until ingests succeed again after the last restart.
    let after_restart = acked.lock().expect("lock").len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < after_restart + 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered = acked.lock().expect("lock").len() >= after_restart + 200;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = rt.block_on(t);
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let lost = rt.block_on(crash_harness::count_lost(&guard, &acked));
    println!(
        "postgres soak: {restarts} restarts, {} events attempted, {} acknowledged, {} found, {lost} lost, {} failed ingests during restarts, recovered after the last: {recovered}, {:.1} s",
        attempted.load(Ordering::Relaxed),
        acked.len(),
        acked.len() - lost,
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    drop(guard);
    drop(store);
    drop(rt);
    drop(cluster);
    ok && recovered && lost == 0
}

// ---------------------------------------------------------------------------------------------
// corrupt record

fn corrupt_record() -> bool {
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        let keys = [key(1), key(2), key(3)];
        let now = at(0, 0);
        {
            let store = SledStore::open(&path).expect("open");
            let guard = Guard::new(store, Policy::default()).expect("valid policy");
            let events = keys.iter().map(|k| KeyedEvent::Contact {
                key: k.clone(),
                event: Event::Inbound {
                    at: now,
                    text: None,
                    referral: false,
                },
            });
            guard.ingest(events).await.expect("ingest");
            // Damage the middle record: its real bytes with the body cut and scrambled.
            let good = guard.store().load(&keys[1]).await;
            let mut bytes = match good {
                Ok(Records {
                    contact: Some(b), ..
                }) => b,
                other => {
                    eprintln!("corrupt: cannot read the record to damage: {other:?}");
                    return false;
                }
            };
            bytes.truncate(bytes.len() / 2);
            bytes.push(0xff);
            guard
                .store()
                .put_raw_contact(&keys[1], &bytes)
                .await
                .expect("plant the damaged bytes");
        }
        // Reopen, as a service would after the damage.
        let store = SledStore::open(&path).expect("reopen");
        let guard = Guard::new(store, Policy::default()).expect("valid policy");
        let mut ok = true;
        match guard.check(&keys[1], Outgoing::FreeForm, now).await {
            Err(GuardError::Store(ref e @ StoreError::Decode { ref record, .. })) => {
                let named = *record == RecordKey::Contact(keys[1].clone());
                println!("corrupt record: check of {} -> typed error: {e}", keys[1]);
                println!("  StoreError::Decode names {record}: {named}");
                ok &= named && e.to_string().contains(&keys[1].to_string());
            }
            other => {
                eprintln!("corrupt record: expected a decode error naming the key, got {other:?}");
                ok = false;
            }
        }
        for k in [&keys[0], &keys[2]] {
            let d = guard.check(k, Outgoing::FreeForm, now).await;
            println!("  check of {k} -> {:?}", d.as_ref().map(|d| d.kind()));
            ok &= d.is_ok_and(|d| d.permits(Outgoing::FreeForm));
        }
        let other = guard
            .ingest([KeyedEvent::Contact {
                key: keys[0].clone(),
                event: Event::TemplateSent { at: now },
            }])
            .await;
        println!(
            "  ingest for {} -> {:?}",
            keys[0],
            other.as_ref().map(|_| "ok")
        );
        ok &= other.is_ok();
        let mixed = guard
            .ingest([KeyedEvent::Contact {
                key: keys[1].clone(),
                event: Event::TemplateSent { at: now },
            }])
            .await;
        match &mixed {
            Err(e) => println!("  ingest for the damaged key -> refused: {e}"),
            Ok(_) => {
                println!("  ingest for the damaged key -> accepted (unexpected)");
                ok = false;
            }
        }
        println!("corrupt record: {}", if ok { "ok" } else { "FAILED" });
        ok
    })
}
