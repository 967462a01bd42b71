//! Archive rekey: the second half of a key rotation. After a new key was put first in the key
//! file (so new entries are sealed with it), this re-seals what is still sealed with an older
//! key, in place: archive entries ([`EventLog::reseal_archive_entry`]: same id, so events'
//! `raw_id` keep working) and dead letters' raw items ([`EventLog::reseal_dead_letter`]),
//! until nothing needs the old key and it can leave the key file.
//!
//! A call walks pages by increasing id (each page's rewrites in flight together, so the log
//! commits them in groups) and stops at its item limit or its time budget; items already
//! sealed with the current key are only counted, so a repeated or resumed call rewrites
//! nothing twice.
//!
//! [`EventLog::reseal_archive_entry`]: tributary_event_log::EventLog::reseal_archive_entry
//! [`EventLog::reseal_dead_letter`]: tributary_event_log::EventLog::reseal_dead_letter

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tributary_event_log::{LogError, Reseal, ResealOutcome};
use tributary_model::v1::{
    ArchiveEntry, DeadLetter, KeyIdCount, RekeyArchiveRequest, RekeyArchiveResponse, RekeyFailure,
};

use crate::admin::raw::RawError;
use crate::app::App;
use crate::archive::{Archive, ArchiveError};

/// Items examined per call by default.
const DEFAULT_LIMIT: usize = 1_000;
/// Items examined per call at most.
const MAX_LIMIT: usize = 10_000;
/// Items read from the log at once.
const PAGE: usize = 256;
/// A call starts no new page after this long (each rewrite is a log write).
const BUDGET: Duration = Duration::from_secs(10);
/// Rewrites in flight at once within a page.
const IN_FLIGHT: usize = 32;
/// Failures reported per call at most (the counts cover all of them).
const MAX_FAILURES: usize = 100;

/// One sealed item as the walk sees it: an archive entry or a dead letter.
enum Item {
    Entry(ArchiveEntry),
    Letter(DeadLetter),
}

impl Item {
    fn id(&self) -> u64 {
        match self {
            Item::Entry(entry) => entry.id,
            Item::Letter(letter) => letter.id,
        }
    }

    /// The key id sealing it; empty for a dead letter stored in clear.
    fn key_id(&self) -> &str {
        match self {
            Item::Entry(entry) => &entry.key_id,
            Item::Letter(letter) => &letter.raw_key_id,
        }
    }

