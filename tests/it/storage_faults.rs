//! When the log cannot write (disk full), webhooks get 503 and nothing half-written remains;
//! the service recovers by itself when space returns. Needs root (mounts a small tmpfs).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    ARCADIA_AUTH, NO_RATE_LIMIT, Server, arcadia_source, arcadia_webhook, provider_ids,
};

/// A size-limited tmpfs, unmounted on drop.
pub struct SmallDisk {
    /// Where it is mounted.
    pub path: PathBuf,
    /// The temporary directory the disk is mounted in (its config sits there too).
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `16m`); needs root.
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk { path, dir }
    }

    /// Fills the disk until `leave_kib` KiB remain.
    fn fill(&self, leave_kib: u64) -> PathBuf {
        let output = Command::new("df")
            .args(["-k", "--output=avail"])
            .arg(&self.path)
            .output()
            .expect("df");
        let available: u64 = String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("available KiB");
        let filler = self.path.join("filler");
        let file = std::fs::File::create(&filler).expect("filler");
        file.set_len(0).expect("truncate");
        let bytes = vec![7u8; 1024 * 1024];
        let mut left = available.saturating_sub(leave_kib) * 1024;
        use std::io::Write;
        let mut file = file;
        while left > 0 {
            let n = left.min(bytes.len() as u64) as usize;
            file.write_all(&bytes[..n]).expect("fill");
            left -= n as u64;
        }
        file.sync_all().expect("sync");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A server with its data directory `data` on the small disk and its config (the Arcadia
/// source; no rate limit, as the test posts until the disk is full) beside the disk.
fn start_on(disk: &SmallDisk, data: &Path, engine: &str) -> Server {
    let logs = data.parent().expect("parent").to_path_buf();
    let config = disk.dir.path().join("tributary.toml");
    let toml = format!(
        "{}{NO_RATE_LIMIT}\n[log]\nengine = \"{engine}\"\n",
        arcadia_source("")
    );
    std::fs::write(&config, toml).expect("write config");
    Server::spawn(data, Some(&config), &logs, &[])
}

#[tokio::test]
async fn disk_full_gives_503_stores_nothing_partial_and_recovers() {
    disk_full_on("fjall").await;
}

#[tokio::test]
async fn disk_full_on_the_redb_engine() {
    disk_full_on("redb").await;
}

async fn disk_full_on(engine: &str) {
    let disk = SmallDisk::mount("96m");
    let data = disk.path.join("data");
    let server = start_on(&disk, &data, engine);
    let filler = disk.fill(1024);

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for i in 0..20_000 {
        let id = format!("whk_full-{i}");
        let (status, body) = server
            .post("arcadia", &arcadia_webhook(&id), &ARCADIA_AUTH)
            .await;
        match status {
            200 => acknowledged.push(id),
            503 => {
                assert_eq!(body["detail"], json!("storage unavailable; retry later"));
                refused.push(id);
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(refused.len(), 3, "the disk never filled");
    let (status, detail) = server.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(detail.contains("No space left on device"), "{detail}");

    // Space returns: the service recovers by itself.
    std::fs::remove_file(&filler).expect("free space");
    let (status, body) = server
        .post("arcadia", &arcadia_webhook("whk_after"), &ARCADIA_AUTH)
        .await;
    assert_eq!(status, 200, "{body}");
    acknowledged.push("whk_after".into());
    assert_eq!(server.get("/readyz").await.0, 200);

    // Every acknowledged webhook is stored once, in order with no gap. A refused one is stored
    // whole or not at all: the journal may hold a commit whose fsync failed, which the reopen
    // after the fault replays (an ambiguous commit, as with any write-ahead log); its events
    // then keep their place in the order.
    let events = server.collect_all(0, Duration::from_secs(1)).await;
    let ids = provider_ids(&events);
    let refused_set: HashSet<&String> = refused.iter().collect();
    let settled: Vec<&String> = ids.iter().filter(|id| !refused_set.contains(id)).collect();
    assert_eq!(settled, acknowledged.iter().collect::<Vec<_>>());
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1);
    }
    let stored: HashSet<&String> = ids.iter().collect();

    // The refused webhooks, retried by the provider, are stored now, once.
    for id in &refused {
        let (status, body) = server
            .post("arcadia", &arcadia_webhook(id), &ARCADIA_AUTH)
            .await;
        let already = stored.contains(id);
        assert_eq!(
            (status, body["accepted"].clone(), body["duplicates"].clone()),
            (
                200,
                json!(usize::from(!already)),
                json!(usize::from(already))
            ),
            "{id}"
        );
    }
    let events = server.collect_all(0, Duration::from_secs(1)).await;
    assert_eq!(events.len(), acknowledged.len() + refused.len());
    drop(server);
}
