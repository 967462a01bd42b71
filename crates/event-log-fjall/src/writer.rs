//! What one commit does: applies each batched operation to a [`Tx`] (the staged writes plus a
//! working copy of the counters and segments), in order, each seeing the ones before it. The
//! dedup claims and sequence assignment happen here, under the writer lock, so concurrent
//! appends never store an item twice and one append's events get consecutive sequences.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fjall::Keyspace;
use prost::Message;
use tributary_event_log::{
    AppendOutcome, AppendRequest, LogError, PendingEvent, RedriveOutcome, rules,
};
use tributary_model::v1::{Consumer, DeadLetter, Filter};
use tributary_model::well_known::Timestamp;

use crate::keys;
use crate::segments::{self, SegmentMeta};
use crate::staged::{Space, Staged};
use crate::state::{Counters, State};
use crate::store::{DEAD_LETTER_TAG, RETIRED, Store};
use crate::tx::{Finished, PendingBlock, Tx};

/// A write the log performs on behalf of a caller.
#[derive(Debug)]
pub(crate) enum Op {
    Append(Box<AppendRequest>),
    Redrive {
        id: u64,
        events: Vec<PendingEvent>,
        still_failing: Option<String>,
    },
    OpenConsumer {
        name: String,
        after: u64,
        filter: Filter,
    },
    Ack {
        name: String,
        sequence: u64,
    },
    ResetConsumer {
        name: String,
        after: u64,
    },
    DeleteConsumer {
        name: String,
    },
    /// A raw-archive entry's new seal (validated before it was queued).
    Reseal(Box<tributary_event_log::Reseal>),
    /// A dead letter's raw item's new seal (validated before it was queued).
    ResealDeadLetter(Box<tributary_event_log::Reseal>),
}

/// The answer to one [`Op`].
#[derive(Debug)]
pub(crate) enum Reply {
    Appended(AppendOutcome),
    Redriven(RedriveOutcome),
    Consumer(Consumer),
    Deleted(bool),
    Resealed(tributary_event_log::ResealOutcome),
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, in the log's millisecond clock, so stored times agree with the time index.
fn now_timestamp() -> Timestamp {
    rules::timestamp_from_millis(now_millis())
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a Arc<Store>, state: &State, segment_events: u64) -> Self {
        let mut next = state.counters;
        next.last_millis = next.last_millis.max(now_millis());
        Self {
            store,
            segment_events,
            staged: Staged::default(),
            next,
            segments: state.segments.clone(),
            keys: state.keys.clone(),
            dirty: Vec::new(),
            fresh: Vec::new(),
            pending_archive: PendingBlock::default(),
        }
    }

    /// Applies one operation. The outer error is a storage failure (the whole commit fails);
    /// the inner one is this caller's mistake (nothing staged for it).
    pub fn apply(&mut self, op: &mut Op) -> Result<Result<Reply, LogError>, LogError> {
        Ok(match op {
            // Validated before it was queued.
            Op::Append(request) => Ok(Reply::Appended(self.append(request)?)),
            Op::Redrive {
                id,
                events,
                still_failing,
            } => self.redrive(*id, events, still_failing.take())?,
            Op::OpenConsumer {
                name,
                after,
                filter,
            } => self.open_consumer(name, *after, filter)?,
            Op::Ack { name, sequence } => self.move_consumer(name, *sequence, false)?,
            Op::ResetConsumer { name, after } => self.move_consumer(name, *after, true)?,
            Op::DeleteConsumer { name } => {
                let stored = self.read(Space::Consumers, name.as_bytes())?;
                if stored.is_some() {
                    self.staged.remove(Space::Consumers, name.as_bytes());
                }
                Ok(Reply::Deleted(stored.is_some()))
            }
            Op::Reseal(reseal) => Ok(Reply::Resealed(crate::archive::reseal(self, reseal)?)),
            Op::ResealDeadLetter(reseal) => Ok(Reply::Resealed(self.reseal_dead_letter(reseal)?)),
        })
    }

    /// `key` of a fixed keyspace as this commit sees it.
    pub fn read(&self, space: Space, key: &[u8]) -> Result<Option<fjall::Slice>, LogError> {
        let store = self.store;
        let keyspace = match space {
            Space::Dedup => &store.dedup,
            Space::Retired => &store.retired,
            Space::RetiredEvents => &store.retired_events,
            Space::DeadLetters => &store.dead_letters,
            Space::Resolved => &store.resolved,
            Space::Archive => &store.archive,
            Space::ArchiveIndex => &store.archive_index,
            Space::ArchiveKeys => &store.archive_keys,
            Space::Consumers => &store.consumers,
            Space::Meta => &store.meta,
            Space::Events(number) => match self.segments.get(&number) {
                Some(segment) => &segment.events,
                None => return Ok(None),
            },
            Space::Times(number) => match self.segments.get(&number) {
                Some(segment) => &segment.times,
                None => return Ok(None),
            },
            Space::Keys(number) => match self.keys.get(&number) {
                Some(keys) => keys,
                None => return Ok(None),
            },
        };
        self.staged.read(space, keyspace, key)
    }

