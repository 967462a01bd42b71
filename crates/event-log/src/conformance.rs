//! The conformance suite: what every [`EventLog`] backend must do, checked with exact values,
//! so a backend is tested without starting the service.
//!
//! A backend's test file implements [`Store`] (fresh storage per test, which can be opened
//! again) and expands [`conformance_tests!`](crate::conformance_tests), which generates one
//! `#[tokio::test]` per check. Where backends legitimately differ, the check reads
//! [`Capabilities`] instead of accepting either answer.
//!
//! The checks panic with a message on failure: this module is test code.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use tributary_model::v1::{
    ArchiveEntry, Consumer, DeadLetter, Event, Filter, Provenance, ReplayOf,
};
use tributary_model::well_known::Timestamp;

use crate::rules::{MAX_CONSUMER_NAME, timestamp};
use crate::{
    AppendOutcome, AppendRequest, EventLog, LogError, PendingEvent, RedriveOutcome, Reseal,
    ResealOutcome, Retention,
};

/// Where the backends legitimately differ. Each flag names the stronger guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Events and dead letters share one dedup key space: an event whose (source, provider
    /// event id) is held by a dead letter is a duplicate, and the other way round. (redb: one
    /// dedup table. JetStream: two streams, each with its own duplicate window.)
    pub dedup_spans_dead_letters: bool,
    /// One append's events get consecutive sequences even while other appends run. (redb: one
    /// writer applies appends one after the other. JetStream: concurrent publishes
    /// interleave; each append's sequences still increase.)
    pub contiguous_appends: bool,
}

/// Storage of one test: fresh and empty when created, and openable again and again.
pub trait Store: Send + Sync + 'static {
    /// The backend under test.
    type Log: EventLog;

    /// What this backend guarantees beyond the common contract.
    fn capabilities(&self) -> Capabilities;

    /// Opens a log on this storage with `retention`. After the previous log was dropped, the
    /// new one must see everything the old one stored.
    fn open(
        &self,
        retention: Retention,
    ) -> impl Future<Output = Result<Self::Log, LogError>> + Send;
}

/// Generates one `#[tokio::test]` per conformance check. `$store` is an expression, evaluated
/// once per test, giving a future of a fresh [`Store`] (e.g. `fresh_store()` for an
/// `async fn fresh_store() -> MyStore`). The calling crate needs `tokio` with `macros` and
/// `rt-multi-thread`.
#[macro_export]
macro_rules! conformance_tests {
    ($store:expr) => {
        $crate::conformance_tests!(@each $store;
            append_assigns_sequences_and_reads_back_what_was_stored,
            empty_append_stores_nothing,
            invalid_appends_are_refused_and_store_nothing,
            duplicates_are_skipped_by_source_and_provider_event_id,
            events_and_dead_letters_share_dedup_keys_when_capable,
            unusual_provider_event_ids_stay_distinct,
            source_and_provider_id_pairs_cannot_collide,
            concurrent_appends_get_distinct_increasing_sequences,
            read_after_pages_in_order,
            stored_reads_are_the_events_encoded,
            sequence_before_time_finds_the_event_before_a_time,
            last_sequence_announces_appends,
            durable_consumers_open_ack_reset_and_delete,
            consumer_names_are_validated,
            dead_letters_are_listed_by_id,
            redrive_resolves_a_dead_letter,
            redrive_still_failing_keeps_the_letter_dead,
            redrive_of_an_unknown_dead_letter_is_refused,
            everything_survives_reopening,
            retention_keeps_what_consumers_still_need,
            retention_can_override_consumers,
            filtered_consumers_move_over_the_events_they_skip,
            retention_cutting_a_batch_keeps_its_time,
            dedup_outlives_the_retention_of_events,
            dead_letters_beyond_the_count_are_removed_keeping_their_dedup_keys,
            resolved_dead_letters_expire_keeping_their_dedup_keys,
            archive_entries_are_stored_with_their_items,
            a_retry_finds_its_archive_entry_and_extends_it,
            archive_entries_expire_on_their_own,
            resealed_archive_entries_keep_their_id_links_and_order,
            resealing_a_missing_or_removed_entry_writes_nothing,
            resealed_dead_letters_keep_their_id_state_and_key,
            sequence_of_finds_stored_events_only,
            replayed_events_dedup_per_adapter_version,
            encoded_events_read_back_with_their_appended_fields,
        );
    };
    (@each $store:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::conformance::$check($store.await).await;
            }
        )+
    };
}

/// How long an effect that happens in the background (retention) may take.
const EVENTUALLY: Duration = Duration::from_secs(20);
/// Gap between appends that must land in different milliseconds (time lookups).
const TICK: Duration = Duration::from_millis(30);
/// Retention that runs often and removes everything a consumer does not hold back.
const EAGER: Duration = Duration::from_millis(50);

const SOURCE: &str = "conformance";

async fn open<S: Store>(store: &S) -> S::Log {
    open_with(store, Retention::default()).await
}

async fn open_with<S: Store>(store: &S, retention: Retention) -> S::Log {
    match store.open(retention).await {
        Ok(log) => log,
        Err(error) => panic!("cannot open the log: {error}"),
    }
}

