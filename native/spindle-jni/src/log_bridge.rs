//! The runtime's log lines on their way to the JVM's logging (slf4j, then log4j or whatever backs it).
//!
//! The runtime logs from actix, trainer and ring threads that the JVM does not know, so lines cannot go
//! to slf4j where they are made: a JNI call from each would attach every such thread to the JVM. They
//! go into a bounded queue instead, and one JVM daemon thread (`NativeLogs`) takes them in batches
//! through a blocking call and hands each to the slf4j logger of its module. A full queue drops lines
//! and counts them rather than block a training step on logging.
//!
//! The JVM side also sets [`log::set_max_level`] from its logger's level (re-read as it drains), so a
//! line the user's config would discard is not even formatted here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use log::{LevelFilter, Log, Metadata, Record};
use spindle_proto::spindle::{LogBatch, LogLine};

/// Lines the queue holds before it drops new ones: minutes of a chatty runtime at `info`.
const CAPACITY: usize = 10_000;

/// The queue of lines not yet taken by the JVM. One per process ([`bridge`]), installed as the `log`
/// crate's logger by `NativeRuntime.init`.
pub(crate) struct LogBridge {
    lines: (Sender<LogLine>, Receiver<LogLine>),
    dropped: AtomicU64,
}

impl LogBridge {
    pub(crate) fn new(capacity: usize) -> LogBridge {
        LogBridge {
            lines: bounded(capacity),
            dropped: AtomicU64::new(0),
        }
    }

    /// Waits up to `timeout` for a line, then takes it and every line already queued, at most `max`;
    /// the batch also says how many lines were dropped since the last one.
    pub(crate) fn drain(&self, timeout: Duration, max: usize) -> LogBatch {
        let mut batch = LogBatch::default();
        if let Ok(line) = self.lines.1.recv_timeout(timeout) {
            batch.lines.push(line);
        }
        while batch.lines.len() < max {
            let Ok(line) = self.lines.1.try_recv() else {
                break;
            };
            batch.lines.push(line);
        }
        batch.dropped = self.dropped.swap(0, Ordering::Relaxed);
        batch
    }
}

impl Log for LogBridge {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = LogLine {
            level: record.level() as i32,
            target: record.target().to_string(),
            message: record.args().to_string(),
        };
        if let Err(TrySendError::Full(_)) = self.lines.0.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// The process's bridge.
pub(crate) fn bridge() -> &'static LogBridge {
    static BRIDGE: std::sync::LazyLock<LogBridge> =
        std::sync::LazyLock::new(|| LogBridge::new(CAPACITY));
    &BRIDGE
}

/// The `log` level for a JVM level name (`trace`, `debug`, `info`, `warn`, `error` or `off`, any case);
/// anything else is `info`.
pub(crate) fn level_filter(name: &str) -> LevelFilter {
    name.parse().unwrap_or(LevelFilter::Info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    fn log(bridge: &LogBridge, level: Level, target: &str, message: &str) {
        bridge.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{message}"))
                .build(),
        );
    }

    #[test]
    fn lines_keep_their_level_module_and_order() {
        log::set_max_level(LevelFilter::Trace);
        let bridge = LogBridge::new(8);
        log(&bridge, Level::Info, "spindle_runtime::trainer", "epoch 1");
        log(&bridge, Level::Warn, "spindle_runtime::ring", "slow peer");
        let batch = bridge.drain(Duration::from_secs(1), 100);
        let seen: Vec<_> = batch
            .lines
            .iter()
            .map(|l| (l.level, l.target.as_str(), l.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (Level::Info as i32, "spindle_runtime::trainer", "epoch 1"),
                (Level::Warn as i32, "spindle_runtime::ring", "slow peer"),
            ]
        );
        assert_eq!(batch.dropped, 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_drain_takes_at_most_max() {
        log::set_max_level(LevelFilter::Trace);
        let bridge = LogBridge::new(3);
        for i in 0..5 {
            log(&bridge, Level::Info, "t", &format!("line {i}"));
        }
        let first = bridge.drain(Duration::from_secs(1), 2);
        assert_eq!(first.lines.len(), 2);
        assert_eq!(first.dropped, 2, "two of five lines found the queue full");
        let rest = bridge.drain(Duration::from_secs(1), 100);
        assert_eq!(rest.lines[0].message, "line 2");
        assert_eq!(rest.dropped, 0, "the count restarts after each batch");
    }

    #[test]
    fn an_empty_queue_answers_after_the_timeout() {
        let bridge = LogBridge::new(3);
        let started = std::time::Instant::now();
        let batch = bridge.drain(Duration::from_millis(50), 100);
        assert!(batch.lines.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn jvm_level_names_map_to_log_filters() {
        assert_eq!(level_filter("WARN"), LevelFilter::Warn);
        assert_eq!(level_filter("debug"), LevelFilter::Debug);
        assert_eq!(level_filter("off"), LevelFilter::Off);
        assert_eq!(level_filter("ALL?"), LevelFilter::Info);
    }
}