    fn reseal(&self, archive: &Archive) -> Result<Reseal, ArchiveError> {
        match self {
            Item::Entry(entry) => archive.reseal(entry),
            Item::Letter(letter) => archive.reseal_dead_letter(letter),
        }
    }
}

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
    // At least one page per call, so every call moves on.
    while walk.response.examined < limit as u64
        && (walk.response.examined == 0 || started.elapsed() < BUDGET)
    {
        let wanted = PAGE.min(limit - walk.response.examined as usize);
        let page = page(app, request.dead_letters, after, wanted).await?;
        reached_end = page.len() < wanted;
        let Some(last) = page.last() else { break };
        after = last.id();
        // Rewrites in flight together, so the log commits them in groups.
        let attempts: Vec<(Item, Result<Attempt, RawError>)> = futures_util::stream::iter(page)
            .map(|item| async move {
                let attempt = attempt(app, archive, &item).await;
                (item, attempt)
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        for (item, attempt) in attempts {
            walk.record(app, archive, &item, attempt?).await?;
        }
        if reached_end {
            break;
        }
    }
    let mut response = walk.finish();
    response.next_after_id = if reached_end { 0 } else { after };
    Ok(response)
}

/// What re-sealing one item came to.
enum Attempt {
    /// A dead letter stored in clear: nothing to re-seal.
    InClear,
    /// Already sealed with the current key.
    Current,
    /// It cannot be opened or sealed (a key that is not configured, damaged data).
    Failed(String),
    /// The log's answer to the rewrite.
    Resealed(ResealOutcome),
}

/// Re-seals `item` unless it is in clear or the current key seals it.
async fn attempt(app: &App, archive: &Archive, item: &Item) -> Result<Attempt, RawError> {
    if item.key_id().is_empty() {
        return Ok(Attempt::InClear);
    }
    if item.key_id() == archive.current_key_id() {
        return Ok(Attempt::Current);
    }
    let reseal = match item.reseal(archive) {
        Ok(reseal) => reseal,
        Err(error) => return Ok(Attempt::Failed(error.to_string())),
    };
    let outcome = match item {
        Item::Entry(_) => app.log.reseal_archive_entry(reseal).await,
        Item::Letter(_) => app.log.reseal_dead_letter(reseal).await,
    };
    match outcome {
        Ok(outcome) => Ok(Attempt::Resealed(outcome)),
        // The log refuses this item alone (the seal was valid): report it, go on.
        Err(LogError::Invalid(reason)) => Ok(Attempt::Failed(reason)),
        Err(error) => Err(error.into()),
    }
}

/// Up to `max` items after `after`, by id.
async fn page(
    app: &App,
    dead_letters: bool,
    after: u64,
    max: usize,
) -> Result<Vec<Item>, RawError> {
    Ok(if dead_letters {
        let letters = app.log.dead_letters(after, max).await?;
        letters.into_iter().map(Item::Letter).collect()
    } else {
        let entries = app.log.archive_entries(after, max).await?;
        entries.into_iter().map(Item::Entry).collect()
    })
}

/// Item `id` as stored now (after a concurrent change).
async fn stored(app: &App, item: &Item) -> Result<Option<Item>, RawError> {
    let id = item.id();
    Ok(match item {
        Item::Entry(_) => app.log.archive_entry(id).await?.map(Item::Entry),
        Item::Letter(_) => app
            .log
            .dead_letters(id.saturating_sub(1), 1)
            .await?
            .into_iter()
            .find(|letter| letter.id == id)
            .map(Item::Letter),
    })
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

    /// Counts what `attempt` did to `item`. Failures of this item alone are counted and
    /// reported; storage failures end the call.
    async fn record(
        &mut self,
        app: &App,
        archive: &Archive,
        item: &Item,
        attempt: Attempt,
    ) -> Result<(), RawError> {
        let current = archive.current_key_id();
        self.response.examined += 1;
        match attempt {
            Attempt::InClear => self.response.in_clear += 1,
            Attempt::Current => {
                self.response.already_current += 1;
                self.count(current);
            }
            Attempt::Failed(reason) => {
                self.fail(item.id(), reason);
                self.count(item.key_id());
            }
            Attempt::Resealed(ResealOutcome::Rewritten) => {
                self.response.rewritten += 1;
                self.count(current);
            }
            Attempt::Resealed(ResealOutcome::Missing) => self.response.missing += 1,
            // Changed meanwhile (another rekey): count it as it is stored now.
            Attempt::Resealed(ResealOutcome::Changed) => match stored(app, item).await? {
                Some(now) if now.key_id() == current => {
                    self.response.already_current += 1;
                    self.count(current);
                }
                Some(now) => {
                    self.fail(
                        item.id(),
                        format!("changed meanwhile: now sealed with key `{}`", now.key_id()),
                    );
                    self.count(now.key_id());
                }
                None => self.response.missing += 1,
            },
        }
        Ok(())
    }

    fn count(&mut self, key_id: &str) {
        *self.by_key.entry(key_id.to_owned()).or_default() += 1;
    }

    fn fail(&mut self, id: u64, reason: String) {
        self.response.failed += 1;
        if self.response.failures.len() < MAX_FAILURES {
            self.response.failures.push(RekeyFailure { id, reason });
        }
    }

    fn finish(mut self) -> RekeyArchiveResponse {
        self.response.by_key_id = self
            .by_key
            .into_iter()
            .map(|(key_id, count)| KeyIdCount { key_id, count })
            .collect();
        self.response
    }
}
