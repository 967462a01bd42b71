//! Per-webhook latencies of a scenario (`--latency-dir`) and the episodes they show: a tail is
//! usually a few moments when many webhooks were slow together, and their times are what to
//! line up with the server's own logs.
//!
//! The file: a comment line with the start (request 0's intended send time) in Unix time, a
//! header, then `request,intended_us,http_us` per webhook (latency 0: no answer).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

const START: &str = "# start, µs since the Unix epoch: ";
const HEADER: &str = "request,intended_us,http_us";

/// One webhook: its intended send time after the start and its latency, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub intended_us: u64,
    pub latency_us: u32,
}

/// Writes `dir/<file_stem>.latency.csv`.
pub fn write(
    dir: &Path,
    file_stem: &str,
    start_unix_us: u64,
    samples: &[Sample],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut csv = format!("{START}{start_unix_us}\n{HEADER}\n");
    for (n, sample) in samples.iter().enumerate() {
        let _ = writeln!(csv, "{n},{},{}", sample.intended_us, sample.latency_us);
    }
    let file = dir.join(format!("{file_stem}.latency.csv"));
    std::fs::write(&file, csv).with_context(|| format!("cannot write {}", file.display()))
}

/// Reads a file [`write()`] wrote: the start and the samples in request order.
pub fn read(file: &Path) -> anyhow::Result<(u64, Vec<Sample>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut lines = text.lines();
    let start = lines
        .next()
        .and_then(|line| line.strip_prefix(START))
        .and_then(|value| value.parse().ok())
        .context("not a latency file: no start line")?;
    anyhow::ensure!(
        lines.next() == Some(HEADER),
        "not a latency file: no header"
    );
    let samples = lines
        .enumerate()
        .map(|(n, line)| {
            let mut fields = line.split(',').skip(1).map(str::parse::<u64>);
            match (fields.next(), fields.next()) {
                (Some(Ok(intended_us)), Some(Ok(latency))) => Ok(Sample {
                    intended_us,
                    latency_us: u32::try_from(latency).unwrap_or(u32::MAX),
                }),
                _ => anyhow::bail!("line {} is not request,intended_us,http_us", n + 3),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((start, samples))
}

/// Slow webhooks sent close together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// Intended send time of its first slow webhook, after the start.
    pub first_us: u64,
    /// ... and of its last.
    pub last_us: u64,
    pub slow: usize,
    pub max_latency_us: u32,
}

/// Groups the webhooks slower than `over_us` into episodes: a slow webhook sent less than
/// `gap_us` after the previous one joins its episode. In order of time.
pub fn episodes(samples: &[Sample], over_us: u32, gap_us: u64) -> Vec<Episode> {
    let mut slow: Vec<&Sample> = samples.iter().filter(|s| s.latency_us > over_us).collect();
    slow.sort_by_key(|s| s.intended_us);
    let mut episodes: Vec<Episode> = Vec::new();
    for sample in slow {
        match episodes.last_mut() {
            Some(episode) if sample.intended_us - episode.last_us < gap_us => {
                episode.last_us = sample.intended_us;
                episode.slow += 1;
                episode.max_latency_us = episode.max_latency_us.max(sample.latency_us);
            }
            _ => episodes.push(Episode {
                first_us: sample.intended_us,
                last_us: sample.intended_us,
                slow: 1,
                max_latency_us: sample.latency_us,
            }),
        }
    }
    episodes
}

/// The summary `tributary-bench episodes` prints: the share over the threshold, then the
/// largest episodes (most slow webhooks first), each with its start in Unix time.
pub fn summary(
    start_unix_us: u64,
    samples: &[Sample],
    over_ms: f64,
    gap_ms: f64,
    top: usize,
) -> String {
    let over_us = (over_ms * 1_000.0) as u32;
    let found = episodes(samples, over_us, (gap_ms * 1_000.0) as u64);
    let slow: usize = found.iter().map(|e| e.slow).sum();
    let share = 100.0 * slow as f64 / samples.len().max(1) as f64;
    let mut out = format!(
        "{slow} of {} webhooks over {over_ms} ms ({share:.2}%), in {} episodes\n",
        samples.len(),
        found.len()
    );
    let mut largest = found;
    largest.sort_by(|a, b| b.slow.cmp(&a.slow).then(a.first_us.cmp(&b.first_us)));
    for episode in largest.iter().take(top) {
        let _ = writeln!(
            out,
            "at {:8.3} s (Unix {:.3}): {:4} slow over {:6.1} ms, the slowest {:6.1} ms",
            episode.first_us as f64 / 1e6,
            (start_unix_us + episode.first_us) as f64 / 1e6,
            episode.slow,
            (episode.last_us - episode.first_us) as f64 / 1e3,
            f64::from(episode.max_latency_us) / 1e3,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(intended_ms: u64, latency_ms: u32) -> Sample {
        Sample {
            intended_us: intended_ms * 1_000,
            latency_us: latency_ms * 1_000,
        }
    }

    #[test]
    fn slow_webhooks_close_together_make_one_episode() {
        let samples = [
            sample(0, 1),
            sample(10, 30),
            sample(20, 25),
            sample(65, 8),
            sample(200, 2),
            sample(300, 12),
        ];
        assert_eq!(
            episodes(&samples, 5_000, 50_000),
            vec![
                Episode {
                    first_us: 10_000,
                    last_us: 65_000,
                    slow: 3,
                    max_latency_us: 30_000,
                },
                Episode {
                    first_us: 300_000,
                    last_us: 300_000,
                    slow: 1,
                    max_latency_us: 12_000,
                },
            ]
        );
    }

    #[test]
    fn a_written_file_reads_back_and_sums_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let samples = [
            sample(0, 1),
            sample(10, 30),
            sample(20, 25),
            sample(300, 12),
        ];
        write(dir.path(), "scenario", 1_000_000, &samples).expect("write");
        let (start, read_back) = read(&dir.path().join("scenario.latency.csv")).expect("read");
        assert_eq!(start, 1_000_000);
        assert_eq!(read_back, samples);
        assert_eq!(
            summary(start, &read_back, 5.0, 50.0, 10),
            "3 of 4 webhooks over 5 ms (75.00%), in 2 episodes\n\
             at    0.010 s (Unix 1.010):    2 slow over   10.0 ms, the slowest   30.0 ms\n\
             at    0.300 s (Unix 1.300):    1 slow over    0.0 ms, the slowest   12.0 ms\n"
        );
    }
}
