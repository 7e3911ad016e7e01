//! When a pipeline runs under `connector run`: every interval, on a cron pattern, or continuously.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;

/// A pipeline's schedule, written `continuous`, an interval (`15m`, `1h30m`, `every 15m`) or
/// `cron: <pattern>` (five or six fields, UTC).
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Stream changes continuously in micro-batches.
    Continuous,
    /// An incremental sync, then again this long after the previous one started.
    Every(Duration),
    /// An incremental sync at each time the pattern matches (UTC).
    Cron(Box<Cron>),
}

/// The shortest interval accepted: shorter is `continuous` with extra connection churn.
const MINIMUM_INTERVAL: Duration = Duration::from_secs(1);

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let help = "write `continuous`, an interval such as `15m`, `1h30m` or `every 30s`, or `cron: */15 * * * *`";
        if text.eq_ignore_ascii_case("continuous") {
            return Ok(Schedule::Continuous);
        }
        if let Some(pattern) = text.strip_prefix("cron:") {
            let cron: Cron = pattern
                .trim()
                .parse()
                .map_err(|error| format!("`{}` is not a cron pattern ({error}); {help}", pattern.trim()))?;
            return Ok(Schedule::Cron(Box::new(cron)));
        }
        let interval = text.strip_prefix("every ").unwrap_or(text).trim();
        let duration =
            humantime::parse_duration(interval).map_err(|_| format!("`{text}` is not a schedule; {help}"))?;
        if duration < MINIMUM_INTERVAL {
            return Err(format!("interval `{text}` is shorter than 1s; use `continuous` to stream changes"));
        }
        Ok(Schedule::Every(duration))
    }
}

impl Schedule {
    /// The next time a run should start, given when the previous run started (`None`: never ran).
    pub fn next_run(&self, previous_start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match (self, previous_start) {
            (Schedule::Continuous, _) | (Schedule::Every(_), None) => now,
            (Schedule::Every(interval), Some(previous)) => {
                let due = previous + chrono::Duration::from_std(*interval).unwrap_or(chrono::Duration::MAX);
                due.max(now)
            }
            (Schedule::Cron(cron), _) => cron.find_next_occurrence(&now, false).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Continuous => f.write_str("continuous"),
            Schedule::Every(interval) => write!(f, "every {}", humantime::format_duration(*interval)),
            Schedule::Cron(cron) => write!(f, "cron: {}", cron.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn time(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, hour, minute, second).single().expect("valid time")
    }

    #[test]
    fn intervals_run_relative_to_the_previous_start() {
        let schedule: Schedule = "every 15m".parse().expect("valid");
        assert_eq!(schedule.next_run(None, time(10, 0, 0)), time(10, 0, 0));
        assert_eq!(schedule.next_run(Some(time(10, 0, 0)), time(10, 3, 0)), time(10, 15, 0));
        // A run that overran its interval starts the next one immediately.
        assert_eq!(schedule.next_run(Some(time(10, 0, 0)), time(10, 20, 0)), time(10, 20, 0));
    }

    #[test]
    fn cron_patterns_find_the_next_match() {
        let schedule: Schedule = "cron: */15 * * * *".parse().expect("valid");
        assert_eq!(schedule.next_run(Some(time(10, 0, 0)), time(10, 3, 10)), time(10, 15, 0));
    }

    #[test]
    fn bad_schedules_say_what_is_accepted() {
        for bad in ["every fortnight", "cron: 99 * * * *", "200ms"] {
            let error = bad.parse::<Schedule>().expect_err(bad);
            assert!(error.contains(bad.trim_start_matches("cron: ")) || error.contains("1s"), "{error}");
        }
        assert!(matches!("continuous".parse::<Schedule>(), Ok(Schedule::Continuous)));
        assert!(matches!("1h30m".parse::<Schedule>(), Ok(Schedule::Every(d)) if d.as_secs() == 5400));
    }
}
