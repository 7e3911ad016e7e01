//! How a table's initial copy shows its progress: a bar per table when stderr is a terminal (rows against the
//! source's estimate, MiB read, ETA), else a log line every 10 s; and one line when the copy is committed.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::info;

use crate::schema::TableId;

/// How often a copy without a terminal logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// What a table's copy read: its rows, and the bytes of the source's answer they came in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub rows: u64,
    pub bytes: u64,
}

/// The progress of one table's copy.
#[derive(Debug)]
pub struct CopyProgress {
    table: TableId,
    bar: Option<ProgressBar>,
    rows: u64,
    bytes: u64,
    started: Instant,
    last_report: Instant,
}

impl CopyProgress {
    /// Starts showing the copy of `table`: a bar among `bars` when given.
    pub fn start(bars: Option<&MultiProgress>, table: &TableId, estimated_rows: u64) -> Self {
        let bar = bars.map(|bars| bars.add(progress_bar(&table.to_string(), estimated_rows)));
        let started = Instant::now();
        CopyProgress { table: table.clone(), bar, rows: 0, bytes: 0, started, last_report: started }
    }

    /// Rows copied so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Counts `rows` more rows copied, read from `bytes` bytes of the source's answer.
    pub fn advance(&mut self, rows: u64, bytes: u64) {
        self.rows += rows;
        self.bytes += bytes;
        if let Some(bar) = &self.bar {
            bar.set_length(bar.length().unwrap_or(0).max(self.rows));
            bar.set_position(self.rows);
            bar.set_message(format!("{:.0} MiB", self.mib()));
        } else if self.last_report.elapsed() >= PROGRESS_INTERVAL {
            self.last_report = Instant::now();
            let rows_per_second = (self.rows as f64 / self.started.elapsed().as_secs_f64()) as u64;
            let (table, rows) = (&self.table, self.rows);
            info!(table = %table, rows, mib = self.bytes / (1024 * 1024), rows_per_second, "copying");
        }
    }

    /// The copy is committed: closes the bar, logs the totals and returns them.
    pub fn committed(self) -> Copied {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{:.0} MiB, committed", self.mib()));
        }
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let (table, rows) = (&self.table, self.rows);
        let rows_per_second = (rows as f64 / seconds) as u64;
        let seconds = format!("{seconds:.1}");
        let mib = self.bytes / (1024 * 1024);
        info!(table = %table, rows, mib, seconds, rows_per_second, "snapshot committed");
        Copied { rows: self.rows, bytes: self.bytes }
    }

    fn mib(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0)
    }
}

/// One table's bar: rows against the source's estimate (raised if the table holds more) and ETA.
fn progress_bar(table: &str, estimated_rows: u64) -> ProgressBar {
    let bar = ProgressBar::new(estimated_rows);
    let template = "{prefix:<32} [{bar:30}] {human_pos:>11}/{human_len:<11} rows {msg:>18} eta {eta}";
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(table.to_string());
    bar
}