fn event(source: &str, provider_event_id: &str) -> Event {
    Event {
        id: format!("{source}:{provider_event_id}"),
        source: source.to_owned(),
        r#type: "conformance.checked".to_owned(),
        subject: format!("subject-{provider_event_id}"),
        time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
        provenance: Some(Provenance {
            adapter: "conformance".to_owned(),
            adapter_version: "1.0.0".to_owned(),
            provider_event_id: provider_event_id.to_owned(),
            provider_event_type: "CHECKED".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn dead_letter(source: &str, provider_event_id: &str) -> DeadLetter {
    DeadLetter {
        source: source.to_owned(),
        adapter: "conformance".to_owned(),
        adapter_version: "1.0.0".to_owned(),
        provider_event_id: provider_event_id.to_owned(),
        provider_event_type: "UNKNOWN".to_owned(),
        reason: "unknown kind".to_owned(),
        raw: format!("{{\"id\":\"{provider_event_id}\"}}").into_bytes(),
        received_at: Some(Timestamp {
            seconds: 1_700_000_001,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn request(events: &[&str], dead_letters: &[&str]) -> AppendRequest {
    AppendRequest {
        source: SOURCE.to_owned(),
        events: events.iter().map(|id| event(SOURCE, id).into()).collect(),
        dead_letters: dead_letters
            .iter()
            .map(|id| dead_letter(SOURCE, id))
            .collect(),
        archive: None,
    }
}

fn outcome(sequences: &[u64], duplicates: usize, dead_lettered: usize) -> AppendOutcome {
    AppendOutcome {
        sequences: sequences.to_vec(),
        duplicates,
        dead_lettered,
        archive_id: 0,
    }
}

/// `event` as the log returns it: with its sequence.
fn stored(mut event: Event, sequence: u64) -> Event {
    event.sequence = sequence;
    event
}

async fn append<L: EventLog>(log: &L, request: AppendRequest) -> AppendOutcome {
    match log.append(request).await {
        Ok(outcome) => outcome,
        Err(error) => panic!("append failed: {error}"),
    }
}

async fn read<L: EventLog>(log: &L, after: u64, max: usize) -> Vec<Event> {
    match log.read_after(after, max).await {
        Ok(events) => events,
        Err(error) => panic!("read_after({after}, {max}) failed: {error}"),
    }
}

async fn sequences_after<L: EventLog>(log: &L, after: u64) -> Vec<u64> {
    read(log, after, 1000)
        .await
        .iter()
        .map(|e| e.sequence)
        .collect()
}

async fn first<L: EventLog>(log: &L) -> u64 {
    match log.first_sequence().await {
        Ok(first) => first,
        Err(error) => panic!("first_sequence failed: {error}"),
    }
}

async fn before_time<L: EventLog>(log: &L, time: Timestamp) -> u64 {
    match log.sequence_before_time(time).await {
        Ok(sequence) => sequence,
        Err(error) => panic!("sequence_before_time({time:?}) failed: {error}"),
    }
}

async fn letters<L: EventLog>(log: &L, after: u64, max: usize) -> Vec<DeadLetter> {
    match log.dead_letters(after, max).await {
        Ok(letters) => letters,
        Err(error) => panic!("dead_letters({after}, {max}) failed: {error}"),
    }
}

async fn consumers<L: EventLog>(log: &L) -> Vec<(String, u64, u64)> {
    match log.consumers().await {
        Ok(consumers) => consumers
            .into_iter()
            .map(|c| (c.name, c.acked_sequence, c.lag))
            .collect(),
        Err(error) => panic!("consumers failed: {error}"),
    }
}

fn consumer_ok(result: Result<Consumer, LogError>, what: &str) -> Consumer {
    match result {
        Ok(consumer) => consumer,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

fn position(consumer: &Consumer) -> (&str, u64, u64) {
    (
        consumer.name.as_str(),
        consumer.acked_sequence,
        consumer.lag,
    )
}

fn last<L: EventLog>(log: &L) -> u64 {
    *log.last_sequence().borrow()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, LogError>, message: &str) {
    match result {
        Err(LogError::Invalid(got)) => assert_eq!(got, message),
        other => panic!("expected Invalid({message:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid_prefix<T: std::fmt::Debug>(result: Result<T, LogError>, prefix: &str) {
    match result {
        Err(LogError::Invalid(got)) => assert!(got.starts_with(prefix), "{got}"),
        other => panic!("expected Invalid({prefix}...), got {other:?}"),
    }
}

#[track_caller]
fn assert_unknown_consumer<T: std::fmt::Debug>(result: Result<T, LogError>, name: &str) {
    match result {
        Err(LogError::UnknownConsumer(got)) => assert_eq!(got, name),
        other => panic!("expected UnknownConsumer({name:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_unknown_dead_letter<T: std::fmt::Debug>(result: Result<T, LogError>, id: u64) {
    match result {
        Err(LogError::UnknownDeadLetter(got)) => assert_eq!(got, id),
        other => panic!("expected UnknownDeadLetter({id}), got {other:?}"),
    }
}

/// Waits until `check` holds (background work such as retention), failing after
/// [`EVENTUALLY`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < EVENTUALLY, "not in time: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Appends return the sequences they assigned, reads return exactly what was stored, and an
/// empty log starts at sequence 1.
pub async fn append_assigns_sequences_and_reads_back_what_was_stored(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(log.health(), Ok(()));
    assert_eq!(last(&log), 0);
    assert_eq!(
        first(&log).await,
        1,
        "an empty log's first sequence is last + 1"
    );
    assert_eq!(read(&log, 0, 10).await, Vec::<Event>::new());

    let got = append(&log, request(&["a", "b", "c"], &[])).await;
    assert_eq!(got, outcome(&[1, 2, 3], 0, 0));
    let got = append(&log, request(&["d"], &[])).await;
    assert_eq!(got, outcome(&[4], 0, 0));

    let expected: Vec<Event> = ["a", "b", "c", "d"]
        .iter()
        .zip(1..)
        .map(|(id, sequence)| stored(event(SOURCE, id), sequence))
        .collect();
    assert_eq!(read(&log, 0, 10).await, expected);
    assert_eq!(last(&log), 4);
    assert_eq!(first(&log).await, 1);
    assert_eq!(log.health(), Ok(()));
}

/// A request with nothing in it is valid and changes nothing.
pub async fn empty_append_stores_nothing(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(append(&log, request(&[], &[])).await, outcome(&[], 0, 0));
    assert_eq!(last(&log), 0);
    assert_eq!(read(&log, 0, 10).await, Vec::<Event>::new());
    assert_eq!(letters(&log, 0, 10).await, Vec::<DeadLetter>::new());
}

/// Requests without a valid source or with an item lacking a provider event id are refused
/// whole.
pub async fn invalid_appends_are_refused_and_store_nothing(store: impl Store) {
    let log = open(&store).await;
    let missing = "every event and dead letter needs a provider event id";

    let no_source = AppendRequest {
        source: String::new(),
        ..request(&["a"], &["x"])
    };
    assert_invalid_prefix(log.append(no_source).await, "source names are");

    let mut no_provenance = request(&["a"], &[]);
    no_provenance.events.push(
        Event {
            provenance: None,
            ..event(SOURCE, "b")
        }
        .into(),
    );
    assert_invalid(log.append(no_provenance).await, missing);

    let empty_event_id = request(&["a", ""], &["x"]);
    assert_invalid(log.append(empty_event_id).await, missing);

    let empty_letter_id = request(&["a"], &["x", ""]);
    assert_invalid(log.append(empty_letter_id).await, missing);

    assert_eq!(last(&log), 0);
    assert_eq!(read(&log, 0, 10).await, Vec::<Event>::new());
    assert_eq!(letters(&log, 0, 10).await, Vec::<DeadLetter>::new());
    // The refused ids were not taken.
    assert_eq!(
        append(&log, request(&["a"], &["x"])).await,
        outcome(&[1], 0, 1)
    );
}

/// (source, provider event id) is stored once: later copies, in the same request or another,
/// count as duplicates and take no sequence; the same id from another source is another item.
pub async fn duplicates_are_skipped_by_source_and_provider_event_id(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(
        append(&log, request(&["a", "b"], &["x"])).await,
        outcome(&[1, 2], 0, 1)
    );
    assert_eq!(
        append(&log, request(&["a", "b"], &["x"])).await,
        outcome(&[], 3, 0)
    );
    assert_eq!(
        append(&log, request(&["a", "c"], &["x", "y"])).await,
        outcome(&[3], 2, 1)
    );
    assert_eq!(
        append(&log, request(&["d", "d"], &["z", "z"])).await,
        outcome(&[4], 2, 1)
    );
    let other_source = AppendRequest {
        source: "elsewhere".to_owned(),
        events: vec![event("elsewhere", "a").into()],
        dead_letters: vec![dead_letter("elsewhere", "x")],
        archive: None,
    };
    assert_eq!(append(&log, other_source).await, outcome(&[5], 0, 1));

    let expected = vec![
        stored(event(SOURCE, "a"), 1),
        stored(event(SOURCE, "b"), 2),
        stored(event(SOURCE, "c"), 3),
        stored(event(SOURCE, "d"), 4),
        stored(event("elsewhere", "a"), 5),
    ];
    assert_eq!(read(&log, 0, 10).await, expected);
    let ids: Vec<(u64, String, String)> = letters(&log, 0, 10)
        .await
        .into_iter()
        .map(|l| (l.id, l.source, l.provider_event_id))
        .collect();
    let expected: Vec<(u64, String, String)> = [
        (1, SOURCE, "x"),
        (2, SOURCE, "y"),
        (3, SOURCE, "z"),
        (4, "elsewhere", "x"),
    ]
    .iter()
    .map(|(id, source, p)| (*id, source.to_string(), p.to_string()))
    .collect();
    assert_eq!(ids, expected);
    assert_eq!(last(&log), 5);
}

/// With [`Capabilities::dedup_spans_dead_letters`], an event and a dead letter with the same
/// (source, provider event id) are one item; without it they are deduplicated separately.
pub async fn events_and_dead_letters_share_dedup_keys_when_capable(store: impl Store) {
    let shared = store.capabilities().dedup_spans_dead_letters;
    let log = open(&store).await;
    assert_eq!(
        append(&log, request(&["a"], &["x"])).await,
        outcome(&[1], 0, 1)
    );
    let event_like_letter = append(&log, request(&["x"], &[])).await;
    let letter_like_event = append(&log, request(&[], &["a"])).await;
    if shared {
        assert_eq!(event_like_letter, outcome(&[], 1, 0));
        assert_eq!(letter_like_event, outcome(&[], 1, 0));
        assert_eq!(sequences_after(&log, 0).await, vec![1]);
        assert_eq!(letters(&log, 0, 10).await.len(), 1);
    } else {
        assert_eq!(event_like_letter, outcome(&[2], 0, 0));
        assert_eq!(letter_like_event, outcome(&[], 0, 1));
        assert_eq!(sequences_after(&log, 0).await, vec![1, 2]);
        assert_eq!(letters(&log, 0, 10).await.len(), 2);
    }
    // Within one request too.
    let both = append(&log, request(&["m"], &["m"])).await;
    let next = if shared { 2 } else { 3 };
    if shared {
        assert_eq!(both, outcome(&[next], 1, 0));
    } else {
        assert_eq!(both, outcome(&[next], 0, 1));
    }
}

/// Provider ids come from providers: spaces, separators, non-ASCII and escape-like text are
/// stored and deduplicated as the distinct strings they are.
pub async fn unusual_provider_event_ids_stay_distinct(store: impl Store) {
    let log = open(&store).await;
    let long = "x".repeat(300);
    let ids = [
        "a b",
        "a  b",
        "a",
        "%61",
        "61",
        "a:b",
        "a.b",
        "a*>",
        "é",
        "a\r\nb",
        long.as_str(),
    ];
    let count = ids.len();
    let all: Vec<u64> = (1..=count as u64).collect();
    assert_eq!(append(&log, request(&ids, &[])).await, outcome(&all, 0, 0));
    let letters_only = AppendRequest {
        source: "letters".to_owned(),
        events: Vec::new(),
        dead_letters: ids.iter().map(|id| dead_letter("letters", id)).collect(),
        archive: None,
    };
    assert_eq!(
        append(&log, letters_only.clone()).await,
        outcome(&[], 0, count)
    );
    assert_eq!(
        append(&log, request(&ids, &[])).await,
        outcome(&[], count, 0)
    );
    assert_eq!(append(&log, letters_only).await, outcome(&[], count, 0));
    let read_ids: Vec<String> = read(&log, 0, 100)
        .await
        .iter()
        .map(|e| crate::rules::provider_event_id(e).to_owned())
        .collect();
    assert_eq!(read_ids, ids.map(str::to_owned).to_vec());
    let letter_ids: Vec<String> = letters(&log, 0, 100)
        .await
        .into_iter()
        .map(|l| l.provider_event_id)
        .collect();
    assert_eq!(letter_ids, ids.map(str::to_owned).to_vec());
}

/// A (source, provider event id) pair is one key however the two are split: source `s` with
/// id `x:y` is stored, source `s:x` (whose id `y` would read the same once joined with `:`)
/// is refused as a source name, and `s` with `x` and `x:y` stay two items.
pub async fn source_and_provider_id_pairs_cannot_collide(store: impl Store) {
    let log = open(&store).await;
    let with = |source: &str, ids: &[&str]| AppendRequest {
        source: source.to_owned(),
        events: ids.iter().map(|id| event(source, id).into()).collect(),
        dead_letters: Vec::new(),
        archive: None,
    };
    assert_eq!(append(&log, with("s", &["x:y"])).await, outcome(&[1], 0, 0));
    for source in ["s:x", "s.x", "s*", "s>", "s x", ""] {
        assert_invalid_prefix(
            log.append(with(source, &["y"])).await,
            "source names are 1 to 64 characters",
        );
    }
    assert_eq!(
        append(&log, with("s", &["x", "x:y", "y"])).await,
        outcome(&[2, 3], 1, 0)
    );
    assert_eq!(append(&log, with("s-x", &["y"])).await, outcome(&[4], 0, 0));
    let keys: Vec<(String, String)> = read(&log, 0, 10)
        .await
        .iter()
        .map(|e| {
            (
                e.source.clone(),
                crate::rules::provider_event_id(e).to_owned(),
            )
        })
        .collect();
    let expected = [("s", "x:y"), ("s", "x"), ("s", "y"), ("s-x", "y")];
    assert_eq!(
        keys,
        expected.map(|(s, i)| (s.to_owned(), i.to_owned())).to_vec()
    );
}

/// Appends running at the same time get distinct sequences with no gap; each append's
/// sequences increase (and, with [`Capabilities::contiguous_appends`], are consecutive), and
/// reads return every event at the sequence its append reported.
pub async fn concurrent_appends_get_distinct_increasing_sequences(store: impl Store) {
    const APPENDS: usize = 8;
    const EACH: usize = 5;
    let contiguous = store.capabilities().contiguous_appends;
    let log = std::sync::Arc::new(open(&store).await);
    let mut tasks = Vec::new();
    for a in 0..APPENDS {
        let log = std::sync::Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let ids: Vec<String> = (0..EACH).map(|i| format!("c{a}-{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            (a, append(&*log, request(&ids, &[])).await)
        }));
    }
    let mut by_sequence = std::collections::BTreeMap::new();
    for task in tasks {
        let (a, got) = match task.await {
            Ok(done) => done,
            Err(error) => panic!("append task failed: {error}"),
        };
        assert_eq!((got.duplicates, got.dead_lettered), (0, 0));
        assert_eq!(got.sequences.len(), EACH);
        assert!(
            got.sequences.windows(2).all(|w| w[0] < w[1]),
            "one append's sequences increase: {:?}",
            got.sequences
        );
        if contiguous {
            assert!(
                got.sequences.windows(2).all(|w| w[1] == w[0] + 1),
                "one append's sequences are consecutive: {:?}",
                got.sequences
            );
        }
        for (i, sequence) in got.sequences.iter().enumerate() {
            assert!(
                by_sequence.insert(*sequence, format!("c{a}-{i}")).is_none(),
                "sequence {sequence} assigned twice"
            );
        }
    }
    let total = (APPENDS * EACH) as u64;
    assert_eq!(
        by_sequence.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let events = read(&*log, 0, 1000).await;
    let read_back: Vec<(u64, String)> = events
        .iter()
        .map(|e| (e.sequence, crate::rules::provider_event_id(e).to_owned()))
        .collect();
    assert_eq!(read_back, by_sequence.into_iter().collect::<Vec<_>>());
    assert_eq!(last(&*log), total);
}

/// `read_after` returns at most `max` events after `after`, in order, and nothing past the
/// end (whatever `after` is).
pub async fn read_after_pages_in_order(store: impl Store) {
    let log = open(&store).await;
    let ids: Vec<String> = (1..=10).map(|i| format!("p{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    append(&log, request(&ids[..4], &[])).await;
    append(&log, request(&ids[4..], &[])).await;
    let page = |events: Vec<Event>| events.iter().map(|e| e.sequence).collect::<Vec<_>>();
    assert_eq!(page(read(&log, 0, 3).await), vec![1, 2, 3]);
    assert_eq!(page(read(&log, 3, 3).await), vec![4, 5, 6]);
    assert_eq!(page(read(&log, 6, 3).await), vec![7, 8, 9]);
    assert_eq!(page(read(&log, 9, 3).await), vec![10]);
    assert_eq!(page(read(&log, 10, 3).await), Vec::<u64>::new());
    assert_eq!(page(read(&log, 0, 0).await), Vec::<u64>::new());
    assert_eq!(page(read(&log, 100, 5).await), Vec::<u64>::new());
    assert_eq!(page(read(&log, u64::MAX, 5).await), Vec::<u64>::new());
    assert_eq!(read(&log, 4, 1).await, vec![stored(event(SOURCE, "p5"), 5)]);
}

/// `read_stored_after` is `read_after` encoded: the same events, each with its envelope
/// fields, fresh from the writer and after reopening (read back from storage).
pub async fn stored_reads_are_the_events_encoded(store: impl Store) {
    let check = |stored: Vec<crate::StoredEvent>, events: Vec<Event>| {
        assert_eq!(stored.len(), events.len());
        for (stored, event) in stored.iter().zip(&events) {
            assert_eq!(stored.event().ok().as_ref(), Some(event));
            assert_eq!(stored.sequence(), event.sequence);
            assert_eq!(stored.source(), event.source);
            assert_eq!(stored.event_type(), event.r#type);
            assert_eq!(stored.traceparent(), event.traceparent);
        }
    };
    let mut traced = event(SOURCE, "t1");
    traced.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into();
    traced.r#type = "statement.available".into();
    {
        let log = open(&store).await;
        let mut first = request(&[], &[]);
        first.events = vec![traced.clone().into(), event(SOURCE, "t2").into()];
        append(&log, first).await;
        append(&log, request(&["t3"], &[])).await;
        check(stored_after(&log, 0, 10).await, read(&log, 0, 10).await);
        check(stored_after(&log, 1, 1).await, read(&log, 1, 1).await);
        assert!(stored_after(&log, 3, 10).await.is_empty());
    }
    let log = open(&store).await;
    let events = read(&log, 0, 10).await;
    assert_eq!(events[0], stored(traced, 1));
    check(stored_after(&log, 0, 10).await, events);
}

async fn stored_after<L: EventLog>(log: &L, after: u64, max: usize) -> Vec<crate::StoredEvent> {
    match log.read_stored_after(after, max).await {
        Ok(events) => events,
        Err(error) => panic!("read_stored_after({after}, {max}) failed: {error}"),
    }
}

fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

/// `sequence_before_time(t)` is the sequence just before the first event stored at or after
/// `t`, so reading after it starts there; with nothing at or after `t`, the newest sequence.
pub async fn sequence_before_time_finds_the_event_before_a_time(store: impl Store) {
    let log = open(&store).await;
    let epoch = Timestamp {
        seconds: 0,
        nanos: 0,
    };
    assert_eq!(before_time(&log, epoch).await, 0, "empty log");
    assert_eq!(before_time(&log, now()).await, 0, "empty log");

    append(&log, request(&["t1"], &[])).await;
    tokio::time::sleep(TICK).await;
    let between_1_and_2 = now();
    tokio::time::sleep(TICK).await;
    append(&log, request(&["t2", "t3"], &[])).await;
    tokio::time::sleep(TICK).await;
    let between_3_and_4 = now();
    tokio::time::sleep(TICK).await;
    append(&log, request(&["t4"], &[])).await;
    tokio::time::sleep(TICK).await;
    let after_all = now();

    assert_eq!(before_time(&log, epoch).await, 0);
    let before_1970 = Timestamp {
        seconds: -86_400,
        nanos: 0,
    };
    assert_eq!(before_time(&log, before_1970).await, 0);
    assert_eq!(before_time(&log, between_1_and_2).await, 1);
    assert_eq!(before_time(&log, between_3_and_4).await, 3);
    assert_eq!(before_time(&log, after_all).await, 4);
    let far_future = Timestamp {
        seconds: i64::MAX,
        nanos: 999_999_999,
    };
    assert_eq!(before_time(&log, far_future).await, 4);
}

/// The `last_sequence` watch starts at the newest sequence and is announced before `append`
/// returns; duplicates and dead letters do not change it.
pub async fn last_sequence_announces_appends(store: impl Store) {
    let log = open(&store).await;
    let mut watch = log.last_sequence();
    assert_eq!(*watch.borrow_and_update(), 0);
    let waiter = tokio::spawn(async move {
        let seen = watch.wait_for(|last| *last >= 3).await.map(|last| *last);
        seen.ok()
    });
    assert_eq!(
        append(&log, request(&["w1", "w2", "w3"], &[])).await,
        outcome(&[1, 2, 3], 0, 0)
    );
    assert_eq!(last(&log), 3, "visible when append returns");
    match tokio::time::timeout(Duration::from_secs(10), waiter).await {
        Ok(Ok(seen)) => assert_eq!(seen, Some(3)),
        Ok(Err(error)) => panic!("waiter failed: {error}"),
        Err(_) => panic!("the watch did not announce the append"),
    }

    let mut quiet = log.last_sequence();
    assert_eq!(*quiet.borrow_and_update(), 3);
    assert_eq!(
        append(&log, request(&["w1"], &["x"])).await,
        outcome(&[], 1, 1)
    );
    assert_eq!(quiet.has_changed().ok(), Some(false));
    assert_eq!(last(&log), 3);
}

/// Durable consumers: created positioned (never past the newest event), acks cumulative and
/// never backwards, resets anywhere up to the newest event, lag = newest - acked, delete
/// forgets them, and a new consumer of a deleted name starts afresh.
pub async fn durable_consumers_open_ack_reset_and_delete(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(consumers(&log).await, vec![]);
    append(&log, request(&["k1", "k2", "k3", "k4", "k5"], &[])).await;

    let billing = consumer_ok(
        log.open_consumer("billing", 0, &Filter::default()).await,
        "open billing",
    );
    assert_eq!(position(&billing), ("billing", 0, 5));
    assert!(billing.created_at.is_some());
    assert_eq!(billing.acked_at, None);

    let again = consumer_ok(
        log.open_consumer("billing", 3, &Filter::default()).await,
        "reopen billing",
    );
    assert_eq!(again, billing, "an existing consumer keeps its position");

    let late = consumer_ok(
        log.open_consumer("late", 99, &Filter::default()).await,
        "open late",
    );
    assert_eq!(
        position(&late),
        ("late", 5, 0),
        "never past the newest event"
    );

    let acked = consumer_ok(log.ack("billing", 3).await, "ack 3");
    assert_eq!(position(&acked), ("billing", 3, 2));
    assert_eq!(acked.created_at, billing.created_at);
    assert!(acked.acked_at.is_some());

    let backwards = consumer_ok(log.ack("billing", 2).await, "ack 2");
    assert_eq!(backwards, acked, "acks never move backwards");
    let repeated = consumer_ok(log.ack("billing", 3).await, "ack 3 again");
    assert_eq!(repeated, acked);

    let to_end = consumer_ok(log.ack("billing", 5).await, "ack 5");
    assert_eq!(position(&to_end), ("billing", 5, 0));

    assert_invalid(
        log.ack("billing", 6).await,
        "sequence 6 is beyond the newest event (5)",
    );
    assert_invalid(
        log.ack("nobody", 6).await,
        "sequence 6 is beyond the newest event (5)",
    );
    assert_unknown_consumer(log.ack("nobody", 1).await, "nobody");

    let reset = consumer_ok(log.reset_consumer("billing", 1).await, "reset to 1");
    assert_eq!(position(&reset), ("billing", 1, 4));
    let reset = consumer_ok(log.reset_consumer("billing", 0).await, "reset to 0");
    assert_eq!(position(&reset), ("billing", 0, 5));
    let reset = consumer_ok(log.reset_consumer("billing", 2).await, "reset to 2");
    assert_eq!(position(&reset), ("billing", 2, 3));
    assert_invalid(
        log.reset_consumer("billing", 6).await,
        "sequence 6 is beyond the newest event (5)",
    );
    assert_unknown_consumer(log.reset_consumer("nobody", 0).await, "nobody");

    assert_eq!(
        consumers(&log).await,
        vec![("billing".to_owned(), 2, 3), ("late".to_owned(), 5, 0)]
    );
    append(&log, request(&["k6", "k7"], &[])).await;
    assert_eq!(
        consumers(&log).await,
        vec![("billing".to_owned(), 2, 5), ("late".to_owned(), 5, 2)]
    );

    assert_eq!(log.delete_consumer("billing").await.ok(), Some(true));
    assert_eq!(log.delete_consumer("billing").await.ok(), Some(false));
    assert_eq!(log.delete_consumer("never-was").await.ok(), Some(false));
    assert_eq!(log.delete_consumer("has space").await.ok(), Some(false));
    assert_unknown_consumer(log.ack("billing", 1).await, "billing");
    assert_eq!(consumers(&log).await, vec![("late".to_owned(), 5, 2)]);

    let fresh = consumer_ok(
        log.open_consumer("billing", 6, &Filter::default()).await,
        "recreate billing",
    );
    assert_eq!(position(&fresh), ("billing", 6, 1));
    assert_eq!(fresh.acked_at, None);
}

/// Consumer names are 1 to 128 characters of `A-Z a-z 0-9 . _ -`; valid ones round-trip
/// exactly (dots included).
pub async fn consumer_names_are_validated(store: impl Store) {
    let log = open(&store).await;
    let too_long = "a".repeat(MAX_CONSUMER_NAME + 1);
    for name in [
        "",
        "has space",
        "a/b",
        "a*",
        "a>b",
        "é",
        "a=2Eb",
        too_long.as_str(),
    ] {
        assert_invalid_prefix(
            log.open_consumer(name, 0, &Filter::default()).await,
            "consumer names are 1 to 128 characters",
        );
        // No consumer can have such a name: moving or deleting one finds nothing.
        assert_unknown_consumer(log.ack(name, 0).await, name);
        assert_unknown_consumer(log.reset_consumer(name, 0).await, name);
        assert_eq!(
            log.delete_consumer(name).await.ok(),
            Some(false),
            "{name:?}"
        );
    }
    assert_eq!(consumers(&log).await, vec![]);

    let longest = "L".repeat(MAX_CONSUMER_NAME);
    let names = ["a.b_c-1", "a.b", "a_b", "Z9", longest.as_str()];
    for name in names {
        let consumer = consumer_ok(log.open_consumer(name, 0, &Filter::default()).await, name);
        assert_eq!(consumer.name, name);
    }
    let mut expected: Vec<(String, u64, u64)> =
        names.iter().map(|n| (n.to_string(), 0, 0)).collect();
    expected.sort();
    assert_eq!(consumers(&log).await, expected, "listed by name");
    assert_eq!(log.delete_consumer("a.b").await.ok(), Some(true));
    assert_eq!(consumers(&log).await.len(), names.len() - 1);
    assert_eq!(
        position(&consumer_ok(log.ack("a.b_c-1", 0).await, "ack")),
        ("a.b_c-1", 0, 0)
    );
}

/// Dead letters get increasing ids from 1, are stored as given, and are listed after an id
/// up to a maximum.
pub async fn dead_letters_are_listed_by_id(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(letters(&log, 0, 10).await, vec![]);
    assert_eq!(
        append(&log, request(&["e1"], &["x"])).await,
        outcome(&[1], 0, 1)
    );
    assert_eq!(
        append(&log, request(&[], &["y", "z"])).await,
        outcome(&[], 0, 2)
    );
    let expected: Vec<DeadLetter> = ["x", "y", "z"]
        .iter()
        .zip(1..)
        .map(|(id, letter_id)| DeadLetter {
            id: letter_id,
            ..dead_letter(SOURCE, id)
        })
        .collect();
    assert_eq!(letters(&log, 0, 10).await, expected);
    assert_eq!(letters(&log, 1, 10).await, expected[1..].to_vec());
    assert_eq!(letters(&log, 0, 2).await, expected[..2].to_vec());
    assert_eq!(letters(&log, 3, 10).await, vec![]);
    assert_eq!(letters(&log, 0, 0).await, vec![]);
    assert_eq!(last(&log), 1, "dead letters take no event sequence");
}

/// A redrive that maps the letter appends its events under the letter's source, resolves it
/// (attempt counted, sequences recorded) and keeps provider retries deduplicated.
pub async fn redrive_resolves_a_dead_letter(store: impl Store) {
    let log = open(&store).await;
    append(&log, request(&["a"], &["p1"])).await;
    let redriven = match log.redrive(1, vec![event(SOURCE, "p1").into()], None).await {
        Ok(outcome) => outcome,
        Err(error) => panic!("redrive failed: {error}"),
    };
    assert_eq!(
        redriven,
        RedriveOutcome {
            sequences: vec![2],
            resolved: true,
        }
    );
    assert_eq!(
        read(&log, 1, 10).await,
        vec![stored(event(SOURCE, "p1"), 2)]
    );
    let listed = letters(&log, 0, 10).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].resolved_at.is_some());
    let expected = DeadLetter {
        id: 1,
        resolved_sequences: vec![2],
        redrive_attempts: 1,
        resolved_at: listed[0].resolved_at,
        ..dead_letter(SOURCE, "p1")
    };
    assert_eq!(listed[0], expected);

    // The provider retries the original webhook: whether it maps now or not, it is a duplicate.
    assert_eq!(
        append(&log, request(&["p1"], &[])).await,
        outcome(&[], 1, 0)
    );
    assert_eq!(
        append(&log, request(&[], &["p1"])).await,
        outcome(&[], 1, 0)
    );
    assert_eq!(last(&log), 2);
    assert_eq!(letters(&log, 0, 10).await, vec![expected]);
}

/// A redrive that still fails records the new reason and the attempt and keeps the letter
/// (and its dedup key); events without provider ids are refused without changing it.
pub async fn redrive_still_failing_keeps_the_letter_dead(store: impl Store) {
    let log = open(&store).await;
    append(&log, request(&[], &["p1"])).await;

    assert_invalid(
        log.redrive(1, vec![Event::default().into()], None).await,
        "redriven events need provider event ids",
    );
    let untouched = DeadLetter {
        id: 1,
        ..dead_letter(SOURCE, "p1")
    };
    assert_eq!(letters(&log, 0, 10).await, vec![untouched.clone()]);

    let still = log
        .redrive(1, Vec::new(), Some("still unknown".to_owned()))
        .await;
    match still {
        Ok(outcome) => assert_eq!(outcome, RedriveOutcome::default()),
        Err(error) => panic!("redrive failed: {error}"),
    }
    let failing = DeadLetter {
        reason: "still unknown".to_owned(),
        redrive_attempts: 1,
        ..untouched.clone()
    };
    assert_eq!(letters(&log, 0, 10).await, vec![failing.clone()]);
    assert_eq!(
        append(&log, request(&[], &["p1"])).await,
        outcome(&[], 1, 0),
        "still deduplicated"
    );

    let again = log.redrive(1, Vec::new(), Some("again".to_owned())).await;
    assert!(again.is_ok(), "{again:?}");
    let listed = letters(&log, 0, 10).await;
    assert_eq!(
        (listed[0].redrive_attempts, listed[0].reason.as_str()),
        (2, "again")
    );

    let resolved = log.redrive(1, vec![event(SOURCE, "p1").into()], None).await;
    match resolved {
        Ok(outcome) => assert_eq!(
            outcome,
            RedriveOutcome {
                sequences: vec![1],
                resolved: true,
            }
        ),
        Err(error) => panic!("redrive failed: {error}"),
    }
    let listed = letters(&log, 0, 10).await;
    assert_eq!(
        (
            listed[0].redrive_attempts,
            listed[0].resolved_sequences.clone(),
            listed[0].resolved_at.is_some()
        ),
        (3, vec![1], true)
    );
}

/// Redriving an id that was never assigned is `UnknownDeadLetter`, checked before the events.
pub async fn redrive_of_an_unknown_dead_letter_is_refused(store: impl Store) {
    let log = open(&store).await;
    assert_unknown_dead_letter(log.redrive(7, Vec::new(), None).await, 7);
    assert_unknown_dead_letter(log.redrive(0, Vec::new(), None).await, 0);
    append(&log, request(&[], &["x"])).await;
    assert_unknown_dead_letter(
        log.redrive(2, vec![event(SOURCE, "y").into()], None).await,
        2,
    );
    assert_unknown_dead_letter(
        log.redrive(999, vec![Event::default().into()], None).await,
        999,
    );
    assert_eq!(last(&log), 0);
}

/// Events, dedup keys, dead letters with their redrive state, consumers and the newest
/// sequence survive closing and opening the storage again.
pub async fn everything_survives_reopening(store: impl Store) {
    {
        let log = open(&store).await;
        append(&log, request(&["a", "b"], &["x"])).await;
        let still = log.redrive(1, Vec::new(), Some("still".to_owned())).await;
        assert!(still.is_ok(), "{still:?}");
        consumer_ok(
            log.open_consumer("keeper", 0, &Filter::default()).await,
            "open keeper",
        );
        consumer_ok(log.ack("keeper", 1).await, "ack keeper");
    }
    let log = open(&store).await;
    assert_eq!(last(&log), 2);
    assert_eq!(first(&log).await, 1);
    assert_eq!(
        read(&log, 0, 10).await,
        vec![stored(event(SOURCE, "a"), 1), stored(event(SOURCE, "b"), 2)]
    );
    assert_eq!(
        letters(&log, 0, 10).await,
        vec![DeadLetter {
            id: 1,
            reason: "still".to_owned(),
            redrive_attempts: 1,
            ..dead_letter(SOURCE, "x")
        }]
    );
    assert_eq!(consumers(&log).await, vec![("keeper".to_owned(), 1, 1)]);
    assert_eq!(
        append(&log, request(&["a", "c"], &["x", "y"])).await,
        outcome(&[3], 2, 1)
    );
    let new_letters: Vec<u64> = letters(&log, 1, 10).await.iter().map(|l| l.id).collect();
    assert_eq!(new_letters, vec![2]);
}

fn eager(override_consumers: bool) -> Retention {
    Retention {
        max_age: Some(Duration::ZERO),
        max_bytes: None,
        override_consumers,
        interval: EAGER,
        ..Retention::default()
    }
}

/// Retention that runs often and removes only dead letters.
fn eager_dead_letters(max_age: Option<Duration>, max_count: Option<u64>) -> Retention {
    Retention {
        interval: EAGER,
        dead_letter_max_age: max_age,
        dead_letter_max_count: max_count,
        ..Retention::default()
    }
}

fn letter_ids(letters: &[DeadLetter]) -> Vec<u64> {
    letters.iter().map(|l| l.id).collect()
}

/// Retention removes the oldest events but never one a durable consumer has not acknowledged;
/// reads skip removed sequences (a reader sees the gap: the first event returned is past
/// `after + 1`), `first_sequence` names the oldest kept, `sequence_before_time` does not
/// point before it, and sequences are not reused after the log is emptied.
pub async fn retention_keeps_what_consumers_still_need(store: impl Store) {
    let log = open_with(&store, eager(false)).await;
    consumer_ok(
        log.open_consumer("keeper", 0, &Filter::default()).await,
        "open keeper",
    );
    for id in ["r1", "r2", "r3", "r4", "r5"] {
        append(&log, request(&[id], &[])).await;
        tokio::time::sleep(TICK).await;
    }
    assert_eq!(sequences_after(&log, 0).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(first(&log).await, 1, "held back by keeper");

    consumer_ok(log.ack("keeper", 3).await, "ack 3");
    eventually("events 1 to 3 removed", || async { first(&log).await == 4 }).await;
    assert_eq!(sequences_after(&log, 0).await, vec![4, 5]);
    assert_eq!(sequences_after(&log, 1).await, vec![4, 5]);
    assert_eq!(sequences_after(&log, 3).await, vec![4, 5]);
    assert_eq!(read(&log, 2, 1).await, vec![stored(event(SOURCE, "r4"), 4)]);
    let epoch = Timestamp {
        seconds: 0,
        nanos: 0,
    };
    assert_eq!(before_time(&log, epoch).await, 3);
    assert_eq!(last(&log), 5);
    assert_eq!(consumers(&log).await, vec![("keeper".to_owned(), 3, 2)]);

    consumer_ok(log.ack("keeper", 5).await, "ack 5");
    eventually("every event removed", || async { first(&log).await == 6 }).await;
    assert_eq!(sequences_after(&log, 0).await, Vec::<u64>::new());
    assert_eq!(last(&log), 5, "the newest sequence outlives its event");
    assert_eq!(
        append(&log, request(&["r6"], &[])).await,
        outcome(&[6], 0, 0)
    );
    assert_eq!(
        sequences_after(&log, 0).await,
        vec![6],
        "held back by keeper"
    );
}

/// One event of `kind` per id, in order, from [`SOURCE`].
fn typed_request(events: &[(&str, &str)]) -> AppendRequest {
    AppendRequest {
        source: SOURCE.to_owned(),
        events: events
            .iter()
            .map(|(id, kind)| {
                Event {
                    r#type: (*kind).to_owned(),
                    ..event(SOURCE, id)
                }
                .into()
            })
            .collect(),
        dead_letters: Vec::new(),
        archive: None,
    }
}

async fn advanced<L: EventLog>(log: &L, consumer: Consumer) -> Consumer {
    match crate::filtered::advance(log, consumer).await {
        Ok(consumer) => consumer,
        Err(error) => panic!("advance failed: {error}"),
    }
}

async fn filtered_consumers<L: EventLog>(log: &L) -> Vec<(String, u64, u64)> {
    match crate::filtered::consumers(log).await {
        Ok(consumers) => consumers
            .into_iter()
            .map(|c| (c.name, c.acked_sequence, c.lag))
            .collect(),
        Err(error) => panic!("filtered consumers failed: {error}"),
    }
}

/// A consumer records its subscription's filter (stored, reopened, replaced); events after its
/// position that the filter does not select are acknowledged on its behalf up to the next one
/// it selects, its lag counts only what it would still receive, and retention removes what it
/// skipped. An unfiltered consumer is not moved.
pub async fn filtered_consumers_move_over_the_events_they_skip(store: impl Store) {
    let statements = Filter {
        sources: Vec::new(),
        types: vec!["statement.*".to_owned()],
    };
    let log = open_with(&store, eager(false)).await;
    let opened = consumer_ok(
        log.open_consumer("statements", 0, &statements).await,
        "open",
    );
    assert_eq!(opened.filter.as_ref(), Some(&statements));
    consumer_ok(
        log.open_consumer("everything", 0, &Filter::default()).await,
        "open everything",
    );
    let kinds = [
        ("f1", "statement.available"),
        ("f2", "consent.granted"),
        ("f3", "consent.granted"),
        ("f4", "statement.available"),
        ("f5", "consent.revoked"),
        ("f6", "consent.revoked"),
    ];
    assert_eq!(
        append(&log, typed_request(&kinds)).await,
        outcome(&[1, 2, 3, 4, 5, 6], 0, 0)
    );
    assert_eq!(
        filtered_consumers(&log).await,
        vec![
            ("everything".to_owned(), 0, 6),
            ("statements".to_owned(), 0, 2),
        ],
        "the first event is selected: nothing to skip yet"
    );

    let acked = consumer_ok(log.ack("statements", 1).await, "ack 1");
    assert_eq!(position(&acked), ("statements", 1, 5));
    let moved = advanced(&log, acked).await;
    assert_eq!(moved.acked_sequence, 3, "over f2 and f3, up to f4");
    assert_eq!(moved.filter.as_ref(), Some(&statements));
    assert_eq!(
        filtered_consumers(&log).await,
        vec![
            ("everything".to_owned(), 0, 6),
            ("statements".to_owned(), 3, 1),
        ]
    );

    let acked = consumer_ok(log.ack("statements", 4).await, "ack 4");
    assert_eq!(
        advanced(&log, acked).await.acked_sequence,
        6,
        "to the newest"
    );
    assert_eq!(
        append(
            &log,
            typed_request(&[("f7", "consent.granted"), ("f8", "consent.granted")])
        )
        .await,
        outcome(&[7, 8], 0, 0)
    );
    assert_eq!(
        filtered_consumers(&log).await,
        vec![
            ("everything".to_owned(), 0, 8),
            ("statements".to_owned(), 8, 0),
        ],
        "events it never receives neither count nor wait"
    );
    match crate::filtered::advance_all(&log).await {
        Ok(()) => {}
        Err(error) => panic!("advance_all failed: {error}"),
    }

    // Only the unfiltered consumer holds retention back now.
    assert_eq!(first(&log).await, 1, "held back by everything");
    consumer_ok(log.ack("everything", 8).await, "ack everything");
    eventually("every event removed", || async { first(&log).await == 9 }).await;

    // Reopened, a consumer keeps its position and takes the subscription's filter.
    let consents = Filter {
        sources: vec![SOURCE.to_owned()],
        types: vec!["consent.".to_owned()],
    };
    let reopened = consumer_ok(
        log.open_consumer("statements", 0, &consents).await,
        "reopen",
    );
    assert_eq!(reopened.acked_sequence, 8);
    assert_eq!(reopened.filter.as_ref(), Some(&consents));
    append(
        &log,
        typed_request(&[("f9", "statement.available"), ("f10", "consent.granted")]),
    )
    .await;
    assert_eq!(
        filtered_consumers(&log).await,
        vec![
            ("everything".to_owned(), 8, 2),
            ("statements".to_owned(), 9, 1),
        ]
    );
    drop(log);
    let log = open(&store).await;
    let listed = match log.consumers().await {
        Ok(listed) => listed,
        Err(error) => panic!("consumers failed: {error}"),
    };
    let filters: Vec<_> = listed.iter().map(|c| c.filter.clone()).collect();
    assert_eq!(
        filters,
        vec![None, Some(consents)],
        "stored with the consumer"
    );
}

/// With `override_consumers`, retention removes events a consumer still needs.
pub async fn retention_can_override_consumers(store: impl Store) {
    let log = open_with(&store, eager(true)).await;
    consumer_ok(
        log.open_consumer("ignored", 0, &Filter::default()).await,
        "open",
    );
    for id in ["o1", "o2", "o3"] {
        append(&log, request(&[id], &[])).await;
        tokio::time::sleep(TICK).await;
    }
    eventually("every event removed", || async { first(&log).await == 4 }).await;
    assert_eq!(sequences_after(&log, 0).await, Vec::<u64>::new());
    assert_eq!(consumers(&log).await, vec![("ignored".to_owned(), 0, 3)]);
    assert_eq!(last(&log), 3);
}

/// Retention that removes part of one append (its events share one millisecond of log time)
/// keeps that millisecond findable: `sequence_before_time` of a time before the batch points
/// just before the first event that survived, so a `from time` subscriber skips nothing kept.
pub async fn retention_cutting_a_batch_keeps_its_time(store: impl Store) {
    let log = open_with(&store, eager(false)).await;
    consumer_ok(
        log.open_consumer("keeper", 0, &Filter::default()).await,
        "open keeper",
    );
    append(&log, request(&["c0"], &[])).await;
    tokio::time::sleep(TICK).await;
    let between = now();
    tokio::time::sleep(TICK).await;
    assert_eq!(
        append(&log, request(&["c1", "c2", "c3"], &[])).await,
        outcome(&[2, 3, 4], 0, 0)
    );
    tokio::time::sleep(TICK).await;
    let after_all = now();

    // Removes 1 and 2: the batch 2-4 is cut after its first event.
    consumer_ok(log.ack("keeper", 2).await, "ack 2");
    eventually("events 1 and 2 removed", || async {
        first(&log).await == 3
    })
    .await;
    assert_eq!(sequences_after(&log, 0).await, vec![3, 4]);
    let epoch = Timestamp {
        seconds: 0,
        nanos: 0,
    };
    assert_eq!(before_time(&log, epoch).await, 2, "from the beginning");
    assert_eq!(before_time(&log, between).await, 2, "from before the batch");
    assert_eq!(before_time(&log, after_all).await, 4, "after everything");

    // The same after reopening (the index is stored, not rebuilt).
    drop(log);
    let log = open_with(&store, eager(false)).await;
    assert_eq!(before_time(&log, between).await, 2, "after reopening");
    assert_eq!(sequences_after(&log, 2).await, vec![3, 4]);
}

/// Retention removing an event does not forget its (source, provider event id): a provider
/// retry arriving afterwards (within the dedup horizon, 30 days by default) is a duplicate,
/// also after reopening, while new ids are stored as usual.
pub async fn dedup_outlives_the_retention_of_events(store: impl Store) {
    {
        let log = open_with(&store, eager(false)).await;
        assert_eq!(
            append(&log, request(&["g1", "g2"], &[])).await,
            outcome(&[1, 2], 0, 0)
        );
        tokio::time::sleep(TICK).await;
        eventually("events 1 and 2 removed", || async {
            first(&log).await == 3
        })
        .await;
        assert_eq!(sequences_after(&log, 0).await, Vec::<u64>::new());
        assert_eq!(
            append(&log, request(&["g1", "g2", "g3"], &[])).await,
            outcome(&[3], 2, 0),
            "retries of removed events are duplicates"
        );
    }
    let log = open(&store).await;
    assert_eq!(
        append(&log, request(&["g1", "g2", "g3", "g4"], &[])).await,
        outcome(&[4], 3, 0),
        "still after reopening"
    );
    assert_eq!(last(&log), 4);
}

/// With `dead_letter_max_count`, retention removes the oldest dead letters (resolved or not)
/// beyond the count; their keys stay, so retries of them are duplicates, and ids are not
/// reused.
pub async fn dead_letters_beyond_the_count_are_removed_keeping_their_dedup_keys(store: impl Store) {
    {
        let log = open_with(&store, eager_dead_letters(None, Some(2))).await;
        assert_eq!(
            append(&log, request(&[], &["x", "y", "z"])).await,
            outcome(&[], 0, 3)
        );
        eventually("dead letter 1 removed", || async {
            letter_ids(&letters(&log, 0, 10).await) == [2, 3]
        })
        .await;
        assert_eq!(
            append(&log, request(&[], &["x", "y"])).await,
            outcome(&[], 2, 0),
            "a removed dead letter's key stays"
        );
        assert_eq!(append(&log, request(&[], &["w"])).await, outcome(&[], 0, 1));
        eventually("dead letter 2 removed", || async {
            letter_ids(&letters(&log, 0, 10).await) == [3, 4]
        })
        .await;
        let listed = letters(&log, 0, 10).await;
        assert_eq!(
            listed,
            vec![
                DeadLetter {
                    id: 3,
                    ..dead_letter(SOURCE, "z")
                },
                DeadLetter {
                    id: 4,
                    ..dead_letter(SOURCE, "w")
                },
            ]
        );
    }
    let log = open(&store).await;
    assert_eq!(
        append(&log, request(&[], &["x", "y", "v"])).await,
        outcome(&[], 2, 1)
    );
    assert_eq!(
        letter_ids(&letters(&log, 0, 10).await),
        vec![3, 4, 5],
        "ids are not reused"
    );
    assert_eq!(last(&log), 0);
}

/// With `dead_letter_max_age`, retention removes resolved dead letters resolved longer ago
/// and keeps unresolved ones; the keys of the removed ones stay (the provider's retry of a
/// redriven item is a duplicate), and ids are not reused, even when the newest letter went.
pub async fn resolved_dead_letters_expire_keeping_their_dedup_keys(store: impl Store) {
    {
        let log = open_with(&store, eager_dead_letters(Some(Duration::ZERO), None)).await;
        assert_eq!(
            append(&log, request(&[], &["p1", "p2", "p3"])).await,
            outcome(&[], 0, 3)
        );
        let still = log.redrive(2, Vec::new(), Some("still".to_owned())).await;
        assert!(still.is_ok(), "{still:?}");
        for (id, provider_id, sequence) in [(1, "p1", 1), (3, "p3", 2)] {
            match log
                .redrive(id, vec![event(SOURCE, provider_id).into()], None)
                .await
            {
                Ok(redriven) => assert_eq!(
                    redriven,
                    RedriveOutcome {
                        sequences: vec![sequence],
                        resolved: true,
                    }
                ),
                Err(error) => panic!("redrive {id} failed: {error}"),
            }
        }
        eventually("resolved dead letters removed", || async {
            letter_ids(&letters(&log, 0, 10).await) == [2]
        })
        .await;
        assert_eq!(
            letters(&log, 0, 10).await,
            vec![DeadLetter {
                id: 2,
                reason: "still".to_owned(),
                redrive_attempts: 1,
                ..dead_letter(SOURCE, "p2")
            }],
            "unresolved dead letters stay"
        );
        assert_eq!(
            append(&log, request(&["p1", "p3"], &["p1", "p2", "p3"])).await,
            outcome(&[], 5, 0),
            "the provider's retries are duplicates"
        );
        assert_eq!(
            sequences_after(&log, 0).await,
            vec![1, 2],
            "the redriven events stay"
        );
    }
    let log = open(&store).await;
    assert_eq!(
        append(&log, request(&[], &["p4"])).await,
        outcome(&[], 0, 1)
    );
    assert_eq!(
        letter_ids(&letters(&log, 0, 10).await),
        vec![2, 4],
        "id 3 is not reused"
    );
}

fn archive_entry(content_key: &str) -> ArchiveEntry {
    ArchiveEntry {
        source: SOURCE.to_owned(),
        content_key: content_key.to_owned(),
        received_at: Some(Timestamp {
            seconds: 1_700_000_002,
            nanos: 0,
        }),
        adapter: "conformance".to_owned(),
        adapter_version: "1.0.0".to_owned(),
        key_id: "k1".to_owned(),
        nonce: vec![7; 24],
        ciphertext: format!("sealed {content_key}").into_bytes(),
        ..Default::default()
    }
}

fn archived(events: &[&str], dead_letters: &[&str], content_key: &str) -> AppendRequest {
    AppendRequest {
        archive: Some(archive_entry(content_key)),
        ..request(events, dead_letters)
    }
}

async fn entry<L: EventLog>(log: &L, id: u64) -> Option<ArchiveEntry> {
    match log.archive_entry(id).await {
        Ok(entry) => entry,
        Err(error) => panic!("archive_entry({id}) failed: {error}"),
    }
}

async fn entry_ids<L: EventLog>(log: &L, after: u64) -> Vec<u64> {
    match log.archive_entries(after, 100).await {
        Ok(entries) => entries.iter().map(|e| e.id).collect(),
        Err(error) => panic!("archive_entries({after}) failed: {error}"),
    }
}

/// A webhook's archive entry is stored with its items: it gets an id from 1, lists what they
/// became, and every stored item points back at it.
pub async fn archive_entries_are_stored_with_their_items(store: impl Store) {
    let log = open(&store).await;
    assert_eq!(
        append(&log, archived(&["a", "b"], &["x"], "sha256:one")).await,
        AppendOutcome {
            archive_id: 1,
            ..outcome(&[1, 2], 0, 1)
        }
    );
    assert_eq!(
        entry(&log, 1).await,
        Some(ArchiveEntry {
            id: 1,
            sequences: vec![1, 2],
            dead_letter_ids: vec![1],
            ..archive_entry("sha256:one")
        })
    );
    let events = read(&log, 0, 10).await;
    assert_eq!(events.iter().map(|e| e.raw_id).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(letters(&log, 0, 10).await[0].raw_id, 1);
    assert_eq!(
        append(&log, archived(&[], &[], "sha256:ping")).await,
        AppendOutcome {
            archive_id: 2,
            ..outcome(&[], 0, 0)
        },
        "a webhook that produced nothing is archived too"
    );
    assert_eq!(
        append(&log, request(&["c"], &[])).await,
        outcome(&[3], 0, 0),
        "an append without an entry archives nothing"
    );
    assert_eq!(read(&log, 2, 1).await[0].raw_id, 0);
    assert_eq!(entry_ids(&log, 0).await, [1, 2]);
    assert_eq!(entry_ids(&log, 1).await, [2]);
    assert_eq!(entry(&log, 3).await, None);
}

/// The same webhook again (same source and content key) adds no entry: the stored one is
/// reused, and extended with whatever the retry newly stored.
pub async fn a_retry_finds_its_archive_entry_and_extends_it(store: impl Store) {
    let log = open(&store).await;
    append(&log, archived(&["a"], &[], "sha256:same")).await;
    assert_eq!(
        append(&log, archived(&["a"], &[], "sha256:same")).await,
        AppendOutcome {
            archive_id: 1,
            ..outcome(&[], 1, 0)
        }
    );
    assert_eq!(
        append(&log, archived(&["a", "b"], &["y"], "sha256:same")).await,
        AppendOutcome {
            archive_id: 1,
            ..outcome(&[2], 1, 1)
        }
    );
    let stored = entry(&log, 1).await.expect("entry 1");
    assert_eq!(
        (stored.sequences, stored.dead_letter_ids),
        (vec![1, 2], vec![1])
    );
    assert_eq!(read(&log, 1, 1).await[0].raw_id, 1);
    assert_eq!(entry_ids(&log, 0).await, [1]);
    assert_eq!(
        append(&log, archived(&["c", "a"], &[], "sha256:same")).await,
        AppendOutcome {
            archive_id: 1,
            ..outcome(&[3], 1, 0)
        },
        "found through any stored item, not only the first"
    );
    assert_eq!(entry(&log, 1).await.expect("entry 1").sequences, [1, 2, 3]);
    for _ in 0..2 {
        assert_eq!(
            append(&log, archived(&[], &[], "sha256:nothing")).await,
            AppendOutcome {
                archive_id: 2,
                ..outcome(&[], 0, 0)
            },
            "a webhook that stored nothing is found again too"
        );
    }
    assert_eq!(
        append(&log, archived(&["a"], &[], "sha256:edited")).await,
        AppendOutcome {
            archive_id: 3,
            ..outcome(&[], 1, 0)
        },
        "another body with a stored item's id is another webhook"
    );
    assert_eq!(entry_ids(&log, 0).await, [1, 2, 3]);
    drop(log);
    let log = open(&store).await;
    for _ in 0..2 {
        assert_eq!(
            append(&log, archived(&[], &[], "sha256:nothing"))
                .await
                .archive_id,
            2,
            "found again after reopening"
        );
    }
    assert_eq!(
        append(&log, archived(&[], &[], "sha256:other"))
            .await
            .archive_id,
        4,
        "ids continue after reopening"
    );
}

/// Archive retention removes entries by age without touching events, and ids are not
/// reused.
pub async fn archive_entries_expire_on_their_own(store: impl Store) {
    {
        let log = open_with(
            &store,
            Retention {
                archive_max_age: Some(Duration::ZERO),
                interval: EAGER,
                ..Retention::default()
            },
        )
        .await;
        append(&log, archived(&["a"], &[], "sha256:old")).await;
        eventually("entry 1 removed", || async {
            entry(&log, 1).await.is_none()
        })
        .await;
        assert_eq!(sequences_after(&log, 0).await, [1], "events stay");
        assert_eq!(entry_ids(&log, 0).await, Vec::<u64>::new());
    }
    let log = open(&store).await;
    assert_eq!(
        append(&log, archived(&["b"], &[], "sha256:new"))
            .await
            .archive_id,
        2
    );
}

/// A new seal for entry `id`, replacing the seal [`archive_entry`] gives (`k1`).
fn reseal(id: u64, key_id: &str) -> Reseal {
    Reseal {
        id,
        from_key_id: "k1".to_owned(),
        from_nonce: vec![7; 24],
        key_id: key_id.to_owned(),
        nonce: vec![id as u8; 24],
        ciphertext: format!("resealed {id} with {key_id}").into_bytes(),
    }
}

async fn reseal_entry<L: EventLog>(log: &L, reseal: Reseal) -> ResealOutcome {
    let id = reseal.id;
    match log.reseal_archive_entry(reseal).await {
        Ok(outcome) => outcome,
        Err(error) => panic!("reseal_archive_entry({id}) failed: {error}"),
    }
}

/// `entry` with the seal `reseal` wrote.
fn with_seal(entry: ArchiveEntry, reseal: &Reseal) -> ArchiveEntry {
    ArchiveEntry {
        key_id: reseal.key_id.clone(),
        nonce: reseal.nonce.clone(),
        ciphertext: reseal.ciphertext.clone(),
        ..entry
    }
}

/// Resealing an entry (a key rotation) changes its key id, nonce and ciphertext in place:
/// the same id, metadata, links and order; events still name it; a retry of its webhook still
/// finds it; only a caller that read the current seal can replace it; it survives reopening.
pub async fn resealed_archive_entries_keep_their_id_links_and_order(store: impl Store) {
    let log = open(&store).await;
    append(&log, archived(&["a", "b"], &["x"], "sha256:one")).await;
    append(&log, archived(&[], &[], "sha256:ping")).await;
    append(&log, archived(&["c"], &[], "sha256:three")).await;
    let (first, second) = (reseal(1, "k2"), reseal(2, "k2"));
    assert_eq!(
        reseal_entry(&log, first.clone()).await,
        ResealOutcome::Rewritten
    );
    assert_eq!(
        reseal_entry(&log, second.clone()).await,
        ResealOutcome::Rewritten
    );
    let expected_first = with_seal(
        ArchiveEntry {
            id: 1,
            sequences: vec![1, 2],
            dead_letter_ids: vec![1],
            ..archive_entry("sha256:one")
        },
        &first,
    );
    let expected_second = with_seal(
        ArchiveEntry {
            id: 2,
            ..archive_entry("sha256:ping")
        },
        &second,
    );
    let expected_third = ArchiveEntry {
        id: 3,
        sequences: vec![3],
        ..archive_entry("sha256:three")
    };
    assert_eq!(entry(&log, 1).await, Some(expected_first.clone()));
    assert_eq!(entry(&log, 2).await, Some(expected_second.clone()));
    assert_eq!(
        entry(&log, 3).await,
        Some(expected_third.clone()),
        "the others are untouched"
    );
    match log.archive_entries(0, 100).await {
        Ok(entries) => assert_eq!(
            entries,
            [
                expected_first.clone(),
                expected_second.clone(),
                expected_third.clone()
            ]
        ),
        Err(error) => panic!("archive_entries failed: {error}"),
    }
    let events = read(&log, 0, 10).await;
    assert_eq!(
        events.iter().map(|e| e.raw_id).collect::<Vec<_>>(),
        [1, 1, 3],
        "events still name their entries"
    );
    assert_eq!(letters(&log, 0, 10).await[0].raw_id, 1);

    assert_eq!(
        reseal_entry(&log, reseal(1, "k3")).await,
        ResealOutcome::Changed,
        "a seal read before the rewrite is stale"
    );
    assert_eq!(entry(&log, 1).await, Some(expected_first.clone()));
    let again = Reseal {
        from_key_id: first.key_id.clone(),
        from_nonce: first.nonce.clone(),
        ..reseal(1, "k3")
    };
    assert_eq!(
        reseal_entry(&log, again.clone()).await,
        ResealOutcome::Rewritten,
        "the current seal can be replaced again"
    );
    let expected_first = with_seal(expected_first, &again);
    assert_eq!(entry(&log, 1).await, Some(expected_first.clone()));

    assert_eq!(
        append(&log, archived(&["a", "d"], &[], "sha256:one")).await,
        AppendOutcome {
            archive_id: 1,
            ..outcome(&[4], 1, 0)
        },
        "a retry of a resealed webhook finds its entry"
    );
    assert_eq!(
        append(&log, archived(&[], &[], "sha256:ping"))
            .await
            .archive_id,
        2
    );
    let expected_first = ArchiveEntry {
        sequences: vec![1, 2, 4],
        ..expected_first
    };
    assert_eq!(
        entry(&log, 1).await,
        Some(expected_first.clone()),
        "extended by the retry, still with the new seal"
    );

    let invalid = Reseal {
        ciphertext: Vec::new(),
        ..reseal(3, "k2")
    };
    match log.reseal_archive_entry(invalid).await {
        Err(LogError::Invalid(_)) => {}
        other => panic!("an empty ciphertext must be refused, got {other:?}"),
    }
    assert_eq!(entry(&log, 3).await, Some(expected_third.clone()));

    drop(log);
    let log = open(&store).await;
    assert_eq!(entry(&log, 1).await, Some(expected_first));
    assert_eq!(entry(&log, 2).await, Some(expected_second));
    assert_eq!(entry(&log, 3).await, Some(expected_third));
    assert_eq!(entry_ids(&log, 0).await, [1, 2, 3]);
}

/// Resealing an id that names no entry (never stored, or removed by retention) is reported
/// as missing and stores nothing; a resealed entry still expires by its own age.
pub async fn resealing_a_missing_or_removed_entry_writes_nothing(store: impl Store) {
    {
        let log = open(&store).await;
        append(&log, archived(&["a"], &[], "sha256:old")).await;
        for id in [0, 2, u64::MAX] {
            assert_eq!(
                reseal_entry(&log, reseal(id, "k2")).await,
                ResealOutcome::Missing,
                "id {id}"
            );
        }
        assert_eq!(entry_ids(&log, 0).await, [1]);
        assert_eq!(
            reseal_entry(&log, reseal(1, "k2")).await,
            ResealOutcome::Rewritten
        );
    }
    let log = open_with(
        &store,
        Retention {
            archive_max_age: Some(Duration::ZERO),
            interval: EAGER,
            ..Retention::default()
        },
    )
    .await;
    eventually("resealed entry 1 removed by its age", || async {
        entry(&log, 1).await.is_none()
    })
    .await;
    assert_eq!(
        reseal_entry(&log, reseal(1, "k2")).await,
        ResealOutcome::Missing
    );
    assert_eq!(
        entry(&log, 1).await,
        None,
        "a reseal never restores an entry"
    );
    assert_eq!(entry_ids(&log, 0).await, Vec::<u64>::new());
    assert_eq!(sequences_after(&log, 0).await, [1], "events stay");
}

/// A dead letter whose raw item is sealed with `k1` (as the service stores them).
fn sealed_dead_letter(provider_event_id: &str) -> DeadLetter {
    DeadLetter {
        raw: format!("sealed {provider_event_id}").into_bytes(),
        raw_key_id: "k1".to_owned(),
        raw_nonce: vec![7; 24],
        ..dead_letter(SOURCE, provider_event_id)
    }
}

async fn reseal_letter<L: EventLog>(log: &L, reseal: Reseal) -> ResealOutcome {
    let id = reseal.id;
    match log.reseal_dead_letter(reseal).await {
        Ok(outcome) => outcome,
        Err(error) => panic!("reseal_dead_letter({id}) failed: {error}"),
    }
}

/// Resealing a dead letter's raw item changes `raw_key_id`, `raw_nonce` and `raw` in place:
/// the same id, reason and attempts, still deduplicated; a redrive keeps the new seal; a stale
/// seal, a clear item and an unknown id are reported, not written; it survives reopening.
pub async fn resealed_dead_letters_keep_their_id_state_and_key(store: impl Store) {
    let log = open(&store).await;
    append(
        &log,
        AppendRequest {
            dead_letters: vec![sealed_dead_letter("p1"), dead_letter(SOURCE, "p2")],
            ..request(&[], &[])
        },
    )
    .await;
    let first = reseal(1, "k2");
    assert_eq!(
        reseal_letter(&log, first.clone()).await,
        ResealOutcome::Rewritten
    );
    let expected = DeadLetter {
        id: 1,
        raw: first.ciphertext.clone(),
        raw_key_id: "k2".to_owned(),
        raw_nonce: first.nonce.clone(),
        ..sealed_dead_letter("p1")
    };
    let clear = DeadLetter {
        id: 2,
        ..dead_letter(SOURCE, "p2")
    };
    assert_eq!(
        letters(&log, 0, 10).await,
        vec![expected.clone(), clear.clone()]
    );
    assert_eq!(
        reseal_letter(&log, reseal(1, "k3")).await,
        ResealOutcome::Changed,
        "a seal read before the rewrite is stale"
    );
    assert_eq!(
        reseal_letter(&log, reseal(2, "k2")).await,
        ResealOutcome::Changed,
        "an item stored in clear has no seal to replace"
    );
    for id in [0, 3, u64::MAX] {
        assert_eq!(
            reseal_letter(&log, reseal(id, "k2")).await,
            ResealOutcome::Missing,
            "id {id}"
        );
    }
    match log
        .reseal_dead_letter(Reseal {
            key_id: String::new(),
            ..reseal(1, "k2")
        })
        .await
    {
        Err(LogError::Invalid(_)) => {}
        other => panic!("an empty key id must be refused, got {other:?}"),
    }
    assert_eq!(
        append(
            &log,
            AppendRequest {
                dead_letters: vec![sealed_dead_letter("p1")],
                ..request(&[], &[])
            }
        )
        .await,
        outcome(&[], 1, 0),
        "still deduplicated"
    );
    match log
        .redrive(1, Vec::new(), Some("still unknown".to_owned()))
        .await
    {
        Ok(outcome) => assert_eq!(outcome, RedriveOutcome::default()),
        Err(error) => panic!("redrive failed: {error}"),
    }
    let redriven = DeadLetter {
        reason: "still unknown".to_owned(),
        redrive_attempts: 1,
        ..expected
    };
    assert_eq!(
        letters(&log, 0, 1).await,
        vec![redriven.clone()],
        "a redrive keeps the new seal"
    );
    drop(log);
    let log = open(&store).await;
    assert_eq!(letters(&log, 0, 10).await, vec![redriven, clear]);
}

/// `sequence_of` finds an event by its dedup key, and nothing for a dead letter or an
/// unknown id.
pub async fn sequence_of_finds_stored_events_only(store: impl Store) {
    let log = open(&store).await;
    append(&log, request(&["a", "b"], &["x"])).await;
    for (id, expected) in [("a", Some(1)), ("b", Some(2)), ("x", None), ("zz", None)] {
        match log.sequence_of(SOURCE, id).await {
            Ok(got) => assert_eq!(got, expected, "{id}"),
            Err(error) => panic!("sequence_of({id}) failed: {error}"),
        }
    }
    match log.sequence_of("elsewhere", "a").await {
        Ok(got) => assert_eq!(got, None),
        Err(error) => panic!("sequence_of failed: {error}"),
    }
}

/// A replayed event (`replay_of` set) is deduplicated on its provider event id and adapter
/// version, apart from the original: replaying again with the same version adds nothing.
pub async fn replayed_events_dedup_per_adapter_version(store: impl Store) {
    let log = open(&store).await;
    append(&log, request(&["a"], &[])).await;
    let replay = |version: &str| {
        let mut event = event(SOURCE, "a");
        if let Some(provenance) = event.provenance.as_mut() {
            provenance.adapter_version = version.to_owned();
        }
        event.replay_of = Some(ReplayOf {
            event_id: format!("{SOURCE}:a"),
            sequence: 1,
            adapter_version: "1.0.0".to_owned(),
        });
        AppendRequest {
            events: vec![event.into()],
            ..request(&[], &[])
        }
    };
    assert_eq!(append(&log, replay("2.0.0")).await, outcome(&[2], 0, 0));
    assert_eq!(append(&log, replay("2.0.0")).await, outcome(&[], 1, 0));
    assert_eq!(append(&log, replay("3.0.0")).await, outcome(&[3], 0, 0));
    match log.sequence_of(SOURCE, "a").await {
        Ok(got) => assert_eq!(got, Some(1), "the original keeps its key"),
        Err(error) => panic!("sequence_of failed: {error}"),
    }
}

/// An event given as an adapter's encoding, with envelope fields set on it afterwards (sent
/// as encoded fields appended to those bytes, some replacing values the encoding holds), reads
/// back as the event with those fields set: decoded, and as stored.
pub async fn encoded_events_read_back_with_their_appended_fields(store: impl Store) {
    use prost::Message as _;
    let log = open(&store).await;
    let from_adapter = Event {
        id: "set by the adapter".to_owned(),
        time: Some(Timestamp {
            seconds: 7,
            nanos: 8,
        }),
        received_at: Some(Timestamp {
            seconds: 1,
            nanos: 999,
        }),
        provenance: Some(Provenance {
            adapter: "set by the adapter".to_owned(),
            provider_event_type: "KEPT".to_owned(),
            ..Provenance::default()
        }),
        ..event(SOURCE, "")
    };
    let encoded = prost::bytes::Bytes::from(from_adapter.encode_to_vec());
    let mut pending = match PendingEvent::decode(encoded) {
        Ok(pending) => pending,
        Err(error) => panic!("the head does not decode: {error}"),
    };
    let received = Timestamp {
        seconds: 100,
        nanos: 0,
    };
    pending.set_adapter("adapter".to_owned(), "1.2.3".to_owned());
    pending.set_provider_event_id("e1".to_owned());
    pending.set_id(format!("{SOURCE}:e1"));
    pending.set_received_at(received);
    pending.set_datacontenttype("application/protobuf".to_owned());
    pending.set_specversion("1.0".to_owned());
    pending.set_trace(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        String::new(),
    );
    let mut request = request(&[], &[]);
    request.events.push(pending);
    assert_eq!(append(&log, request).await, outcome(&[1], 0, 0));

    let mut expected = Event {
        id: format!("{SOURCE}:e1"),
        received_at: Some(received),
        datacontenttype: "application/protobuf".to_owned(),
        specversion: "1.0".to_owned(),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        ..from_adapter.clone()
    };
    if let Some(provenance) = expected.provenance.as_mut() {
        provenance.adapter = "adapter".to_owned();
        provenance.adapter_version = "1.2.3".to_owned();
        provenance.provider_event_id = "e1".to_owned();
    }
    assert_eq!(read(&log, 0, 10).await, vec![stored(expected.clone(), 1)]);
    let as_stored = stored_after(&log, 0, 10).await;
    assert_eq!(as_stored.len(), 1);
    match as_stored[0].event() {
        Ok(event) => assert_eq!(event, stored(expected, 1)),
        Err(error) => panic!("the stored event does not decode: {error}"),
    }
    assert_eq!(as_stored[0].sequence(), 1);
    assert_eq!(as_stored[0].source(), SOURCE);
    match log.sequence_of(SOURCE, "e1").await {
        Ok(got) => assert_eq!(
            got,
            Some(1),
            "deduplicated on the appended provider event id"
        ),
        Err(error) => panic!("sequence_of failed: {error}"),
    }
}
