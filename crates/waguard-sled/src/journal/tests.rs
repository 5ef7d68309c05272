//! Tests of the `journal` module.

use super::*;

fn put<'a>(key: &'a [u8], value: &'a [u8]) -> Op<'a> {
    Op {
        tree: Tree::Contacts,
        key,
        value: Some(value),
    }
}

fn open_strict(dir: &Path, capacity: u64) -> (Journal, Vec<Vec<u8>>) {
    let opened = Journal::open(dir, capacity, false, false).unwrap();
    (opened.journal.unwrap(), opened.replay)
}

fn replayed(dir: &Path) -> Vec<Vec<u8>> {
    open_strict(dir, 4096).1
}

#[test]
fn records_replay_in_order_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, replay) = open_strict(dir.path(), 4096);
    assert!(replay.is_empty());
    let sender_delete = Op {
        tree: Tree::Senders,
        key: b"100000001",
        value: None,
    };
    journal
        .append(&[put(b"a", b"1"), sender_delete], None)
        .unwrap()
        .unwrap();
    journal.append(&[put(b"b", b"2")], None).unwrap().unwrap();
    journal.sync().unwrap();
    drop(journal);
    let records = replayed(dir.path());
    assert_eq!(records.len(), 2);
    assert_eq!(
        parse(&records[0]).unwrap(),
        vec![
            put(b"a", b"1"),
            Op {
                tree: Tree::Senders,
                key: b"100000001",
                value: None
            }
        ]
    );
    assert_eq!(parse(&records[1]).unwrap(), vec![put(b"b", b"2")]);

    // A new generation makes them obsolete, and a record of it is read back alone, not
    // followed by the longer records of the previous lap behind it.
    let (journal, _) = open_strict(dir.path(), 4096);
    journal.restart().unwrap();
    journal.append(&[put(b"c", b"3")], None).unwrap().unwrap();
    drop(journal);
    let records = replayed(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(parse(&records[0]).unwrap(), vec![put(b"c", b"3")]);
}

#[test]
fn the_generation_wraps_past_the_largest_to_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_strict(dir.path(), 4096));
    let path = dir.path().join(FILE_NAME);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    write_at(&file, &header(u64::MAX), 0).unwrap();
    let (journal, _) = open_strict(dir.path(), 4096);
    journal.append(&[put(b"a", b"1")], None).unwrap().unwrap();
    journal.restart().unwrap();
    assert_eq!(
        journal.tail.lock().generation,
        1,
        "0 is the unwritten part's"
    );
    journal.append(&[put(b"b", b"2")], None).unwrap().unwrap();
    drop(journal);
    let records = replayed(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(parse(&records[0]).unwrap(), vec![put(b"b", b"2")]);
}

#[test]
fn a_torn_or_damaged_record_ends_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_strict(dir.path(), 4096);
    journal.append(&[put(b"a", b"1")], None).unwrap().unwrap();
    journal.append(&[put(b"b", b"2")], None).unwrap().unwrap();
    drop(journal);
    // Damage the last byte of the second record, as a torn write would.
    let path = dir.path().join(FILE_NAME);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    let first = (RECORD_HEADER + op_len(&put(b"a", b"1"))) as u64;
    let second_end = RECORDS_START + 2 * first;
    write_at(&file, &[0xff], second_end - 1).unwrap();
    let records = replayed(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(parse(&records[0]).unwrap(), vec![put(b"a", b"1")]);
}

#[test]
fn a_full_journal_refuses_and_an_oversized_record_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_strict(dir.path(), 1024);
    let value = [7u8; 200];
    let op = [put(b"k", &value)];
    assert!(journal.fits_when_empty(&op));
    let mut appended = 0;
    while journal.append(&op, None).unwrap().is_ok() {
        appended += 1;
    }
    assert_eq!(
        appended, 2,
        "512 bytes of records hold two 226-byte records"
    );
    journal.restart().unwrap();
    assert!(journal.append(&op, None).unwrap().is_ok());
    let big = [7u8; 600];
    assert!(!journal.fits_when_empty(&[put(b"k", &big)]));
}

#[test]
fn a_damaged_header_is_reported_and_a_tolerant_open_starts_a_new_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_strict(dir.path(), 4096);
    journal.append(&[put(b"a", b"1")], None).unwrap().unwrap();
    drop(journal);
    let path = dir.path().join(FILE_NAME);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    write_at(&file, b"X", 0).unwrap();
    let strict = Journal::open(dir.path(), 4096, false, false);
    assert!(matches!(strict, Err(JournalError::DamagedHeader { .. })));
    let read_only = Journal::open(dir.path(), 4096, true, true).unwrap();
    assert!(read_only.journal.is_none());
    assert!(matches!(
        read_only.damage,
        Some(JournalError::DamagedHeader { .. })
    ));
    assert_eq!(
        std::fs::read(&path).unwrap()[0],
        b'X',
        "a read-only open writes nothing"
    );
    let tolerant = Journal::open(dir.path(), 4096, true, false).unwrap();
    assert!(tolerant.created && tolerant.replay.is_empty());
    drop(tolerant);
    assert!(replayed(dir.path()).is_empty(), "the new journal is sound");
}

#[test]
fn a_damaged_record_before_intact_ones_is_reported_not_taken_for_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_strict(dir.path(), 4096);
    for key in [b"a", b"b", b"c"] {
        journal.append(&[put(key, b"1")], None).unwrap().unwrap();
    }
    drop(journal);
    let path = dir.path().join(FILE_NAME);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    // The last byte of the first record.
    let first_end = RECORDS_START + (RECORD_HEADER + op_len(&put(b"a", b"1"))) as u64;
    write_at(&file, &[0xee], first_end - 1).unwrap();
    let strict = Journal::open(dir.path(), 4096, false, false);
    assert!(
        matches!(strict, Err(JournalError::DamagedRecord { offset, .. }) if offset == RECORDS_START)
    );
    let tolerant = Journal::open(dir.path(), 4096, true, true).unwrap();
    assert!(tolerant.replay.is_empty());
    assert!(matches!(
        tolerant.damage,
        Some(JournalError::DamagedRecord { .. })
    ));
}

#[test]
fn a_record_carries_its_manifest_delta() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_strict(dir.path(), 4096);
    let delta = Delta { count: 1, sum: 42 };
    journal
        .append(&[put(b"a", b"1")], Some(delta))
        .unwrap()
        .unwrap();
    journal.append(&[put(b"b", b"2")], None).unwrap().unwrap();
    drop(journal);
    let records = replayed(dir.path());
    assert_eq!(parse(&records[0]).unwrap(), vec![put(b"a", b"1")]);
    assert_eq!(super::delta(&records[0]), Some(delta));
    assert_eq!(super::delta(&records[1]), None);
}

#[test]
fn parse_rejects_malformed_payloads() {
    assert_eq!(parse(&[]), Some(vec![]));
    assert_eq!(parse(&[9]), None, "unknown tag");
    assert_eq!(parse(&[CONTACT_PUT, 5, 0, 0, 0, b'a']), None, "short key");
    assert_eq!(parse(&[CONTACT_DELETE, 1, 0, 0, 0, b'a']).unwrap().len(), 1);
}