    /// The `keys.<n>` keyspace, opened (created) on first use.
    pub fn keys_handle(&mut self, number: u64) -> Result<Keyspace, LogError> {
        if let Some(keys) = self.keys.get(&number) {
            return Ok(keys.clone());
        }
        let keys = segments::open_keys(&self.store.db, number)?;
        self.keys.insert(number, keys.clone());
        Ok(keys)
    }

    /// The dedup owner of `key` (staged or stored).
    pub fn owner(&self, key: &[u8]) -> Result<Option<u64>, LogError> {
        Ok(self
            .read(Space::Dedup, key)?
            .and_then(|value| keys::read_u64(&value)))
    }

    /// Claims `key` for `value` unless an item owns it already; returns that owner.
    fn claim(&mut self, key: Vec<u8>, value: u64) -> Result<Option<u64>, LogError> {
        let owner = self.owner(&key)?;
        if owner.is_none() {
            self.staged
                .put(Space::Dedup, key, keys::u64_key(value).to_vec());
        }
        Ok(owner)
    }

    /// Claims each of `keys` for the id it will be stored under: the ids after `last`, in
    /// order, one per item not stored yet, marked with `tag`. Returns each item's owner.
    fn claim_all<'k>(
        &mut self,
        source: &str,
        item_keys: impl Iterator<Item = Cow<'k, str>>,
        last: u64,
        tag: u64,
    ) -> Result<Vec<Option<u64>>, LogError> {
        let mut id = last;
        let mut owners = Vec::with_capacity(item_keys.size_hint().0);
        for key in item_keys {
            let owner = self.claim(keys::dedup_key(source, &key), (id + 1) | tag)?;
            if owner.is_none() {
                id += 1;
            }
            owners.push(owner);
        }
        Ok(owners)
    }

    fn claim_events(
        &mut self,
        source: &str,
        events: &[PendingEvent],
    ) -> Result<Vec<Option<u64>>, LogError> {
        let last = self.next.last_sequence;
        self.claim_all(source, events.iter().map(PendingEvent::dedup_key), last, 0)
    }

    /// The segment `sequence` goes to, created (with its keyspaces) when it is the first.
    fn segment_for(&mut self, sequence: u64) -> Result<u64, LogError> {
        let number = segments::number_of(sequence, self.segment_events);
        if !self.segments.contains_key(&number) {
            let meta = SegmentMeta {
                first: sequence,
                last: sequence,
                bytes: 0,
                newest_ms: 0,
            };
            let segment = segments::open(&self.store.db, number, meta)?;
            self.segments.insert(number, segment);
        }
        self.keys_handle(number)?;
        if !self.dirty.contains(&number) {
            self.dirty.push(number);
        }
        Ok(number)
    }

    /// Stores the events found new at the sequences their keys were claimed for, each as
    /// given with its sequence appended; indexes the commit's millisecond in each segment it
    /// first reaches.
    fn store_events(
        &mut self,
        source: &str,
        events: &mut [PendingEvent],
        owners: &[Option<u64>],
        outcome: &mut AppendOutcome,
    ) -> Result<(), LogError> {
        let millis = self.next.last_millis;
        for (event, owner) in events.iter_mut().zip(owners) {
            if owner.is_some() {
                outcome.duplicates += 1;
                continue;
            }
            let sequence = self.next.last_sequence + 1;
            event.set_sequence(sequence);
            let stored = event.to_stored();
            let encoded = stored.encoded();
            let number = self.segment_for(sequence)?;
            let key = keys::u64_key(sequence);
            self.staged.put(
                Space::Events(number),
                key,
                crate::event_value::pack(encoded.as_ref()).as_ref(),
            );
            self.staged.put(
                Space::Keys(number),
                key,
                keys::dedup_key(source, &event.dedup_key()),
            );
            let Some(segment) = self.segments.get_mut(&number) else {
                return Err(LogError::unavailable(
                    "a segment went missing while storing",
                ));
            };
            if segment.meta.newest_ms != millis || segment.meta.bytes == 0 {
                self.staged.put(
                    Space::Times(number),
                    keys::u64_key(millis),
                    keys::u64_key(sequence).to_vec(),
                );
            }
            segment.meta.last = sequence;
            segment.meta.bytes += encoded.len() as u64;
            segment.meta.newest_ms = millis;
            self.next.last_sequence = sequence;
            outcome.sequences.push(sequence);
            self.fresh.push(stored);
        }
        Ok(())
    }

    fn append(&mut self, request: &mut AppendRequest) -> Result<AppendOutcome, LogError> {
        let mut outcome = AppendOutcome::default();
        let source = std::mem::take(&mut request.source);
        // Every item's key first: a retry's archive entry is found through an item stored
        // before, and the new items carry that entry's id.
        let event_owners = self.claim_events(&source, &request.events)?;
        let letter_keys = request
            .dead_letters
            .iter()
            .map(|letter| letter.provider_event_id.as_str().into());
        let last_letter = self.next.last_dead_letter;
        let letter_owners = self.claim_all(&source, letter_keys, last_letter, DEAD_LETTER_TAG)?;
        let archive = match request.archive.take() {
            Some(entry) => {
                // Owners claimed by this request itself (a key twice in it) were not stored
                // before.
                let (first_sequence, first_letter) =
                    (self.next.last_sequence, self.next.last_dead_letter);
                let stored_before: Vec<u64> = event_owners
                    .iter()
                    .chain(&letter_owners)
                    .flatten()
                    .copied()
                    .filter(|&owner| {
                        if owner == RETIRED {
                            true
                        } else if owner & DEAD_LETTER_TAG != 0 {
                            owner & !DEAD_LETTER_TAG <= first_letter
                        } else {
                            owner <= first_sequence
                        }
                    })
                    .collect();
                let (id, new) = crate::archive::reserve(self, &source, &entry, &stored_before)?;
                for event in &mut request.events {
                    event.set_raw_id(id);
                }
                for letter in &mut request.dead_letters {
                    letter.raw_id = id;
                }
                Some((entry, id, new))
            }
            None => None,
        };
        self.store_events(&source, &mut request.events, &event_owners, &mut outcome)?;

        let mut letter_ids = Vec::new();
        for (letter, owner) in request.dead_letters.iter_mut().zip(&letter_owners) {
            if owner.is_some() {
                outcome.duplicates += 1;
                continue;
            }
            let letter_id = self.next.last_dead_letter + 1;
            letter.id = letter_id;
            self.staged.put(
                Space::DeadLetters,
                keys::u64_key(letter_id),
                letter.encode_to_vec(),
            );
            self.next.last_dead_letter = letter_id;
            self.next.dead_letters += 1;
            outcome.dead_lettered += 1;
            letter_ids.push(letter_id);
        }
        if let Some((entry, id, new)) = archive {
            crate::archive::store(self, id, new, entry, &outcome.sequences, &letter_ids)?;
            outcome.archive_id = id;
        }
        request.source = source;
        Ok(outcome)
    }

    /// Dead letter `id` as this commit sees it.
    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, LogError> {
        self.read(Space::DeadLetters, &keys::u64_key(id))?
            .map(|value| DeadLetter::decode(value.as_ref()))
            .transpose()
            .map_err(|source| LogError::Corrupt { key: id, source })
    }

    /// Puts `reseal`'s seal on a dead letter's raw item: the letter is rewritten under its id,
    /// nothing else changes.
    fn reseal_dead_letter(
        &mut self,
        reseal: &tributary_event_log::Reseal,
    ) -> Result<tributary_event_log::ResealOutcome, LogError> {
        let Some(mut letter) = self.dead_letter(reseal.id)? else {
            return Ok(tributary_event_log::ResealOutcome::Missing);
        };
        let outcome = rules::apply_dead_letter_reseal(&mut letter, reseal);
        if outcome == tributary_event_log::ResealOutcome::Rewritten {
            self.staged.put(
                Space::DeadLetters,
                keys::u64_key(reseal.id),
                letter.encode_to_vec(),
            );
        }
        Ok(outcome)
    }

    fn redrive(
        &mut self,
        id: u64,
        events: &mut [PendingEvent],
        still_failing: Option<String>,
    ) -> Result<Result<Reply, LogError>, LogError> {
        let Some(mut letter) = self.dead_letter(id)? else {
            return Ok(Err(LogError::UnknownDeadLetter(id)));
        };
        if let Err(invalid) = rules::validate_redrive_events(events) {
            return Ok(Err(invalid));
        }
        // The dead letter holds its (source, provider id) key; release it so the events it
        // maps to can take it.
        let key = keys::dedup_key(&letter.source, &letter.provider_event_id);
        if self.owner(&key)? == Some(id | DEAD_LETTER_TAG) {
            self.staged.remove(Space::Dedup, key.clone());
        }
        let mut outcome = AppendOutcome::default();
        let source = letter.source.clone();
        let owners = self.claim_events(&source, events)?;
        self.store_events(&source, events, &owners, &mut outcome)?;

        let previously_resolved = letter.resolved_at.as_ref().map(rules::unix_millis);
        let resolved = rules::record_redrive(
            &mut letter,
            still_failing,
            &outcome.sequences,
            now_timestamp(),
        );
        if let (true, Some(at)) = (resolved, letter.resolved_at.as_ref()) {
            // Index the resolution for retention by age (a second resolution moves it).
            if let Some(before) = previously_resolved {
                self.staged
                    .remove(Space::Resolved, keys::pair_key(before, id).to_vec());
            }
            self.staged.put(
                Space::Resolved,
                keys::pair_key(rules::unix_millis(at), id).to_vec(),
                Vec::new(),
            );
        }
        if !resolved {
            // Still dead: keep its key so provider retries stay deduplicated.
            self.staged.put(
                Space::Dedup,
                key,
                keys::u64_key(id | DEAD_LETTER_TAG).to_vec(),
            );
        }
        self.staged.put(
            Space::DeadLetters,
            keys::u64_key(id),
            letter.encode_to_vec(),
        );
        Ok(Ok(Reply::Redriven(RedriveOutcome {
            sequences: outcome.sequences,
            resolved,
        })))
    }

    fn consumer(&self, name: &str) -> Result<Option<Consumer>, LogError> {
        self.read(Space::Consumers, name.as_bytes())?
            .map(|value| rules::decode_consumer(name, &value))
            .transpose()
    }

    fn open_consumer(
        &mut self,
        name: &str,
        after: u64,
        filter: &Filter,
    ) -> Result<Result<Reply, LogError>, LogError> {
        if let Some(mut consumer) = self.consumer(name)? {
            if rules::refilter_consumer(&mut consumer, filter) {
                self.staged.put(
                    Space::Consumers,
                    name.as_bytes(),
                    rules::encode_consumer(&consumer),
                );
            }
            rules::set_lag(&mut consumer, self.next.last_sequence);
            return Ok(Ok(Reply::Consumer(consumer)));
        }
        let consumer = rules::new_consumer(
            name,
            after,
            self.next.last_sequence,
            now_timestamp(),
            filter,
        );
        self.staged.put(
            Space::Consumers,
            name.as_bytes(),
            rules::encode_consumer(&consumer),
        );
        Ok(Ok(Reply::Consumer(consumer)))
    }

    /// Moves a consumer's acknowledged sequence: forward only for acks, anywhere for a reset.
    fn move_consumer(
        &mut self,
        name: &str,
        sequence: u64,
        reset: bool,
    ) -> Result<Result<Reply, LogError>, LogError> {
        if let Err(invalid) = rules::check_ack_target(sequence, self.next.last_sequence) {
            return Ok(Err(invalid));
        }
        let Some(mut consumer) = self.consumer(name)? else {
            return Ok(Err(LogError::UnknownConsumer(name.to_owned())));
        };
        if rules::move_consumer(&mut consumer, sequence, reset, now_timestamp()) {
            self.staged.put(
                Space::Consumers,
                name.as_bytes(),
                rules::encode_consumer(&consumer),
            );
        }
        rules::set_lag(&mut consumer, self.next.last_sequence);
        Ok(Ok(Reply::Consumer(consumer)))
    }

    /// Stages the archive block, the changed segment records and counters, and returns the
    /// batch to commit.
    pub fn finish(
        mut self,
        before: &Counters,
    ) -> Result<(fjall::OwnedWriteBatch, Finished), LogError> {
        crate::archive::flush(&mut self)?;
        if self.fresh.is_empty() {
            // The clock only matters to the time index: a commit without events leaves it.
            self.next.last_millis = before.last_millis;
        }
        for number in &self.dirty {
            if let Some(segment) = self.segments.get(number) {
                self.staged.put(
                    Space::Meta,
                    segments::meta_key(*number),
                    segment.meta.encode(),
                );
            }
        }
        self.next.stage(before, &mut self.staged);
        let (segments, keys) = (&self.segments, &self.keys);
        let batch = self.staged.into_batch(self.store, |space| match space {
            Space::Events(n) => segments.get(&n).map(|s| s.events.clone()),
            Space::Times(n) => segments.get(&n).map(|s| s.times.clone()),
            Space::Keys(n) => keys.get(&n).cloned(),
            _ => None,
        })?;
        Ok((
            batch,
            Finished {
                next: self.next,
                segments: self.segments,
                keys: self.keys,
                fresh: self.fresh,
            },
        ))
    }
}
