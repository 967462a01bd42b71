//! Filtered durable consumers: which events a filter selects, and how a consumer with a filter
//! moves over the events it does not select.
//!
//! A consumer records the filter of the subscription that opened it. Events after its
//! acknowledged position that the filter does not select are never delivered, so they are
//! acknowledged on its behalf ([`advance`]): its position then stops just before the next
//! event it would receive (or at the newest), its lag counts only what it would still receive
//! ([`with_lag`]), and retention is held back only by what it still needs. JetStream's filtered
//! consumers behave the same way. Written once on top of [`EventLog`], so every backend moves
//! its consumers alike (the conformance suite checks it).

use tributary_model::v1::{Consumer, Filter};

use crate::{EventLog, LogError, StoredEvent};

/// Events read per batch while looking for the next selected one.
const SCAN_BATCH: usize = 256;
/// Most events one call looks at, so a filter that selects nothing in a long log costs a
/// bounded read; the next call continues from where this one stopped.
pub const MAX_SCAN: u64 = 65_536;

/// Whether `filter` selects `event`: its source among `sources` (empty: any) and its type
/// selected by `types` ([`type_selected`]).
pub fn selects(filter: &Filter, event: &StoredEvent) -> bool {
    let source_ok = filter.sources.is_empty() || filter.sources.iter().any(|s| s == event.source());
    source_ok && type_selected(event.event_type(), &filter.types)
}

/// Whether the canonical type `kind` is selected by `types` (empty: all): each is an exact
/// type, a prefix ending in `*` ("consent.*"), or a domain ending in `.` ("consent."). One rule
/// for subscriptions, consumers and replays, so a filter means the same wherever it is given.
pub fn type_selected(kind: &str, types: &[String]) -> bool {
    types.is_empty()
        || types.iter().any(|filter| match filter.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None if filter.ends_with('.') => kind.starts_with(filter.as_str()),
            None => kind == filter,
        })
}

/// What a scan after a consumer's position found.
struct Scan {
    /// The last sequence before the first selected event (or the last one looked at when none
    /// was selected): the consumer may be acknowledged up to it.
    skip_to: u64,
    /// Selected events seen.
    selected: u64,
    /// The last sequence looked at.
    scanned_to: u64,
    /// Whether the scan reached the newest event (otherwise it stopped at [`MAX_SCAN`] or at
    /// the first selected event, as asked).
    complete: bool,
}

/// Reads the events after `after` (at most [`MAX_SCAN`]), stopping at the first selected one
/// unless `count` asks for every selected event to be counted.
async fn scan<L: EventLog + ?Sized>(
    log: &L,
    filter: &Filter,
    after: u64,
    count: bool,
) -> Result<Scan, LogError> {
    let mut scan = Scan {
        skip_to: after,
        selected: 0,
        scanned_to: after,
        complete: false,
    };
    let mut looked = 0u64;
    loop {
        if looked >= MAX_SCAN {
            return Ok(scan);
        }
        let batch = log.read_stored_after(scan.scanned_to, SCAN_BATCH).await?;
        let Some(newest) = batch.last().map(StoredEvent::sequence) else {
            scan.complete = true;
            return Ok(scan);
        };
        for event in &batch {
            if selects(filter, event) {
                scan.selected += 1;
                if !count {
                    return Ok(scan);
                }
            } else if scan.selected == 0 {
                scan.skip_to = event.sequence();
            }
        }
        looked += batch.len() as u64;
        scan.scanned_to = newest;
    }
}

/// Acknowledges, on the consumer's behalf, the events after its position that its filter does
/// not select, up to the next one it selects (or the newest event). Without a filter, or when
/// the next event is selected, it is returned unchanged. Always safe to call: it never passes
/// an event the consumer would receive. Looks at most at [`MAX_SCAN`] events.
pub async fn advance<L: EventLog + ?Sized>(
    log: &L,
    consumer: Consumer,
) -> Result<Consumer, LogError> {
    let Some(filter) = consumer.filter.clone() else {
        return Ok(consumer);
    };
    let scan = scan(log, &filter, consumer.acked_sequence, false).await?;
    if scan.skip_to <= consumer.acked_sequence {
        return Ok(consumer);
    }
    match log.ack(&consumer.name, scan.skip_to).await {
        // Deleted meanwhile: nothing left to move.
        Err(LogError::UnknownConsumer(_)) => Ok(consumer),
        moved => moved,
    }
}

/// The consumer [`advance`]d, with its lag counting only the events its filter selects (the
/// log's lag for an unfiltered one). Past [`MAX_SCAN`] events the rest count whole, so the lag
/// of a far-behind consumer is an upper bound.
pub async fn with_lag<L: EventLog + ?Sized>(
    log: &L,
    consumer: Consumer,
) -> Result<Consumer, LogError> {
    let consumer = advance(log, consumer).await?;
    counted(log, consumer).await
}

/// The consumer where it is, with its lag counting only the events its filter selects (as
/// [`with_lag`], without moving it: a reset shows the position asked for).
pub async fn counted<L: EventLog + ?Sized>(
    log: &L,
    mut consumer: Consumer,
) -> Result<Consumer, LogError> {
    let Some(filter) = consumer.filter.clone() else {
        return Ok(consumer);
    };
    let last = *log.last_sequence().borrow();
    let scan = scan(log, &filter, consumer.acked_sequence, true).await?;
    let unscanned = if scan.complete {
        0
    } else {
        last.saturating_sub(scan.scanned_to)
    };
    consumer.lag = scan.selected.saturating_add(unscanned);
    Ok(consumer)
}

/// Every durable consumer, [`advance`]d, with its lag as [`with_lag`] counts it.
pub async fn consumers<L: EventLog + ?Sized>(log: &L) -> Result<Vec<Consumer>, LogError> {
    let mut out = Vec::new();
    for consumer in log.consumers().await? {
        out.push(with_lag(log, consumer).await?);
    }
    Ok(out)
}

/// Advances every filtered consumer ([`advance`]): run periodically so that events a
/// consumer skips stop holding retention back even while none of its subscriptions is open.
pub async fn advance_all<L: EventLog + ?Sized>(log: &L) -> Result<(), LogError> {
    for consumer in log.consumers().await? {
        if consumer.filter.is_some() {
            advance(log, consumer).await?;
        }
    }
    Ok(())
}
