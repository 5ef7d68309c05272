//! Damage is loud: a sled store holding 1 000 opt-outs (closed cleanly, and separately with
//! its writer killed so that recent opt-outs live only in the journal) is damaged in many ways,
//! and `check`, `show` and `export` either answer correctly for every contact or exit non-zero
//! naming the damage; none answers `allowed` for a contact that opted out. Prints the table of
//! outcomes. Meant for the release build (`cargo test --release -p waguard-tests --test
//! damage -- --nocapture`); it runs in the debug build too, slower.

#[allow(dead_code)] // `answers` is for the other test files
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{binary, run};

const CONTACTS: usize = 1000;
const JOURNAL_ONLY: usize = 5;
const BUSINESS: &str = "100000001";
const AT: &str = "2026-03-01T01:00:00Z";

fn phone(i: usize) -> String {
    format!("3361{i:07}")
}

fn opt_out_line(i: usize) -> String {
    format!(
        "{{\"at\":\"2026-03-01T00:00:00Z\",\"opt_out\":{{\"from\":\"{BUSINESS}\",\"to\":\"{}\"}}}}\n",
        phone(i)
    )
}

/// A store closed cleanly after 1 000 opt-outs.
fn closed_store(dir: &Path) -> PathBuf {
    let db = dir.join("closed");
    let input: String = (0..CONTACTS).map(opt_out_line).collect();
    let out = run(
        &["replay", "--db", db.to_str().unwrap()],
        Some(input.as_bytes()),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

/// The closed store, then five more opt-outs by a writer killed 0.15 s after they were
/// answered: those five live only in the journal.
fn killed_store(dir: &Path, closed: &Path) -> PathBuf {
    let db = dir.join("killed");
    copy_dir(closed, &db);
    let mut child = Command::new(binary())
        .args(["replay", "--db", db.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in CONTACTS..CONTACTS + JOURNAL_ONLY {
        stdin.write_all(opt_out_line(i).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    // Applied once the journal holds the last one (a journaled write is in the file before
    // its call returns; the answers of replay are buffered until its end).
    let last = format!("{BUSINESS}/p:{}", phone(CONTACTS + JOURNAL_ONLY - 1));
    let journal = db.join("waguard-journal");
    let started = std::time::Instant::now();
    loop {
        let bytes = std::fs::read(&journal).unwrap_or_default();
        if bytes.windows(last.len()).any(|w| w == last.as_bytes()) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the writer never journaled its opt-outs"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    db
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn flip(file: &Path, offset: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = (offset as usize).min(bytes.len() - 1);
    bytes[at] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap().len()
}

/// One kind of damage: its name and what it does to a store directory.
struct Kind {
    name: &'static str,
    damage: Box<dyn Fn(&Path)>,
}

fn kinds() -> Vec<Kind> {
    let db = |d: &Path| d.join("db");
    let journal = |d: &Path| d.join("waguard-journal");
    let manifest = |d: &Path| d.join("waguard-manifest");
    macro_rules! kind {
        ($name:expr, $f:expr) => {
            Kind {
                name: $name,
                damage: Box::new($f),
            }
        };
    }
    vec![
        kind!("db: header byte 3 flipped", move |d: &Path| flip(&db(d), 3)),
        kind!("db: byte at 1/4 flipped", move |d: &Path| {
            flip(&db(d), size(&db(d)) / 4)
        }),
        kind!("db: byte at 1/2 flipped", move |d: &Path| {
            flip(&db(d), size(&db(d)) / 2)
        }),
        kind!("db: byte at 3/4 flipped", move |d: &Path| {
            flip(&db(d), size(&db(d)) * 3 / 4)
        }),
        kind!("db: last byte flipped", move |d: &Path| {
            flip(&db(d), size(&db(d)) - 1)
        }),
        kind!("db: truncated to 512 bytes", move |d: &Path| truncate(
            &db(d),
            512
        )),
        kind!("db: truncated to half", move |d: &Path| {
            truncate(&db(d), size(&db(d)) / 2)
        }),
        kind!("db: truncated by 1 byte", move |d: &Path| {
            truncate(&db(d), size(&db(d)) - 1)
        }),
        kind!("db: emptied", move |d: &Path| truncate(&db(d), 0)),
        kind!("db: deleted", move |d: &Path| std::fs::remove_file(db(d))
            .unwrap()),
        kind!("journal: header byte flipped", move |d: &Path| flip(
            &journal(d),
            9
        )),
        kind!("journal: first record flipped", move |d: &Path| {
            flip(&journal(d), 512 + 20)
        }),
        kind!("journal: deleted", move |d: &Path| {
            std::fs::remove_file(journal(d)).unwrap()
        }),
        kind!("manifest: byte flipped", move |d: &Path| flip(
            &manifest(d),
            20
        )),
        kind!("manifest: emptied", move |d: &Path| truncate(
            &manifest(d),
            0
        )),
    ]
}

/// What one command did on a damaged store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Answered, correctly for every contact it was asked about.
    Correct,
    /// Exited non-zero naming the damage.
    Refused,
    /// Answered wrongly (a contact missing, or `allowed` for one that opted out).
    Wrong,
}

impl Outcome {
    fn cell(self) -> &'static str {
        match self {
            Outcome::Correct => "correct",
            Outcome::Refused => "refused",
            Outcome::Wrong => "WRONG",
        }
    }
}

/// Prints what a wrong answer was, for the failure's diagnosis.
fn wrong(command: &str, out: &std::process::Output) -> Outcome {
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "{command}: exit {:?}, stdout {} lines (first: {}), stderr: {}",
        out.status.code(),
        text.lines().count(),
        text.lines().next().unwrap_or(""),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Outcome::Wrong
}

fn refused(out: &std::process::Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    out.status.code() == Some(2)
        && out.stdout.is_empty()
        && (err.contains("is damaged") || err.contains("no sled database"))
}

/// Contacts asked about with `check`: some of every part of the store, and every one that
/// lives only in the journal (when there are such).
fn sample(total: usize) -> Vec<usize> {
    let mut sample: Vec<usize> = (0..CONTACTS).step_by(CONTACTS / 8).collect();
    sample.push(CONTACTS - 1);
    sample.extend(CONTACTS..total);
    sample
}

fn check_all(db: &str, total: usize) -> Outcome {
    let mut outcome = Outcome::Correct;
    for i in sample(total) {
        let to = phone(i);
        let out = run(
            &[
                "check",
                "--db",
                db,
                "--from",
                BUSINESS,
                "--to",
                &to,
                "--message",
                "template",
                "--category",
                "utility",
                "--at",
                AT,
            ],
            None,
        );
        if refused(&out) {
            outcome = Outcome::Refused;
            continue;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(0) || !text.contains("\"allowed\":false") {
            return wrong("check", &out);
        }
    }
    outcome
}

fn show(db: &str, total: usize) -> Outcome {
    let to = phone(total - 1);
    let out = run(
        &[
            "show", "--db", db, "--from", BUSINESS, "--to", &to, "--at", AT,
        ],
        None,
    );
    if refused(&out) {
        return Outcome::Refused;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(0) && !text.contains("\"allowed\":true") && text.contains("out_at")
    {
        Outcome::Correct
    } else {
        wrong("show", &out)
    }
}

fn export(db: &str, total: usize) -> Outcome {
    let out = run(&["export", "--db", db], None);
    if refused(&out) {
        return Outcome::Refused;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let opted_out = text
        .lines()
        .filter(|l| l.contains("\"out_at\":\"2026-03-01T00:00:00Z\""))
        .count();
    if out.status.code() == Some(0) && opted_out == total && text.lines().count() == total {
        Outcome::Correct
    } else {
        wrong("export", &out)
    }
}

#[test]
fn no_command_answers_from_a_damaged_store() {
    let dir = tempfile::tempdir().unwrap();
    let closed = closed_store(dir.path());
    let killed = killed_store(dir.path(), &closed);
    let mut rows = Vec::new();
    for (base, label, total) in [
        (&closed, "closed", CONTACTS),
        (&killed, "killed", CONTACTS + JOURNAL_ONLY),
    ] {
        for kind in kinds() {
            let damaged = dir.path().join(format!("{label}-{}", rows.len()));
            copy_dir(base, &damaged);
            (kind.damage)(&damaged);
            let db = damaged.to_str().unwrap();
            // In this order, on the same directory: a later command sees what an earlier
            // one's open left.
            let outcomes = [check_all(db, total), show(db, total), export(db, total)];
            rows.push((label, kind.name, outcomes));
        }
    }
    println!(
        "{:<8} {:<32} {:<9} {:<9} {:<9}",
        "store", "damage", "check", "show", "export"
    );
    for (label, name, [c, s, e]) in &rows {
        println!(
            "{label:<8} {name:<32} {:<9} {:<9} {:<9}",
            c.cell(),
            s.cell(),
            e.cell()
        );
    }
    let wrong: Vec<_> = rows
        .iter()
        .filter(|(_, _, outcomes)| outcomes.contains(&Outcome::Wrong))
        .map(|(label, name, outcomes)| format!("{label} / {name}: {outcomes:?}"))
        .collect();
    assert!(wrong.is_empty(), "answers from a damaged store: {wrong:#?}");
    let refused = rows
        .iter()
        .filter(|(_, _, outcomes)| outcomes.contains(&Outcome::Refused))
        .count();
    assert!(refused >= 10, "only {refused} kinds of damage were refused");
}
