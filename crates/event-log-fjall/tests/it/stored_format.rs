//! How events are stored: compressed when that makes them smaller, and events stored as they
//! are (by logs written before compression) still read, with what is appended after them.

use crate::common::{SOURCE, append, event, open};
use tributary_event_log::{AppendRequest, EventLog, Retention};
use tributary_model::v1::Event;

/// An event large enough to compress, as a statement's would be.
fn statement(id: &str) -> Event {
    Event {
        subject: format!("account {id} ").repeat(20),
        ..event(id)
    }
}

fn statements(ids: &[&str]) -> AppendRequest {
    AppendRequest {
        source: SOURCE.into(),
        events: ids.iter().map(|id| statement(id).into()).collect(),
        dead_letters: Vec::new(),
        archive: None,
    }
}

/// A keyspace's stored (key, value) pairs.
type Stored = Vec<(Vec<u8>, Vec<u8>)>;

/// Each `events.<n>` keyspace with its stored values.
fn stored_events(db: &fjall::Database) -> Vec<(fjall::Keyspace, Stored)> {
    db.list_keyspace_names()
        .iter()
        .filter(|name| name.starts_with("events."))
        .map(|name| {
            let keyspace = db
                .keyspace(name, fjall::KeyspaceCreateOptions::default)
                .expect("keyspace");
            let values = keyspace
                .iter()
                .map(|item| {
                    let (key, value) = item.into_inner().expect("item");
                    (key.to_vec(), value.to_vec())
                })
                .collect();
            (keyspace, values)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_uncompressed_read_back_with_the_compressed_ones() {
    let dir = tempfile::tempdir().expect("dir");
    let written = {
        let log = open(dir.path(), 1 << 20, Retention::default());
        append(&log, statements(&["a", "b", "c"])).await;
        log.read_after(0, 10).await.expect("read")
    };
    assert_eq!(written.len(), 3);

    // Rewrite every stored event as logs written before compression stored it: the encoded
    // event itself.
    {
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .expect("open the database");
        let mut rewritten = 0;
        for (keyspace, values) in stored_events(&db) {
            for (key, value) in values {
                assert_eq!(value[0], 0, "stored compressed");
                let encoded =
                    lz4_flex::block::decompress_size_prepended(&value[1..]).expect("an LZ4 block");
                assert!(value.len() < encoded.len());
                keyspace.insert(key, encoded).expect("rewrite");
                rewritten += 1;
            }
        }
        assert_eq!(rewritten, 3);
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }

    let log = open(dir.path(), 1 << 20, Retention::default());
    assert_eq!(log.read_after(0, 10).await.expect("read"), written);
    let outcome = append(&log, statements(&["d"])).await;
    assert_eq!(outcome.sequences, [4]);
    let all = log.read_after(0, 10).await.expect("read");
    assert_eq!(&all[..3], written.as_slice());
    assert_eq!(all[3].subject, statement("d").subject);
    assert_eq!(all[3].sequence, 4);
}
