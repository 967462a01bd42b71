//! Archive rekey: the second half of a key rotation. After a new key was put first in the key
//! file (so new entries are sealed with it), this re-seals the entries still sealed with an
//! older key, in place ([`EventLog::reseal_archive_entry`]: same id, so events' `raw_id` keep
//! working), until no entry needs the old key and it can leave the key file.
//!
//! A call walks one page by increasing id and stops at its entry limit or its time budget;
//! entries already sealed with the current key are only counted, so a repeated or resumed call
//! rewrites nothing twice.
//!
//! [`EventLog::reseal_archive_entry`]: tributary_event_log::EventLog::reseal_archive_entry

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tributary_event_log::ResealOutcome;
use tributary_model::v1::{KeyIdCount, RekeyArchiveRequest, RekeyArchiveResponse, RekeyFailure};

use crate::admin::raw::RawError;
use crate::app::App;
use crate::archive::Archive;

/// Entries examined per call by default.
const DEFAULT_LIMIT: usize = 1_000;
/// Entries examined per call at most.
const MAX_LIMIT: usize = 10_000;
/// Entries read from the log at once.
const PAGE: usize = 256;
/// A call stops starting new entries after this long (each entry is a log write).
const BUDGET: Duration = Duration::from_secs(10);
/// Failures reported per call at most (the counts cover all of them).
const MAX_FAILURES: usize = 100;
/// Dead letters read at once when counting their keys.
const DEAD_LETTER_PAGE: usize = 1_000;

/// Runs one page of the rekey `request` asks for.
pub async fn rekey(
    app: &App,
    request: &RekeyArchiveRequest,
) -> Result<RekeyArchiveResponse, RawError> {
    let archive = app.archive.as_ref().ok_or(RawError::ArchiveOff)?;
    let limit = match request.limit {
        0 => DEFAULT_LIMIT,
        n => (n as usize).min(MAX_LIMIT),
    };
    let started = Instant::now();
    let mut walk = Walk::new(archive);
    let mut after = request.after_id;
    let mut reached_end = false;
    'pages: while walk.response.examined < limit as u64 {
        let wanted = PAGE.min(limit - walk.response.examined as usize);
        let page = app.log.archive_entries(after, wanted).await?;
        if page.len() < wanted {
            reached_end = true;
        }
        for entry in page {
            // At least one entry per call, so every call moves on.
            if walk.response.examined > 0 && started.elapsed() >= BUDGET {
                reached_end = false;
                break 'pages;
            }
            after = entry.id;
            walk.entry(app, archive, &entry).await?;
        }
        if reached_end {
            break;
        }
    }
    let mut response = walk.finish();
    if reached_end {
        response.next_after_id = 0;
        response.dead_letters_by_key_id = dead_letter_keys(app).await?;
    } else {
        response.next_after_id = after;
    }
    Ok(response)
}

/// The counts of one call.
struct Walk {
    response: RekeyArchiveResponse,
    by_key: BTreeMap<String, u64>,
}

impl Walk {
    fn new(archive: &Archive) -> Self {
        Self {
            response: RekeyArchiveResponse {
                current_key_id: archive.current_key_id().to_owned(),
                configured_key_ids: archive.key_ids(),
                ..RekeyArchiveResponse::default()
            },
            by_key: BTreeMap::new(),
        }
    }

    /// Re-seals `entry` unless the current key seals it. Failures of this entry alone (a key
    /// that is not configured, damaged data) are counted and reported; storage failures end
    /// the call.
    async fn entry(
        &mut self,
        app: &App,
        archive: &Archive,
        entry: &tributary_model::v1::ArchiveEntry,
    ) -> Result<(), RawError> {
        let current = archive.current_key_id();
        self.response.examined += 1;
        if entry.key_id == current {
            self.response.already_current += 1;
            self.count(current);
            return Ok(());
        }
        let reseal = match archive.reseal(entry) {
            Ok(reseal) => reseal,
            Err(error) => {
                self.fail(entry.id, error.to_string());
                self.count(&entry.key_id);
                return Ok(());
            }
        };
        match app.log.reseal_archive_entry(reseal).await? {
            ResealOutcome::Rewritten => {
                self.response.rewritten += 1;
                self.count(current);
            }
            ResealOutcome::Missing => self.response.missing += 1,
            // Re-sealed meanwhile (another rekey): count it as it is stored now.
            ResealOutcome::Changed => match app.log.archive_entry(entry.id).await? {
                Some(now) if now.key_id == current => {
                    self.response.already_current += 1;
                    self.count(current);
                }
                Some(now) => {
                    self.fail(
                        entry.id,
                        format!("re-sealed meanwhile with key `{}`", now.key_id),
                    );
                    self.count(&now.key_id);
                }
                None => self.response.missing += 1,
            },
        }
        Ok(())
    }

    fn count(&mut self, key_id: &str) {
        *self.by_key.entry(key_id.to_owned()).or_default() += 1;
    }

    fn fail(&mut self, archive_id: u64, reason: String) {
        self.response.failed += 1;
        if self.response.failures.len() < MAX_FAILURES {
            self.response
                .failures
                .push(RekeyFailure { archive_id, reason });
        }
    }

    fn finish(mut self) -> RekeyArchiveResponse {
        self.response.entries_by_key_id = counts(self.by_key);
        self.response
    }
}

fn counts(by_key: BTreeMap<String, u64>) -> Vec<KeyIdCount> {
    by_key
        .into_iter()
        .map(|(key_id, count)| KeyIdCount { key_id, count })
        .collect()
}

/// The stored dead letters whose raw item is sealed, by key id: they use the same keys, so
/// an old key must stay while one of them needs it.
async fn dead_letter_keys(app: &App) -> Result<Vec<KeyIdCount>, RawError> {
    let mut by_key = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = app.log.dead_letters(after, DEAD_LETTER_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for letter in &page {
            if !letter.raw_key_id.is_empty() {
                *by_key.entry(letter.raw_key_id.clone()).or_default() += 1;
            }
        }
    }
    Ok(counts(by_key))
}
