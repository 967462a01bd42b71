//! The newest events, as committed (encoded, shared), kept in memory by a backend after each
//! commit. A subscriber that is caught up (the common case) reads them from here instead of
//! reading storage, and sends the shared bytes as they are, so many subscribers cost little
//! more than one. Every embedded backend keeps one.

use std::collections::VecDeque;

use crate::StoredEvent;

/// Events kept (a few MiB at most).
pub const RECENT_EVENTS: usize = 2048;

/// A contiguous run of the newest committed events, oldest first.
pub struct Recent {
    events: VecDeque<StoredEvent>,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new()
    }
}

impl Recent {
    /// An empty run, its window allocated once.
    pub fn new() -> Self {
        Self {
            events: VecDeque::with_capacity(RECENT_EVENTS),
        }
    }

    /// Adds newly committed events (in sequence order). A gap empties the run first, so it
    /// always holds consecutive sequences.
    pub fn extend(&mut self, events: impl IntoIterator<Item = StoredEvent>) {
        for event in events {
            if let Some(last) = self.events.back()
                && event.sequence() != last.sequence() + 1
            {
                self.events.clear();
            }
            if self.events.len() == RECENT_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(event);
        }
    }

    /// Up to `max` events after `after`, or `None` when some of them are older than the run
    /// (the caller reads storage then).
    pub fn after(&self, after: u64, max: usize) -> Option<Vec<StoredEvent>> {
        let first = self.events.front()?.sequence();
        if after.saturating_add(1) < first {
            return None;
        }
        let skip = usize::try_from(after.saturating_add(1) - first).unwrap_or(usize::MAX);
        Some(self.events.iter().skip(skip).take(max).cloned().collect())
    }

    /// Forgets events retention removed (sequence `through` and older).
    pub fn remove_through(&mut self, through: u64) {
        while self.events.front().is_some_and(|e| e.sequence() <= through) {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::v1::Event;

    fn event(sequence: u64) -> StoredEvent {
        StoredEvent::encode(&Event {
            sequence,
            ..Default::default()
        })
    }

    fn sequences(events: Option<Vec<StoredEvent>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(StoredEvent::sequence).collect())
    }

    #[test]
    fn serves_only_what_it_holds_contiguously() {
        let mut recent = Recent::new();
        assert_eq!(sequences(recent.after(0, 10)), None);
        recent.extend((5..=8).map(event));
        assert_eq!(sequences(recent.after(3, 10)), None, "4 is not held");
        assert_eq!(sequences(recent.after(4, 10)), Some(vec![5, 6, 7, 8]));
        assert_eq!(sequences(recent.after(6, 1)), Some(vec![7]));
        assert_eq!(sequences(recent.after(8, 10)), Some(vec![]));
        assert_eq!(sequences(recent.after(99, 10)), Some(vec![]));
        assert_eq!(sequences(recent.after(u64::MAX, 10)), Some(vec![]));
        recent.extend([event(10)]);
        assert_eq!(
            sequences(recent.after(8, 10)),
            None,
            "a gap restarts the run"
        );
        assert_eq!(sequences(recent.after(9, 10)), Some(vec![10]));
        recent.remove_through(10);
        assert_eq!(sequences(recent.after(9, 10)), None);
    }

    #[test]
    fn keeps_a_bounded_window() {
        let mut recent = Recent::new();
        recent.extend((1..=(RECENT_EVENTS as u64 + 10)).map(event));
        // 11..=2058 are held.
        assert_eq!(sequences(recent.after(9, 1)), None);
        assert_eq!(sequences(recent.after(10, 1)), Some(vec![11]));
    }
}
