//! Checks over delivered events.

use tributary_model::v1::Event;

/// Asserts the log holds every acknowledged webhook exactly once, with sequences 1..=n and no
/// gap: what "a 2xx means stored" promises after crashes and failovers.
pub fn assert_exactly_once(events: &[Event], acknowledged: &[String]) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1, "no gap in sequences");
        let id = event
            .provenance
            .as_ref()
            .expect("provenance")
            .provider_event_id
            .clone();
        *seen.entry(id).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a webhook was stored twice");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}
