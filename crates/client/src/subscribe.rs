//! The resuming stream: one `Subscribe` call at a time, reopened after the last sequence it
//! handed out whenever the server or the network breaks it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::Stream;
use futures_util::stream::BoxStream;
use tonic::{Code, Status, Streaming};
use tributary_model::v1::subscribe_request::Start as RawStart;
use tributary_model::v1::{Event, Filter, SubscribeRequest};

use crate::ack::Acks;
use crate::connect::Client;
use crate::error::Error;

/// Subscribing is what a [`Client`] is for; the methods live here, beside what they return.
impl Client {
    /// Events matching `filter` from `start` on, as a stream that survives server restarts:
    /// it reconnects with backoff and resumes right after the last event it handed out.
    pub fn subscribe(&self, filter: Filter, start: Start) -> Subscription {
        Subscription::new(self.clone(), filter, start)
    }

    /// The durable consumer `name`: the server keeps its position across client and server
    /// restarts. A new consumer starts at `start`; an existing one resumes after its last ack.
    /// Acknowledge each event once handled with [`Consumer::ack`]; acks are sent in batches
    /// by a task on the current tokio runtime (call this from within one).
    pub fn consumer(&self, name: impl Into<String>, filter: Filter, start: Start) -> Consumer {
        Consumer::new(self.clone(), name.into(), filter, start)
    }
}

/// Where a subscription (or a new durable consumer) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the earliest event still in the log.
    Earliest,
    /// Only events appended after the subscription starts. Should the stream break before
    /// its first event, it reopens from the latest again (events appended during the outage
    /// are not delivered): resume with `After` to lose nothing.
    Latest,
    /// After this sequence (the last one you processed).
    After(u64),
    /// From events received at or after this instant.
    Time(SystemTime),
}

impl Start {
    fn raw(self) -> RawStart {
        match self {
            Start::Earliest => RawStart::FromEarliest(true),
            Start::Latest => RawStart::FromLatest(true),
            Start::After(sequence) => RawStart::AfterSequence(sequence),
            Start::Time(time) => RawStart::FromTime(timestamp(time)),
        }
    }
}

/// `time` as a protobuf timestamp (instants before 1970 count as 1970).
fn timestamp(time: SystemTime) -> tributary_model::well_known::Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    tributary_model::well_known::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// Whether a failed stream is worth reopening: transient trouble, not a refusal.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// The state behind a subscription stream.
struct Resume {
    client: Client,
    request: SubscribeRequest,
    /// The last sequence handed out: the stream resumes after it and skips anything not above.
    last: Option<u64>,
    stream: Option<Streaming<Event>>,
    retries: u32,
    done: bool,
}

impl Resume {
    /// The next event to hand out; `None` once the stream has ended for good.
    async fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            if self.done {
                return None;
            }
            let failure = match self.stream.as_mut() {
                None => match self.open().await {
                    Ok(stream) => {
                        self.stream = Some(stream);
                        continue;
                    }
                    Err(status) => status,
                },
                Some(stream) => match stream.message().await {
                    Ok(Some(event)) => {
                        // A durable consumer resumes after its last *ack*: what was handed
                        // out since then comes again and is skipped here.
                        if self.last.is_some_and(|last| event.sequence <= last) {
                            continue;
                        }
                        self.last = Some(event.sequence);
                        self.retries = 0;
                        return Some(Ok(event));
                    }
                    // The server ended the call (it shuts down): reopen.
                    Ok(None) => Status::unavailable("the server ended the stream"),
                    Err(status) => status,
                },
            };
            self.stream = None;
            self.retries += 1;
            if !retryable(&failure) || !self.client.backoff.allows(self.retries) {
                self.done = true;
                return Some(Err(failure.into()));
            }
            let delay = self.client.backoff.delay(self.retries);
            tracing::warn!(
                code = ?failure.code(),
                after_sequence = self.last,
                retry_in_ms = delay.as_millis() as u64,
                "event stream broken; reconnecting"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn open(&mut self) -> Result<Streaming<Event>, Status> {
        let mut request = self.request.clone();
        if let (Some(last), true) = (self.last, request.consumer.is_empty()) {
            request.start = Some(RawStart::AfterSequence(last));
        }
        Ok(self.client.raw.subscribe(request).await?.into_inner())
    }
}

fn resume_stream(
    client: Client,
    request: SubscribeRequest,
) -> BoxStream<'static, Result<Event, Error>> {
    let state = Resume {
        client,
        request,
        last: None,
        stream: None,
        retries: 0,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        },
    ))
}

/// Events in sequence order, reconnecting and resuming by itself. Ends only after an error
/// that retrying cannot fix (returned as its last item), or when retries are exhausted.
pub struct Subscription {
    events: BoxStream<'static, Result<Event, Error>>,
}

impl Subscription {
    pub(crate) fn new(client: Client, filter: Filter, start: Start) -> Self {
        let request = SubscribeRequest {
            filter: Some(filter),
            consumer: String::new(),
            start: Some(start.raw()),
        };
        Subscription {
            events: resume_stream(client, request),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// A durable consumer's events. Call [`Consumer::ack`] once an event is handled; acks go out
/// in batches ([`crate::AckBatch`]) and once more on [`Consumer::close`] or drop. Events
/// handled but not yet acknowledged when the process dies are delivered again after restart
/// (at least once); within one `Consumer`, none is handed out twice.
pub struct Consumer {
    events: BoxStream<'static, Result<Event, Error>>,
    acks: Acks,
}

impl Consumer {
    pub(crate) fn new(client: Client, name: String, filter: Filter, start: Start) -> Self {
        let acks = Acks::start(client.raw.clone(), name.clone(), client.acks);
        let request = SubscribeRequest {
            filter: Some(filter),
            consumer: name,
            start: Some(start.raw()),
        };
        Consumer {
            events: resume_stream(client, request),
            acks,
        }
    }

    /// Marks `event`, and every event before it, handled.
    pub fn ack(&self, event: &Event) {
        self.acks.record(event.sequence);
    }

    /// Stops consuming: sends the last acks and waits for the server to confirm them.
    pub async fn close(self) {
        self.acks.close().await;
    }
}

impl Stream for Consumer {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}
