//! What each pipeline of this process needs now, as its runs end: nothing (its last run finished), time (it failed
//! and is retried with backoff), or a person (a failure retrying cannot mend: a configuration the source refuses,
//! bad input, a source that lost the history a table needs). `/readyz` answers unready while a pipeline needs a
//! person, and the alert webhook is told of each change. Also whether each table keeps within the lag an operator
//! alerts on ([`watch_lag`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;

/// Changes kept for a slow subscriber before the oldest are dropped.
const CHANGES_BUFFERED: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Failed; retried with backoff. `error` is the failure's report.
    Retrying {
        error: String,
    },
    /// Failed in a way only a person can mend; `resync` names the tables to copy anew when that is the fix.
    NeedsPerson {
        error: String,
        resync: Vec<String>,
    },
}

impl Health {
    fn same_kind(&self, other: &Health) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// A pipeline's health turning into another kind (healthy to retrying, retrying to needing a person, back to
/// healthy); a pipeline's first report, when healthy, is no change.
#[derive(Debug, Clone)]
pub struct HealthChange {
    pub pipeline: String,
    pub before: Health,
    pub now: Health,
}

struct Registry {
    pipelines: Mutex<BTreeMap<String, Health>>,
    changes: broadcast::Sender<HealthChange>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        pipelines: Mutex::new(BTreeMap::new()),
        changes: broadcast::channel(CHANGES_BUFFERED).0,
    })
}

/// Records how `pipeline`'s last run ended; tells subscribers when its health turned into another kind.
pub fn report(pipeline: &str, now: Health) {
    let registry = registry();
    let before = {
        let mut pipelines = registry.pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pipelines.insert(pipeline.to_string(), now.clone()).unwrap_or(Health::Healthy)
    };
    if !before.same_kind(&now) {
        // No subscriber (no webhook configured) is no failure.
        let _ = registry.changes.send(HealthChange { pipeline: pipeline.to_string(), before, now });
    }
}

/// The pipelines needing a person, with their errors.
pub fn needing_a_person() -> Vec<(String, String)> {
    let pipelines = registry().pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pipelines
        .iter()
        .filter_map(|(name, health)| match health {
            Health::NeedsPerson { error, .. } => Some((name.clone(), error.clone())),
            _ => None,
        })
        .collect()
}

/// How `pipeline`'s last run left it; `None` before its first run ends.
pub fn health_of(pipeline: &str) -> Option<Health> {
    registry().pipelines.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(pipeline).cloned()
}

/// Every change of health from now on.
pub fn subscribe() -> broadcast::Receiver<HealthChange> {
    registry().changes.subscribe()
}

/// A table's lag behind its source crossing the alert threshold, up (`lagging`) or back down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagChange {
    pub pipeline: String,
    pub table: String,
    pub behind: Duration,
    pub threshold: Duration,
    pub lagging: bool,
}

struct LagWatch {
    threshold: Duration,
    /// The tables over the threshold now, as (pipeline, table).
    lagging: Mutex<BTreeSet<(String, String)>>,
    changes: broadcast::Sender<LagChange>,
}

fn lag_watch() -> &'static OnceLock<LagWatch> {
    static WATCH: OnceLock<LagWatch> = OnceLock::new();
    &WATCH
}

/// Watches every table's lag against `threshold` (the first threshold set holds for the process) and returns
/// each crossing from now on.
pub fn watch_lag(threshold: Duration) -> broadcast::Receiver<LagChange> {
    lag_watch()
        .get_or_init(|| LagWatch {
            threshold,
            lagging: Mutex::new(BTreeSet::new()),
            changes: broadcast::channel(CHANGES_BUFFERED).0,
        })
        .changes
        .subscribe()
}

/// Records how far behind its source `table`'s newest commit was; tells the watchers when that crosses the
/// threshold.
pub fn report_lag(pipeline: &str, table: &str, behind: Duration) {
    let Some(watch) = lag_watch().get() else { return };
    let lagging = behind > watch.threshold;
    let key = (pipeline.to_string(), table.to_string());
    let changed = {
        let mut tables = watch.lagging.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lagging { tables.insert(key) } else { tables.remove(&key) }
    };
    if changed {
        let change = LagChange {
            pipeline: pipeline.to_string(),
            table: table.to_string(),
            behind,
            threshold: watch.threshold,
            lagging,
        };
        let _ = watch.changes.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_of_kind_are_told_and_a_pipeline_needing_a_person_is_listed_until_it_recovers() {
        let mut changes = subscribe();
        let pipeline = "pipeline_health_test";
        report(pipeline, Health::Healthy);
        report(pipeline, Health::Retrying { error: "timeout".into() });
        report(pipeline, Health::Retrying { error: "timeout again".into() });
        report(pipeline, Health::NeedsPerson { error: "slot lost".into(), resync: vec!["public.orders".into()] });
        assert_eq!(needing_a_person(), vec![(pipeline.to_string(), "slot lost".to_string())]);
        report(pipeline, Health::Healthy);
        assert!(needing_a_person().iter().all(|(name, _)| name != pipeline));
        let mut seen = Vec::new();
        while let Ok(change) = changes.try_recv() {
            if change.pipeline == pipeline {
                seen.push((change.before, change.now));
            }
        }
        let kinds: Vec<(&str, &str)> = seen.iter().map(|(before, now)| (kind(before), kind(now))).collect();
        assert_eq!(kinds, [("healthy", "retrying"), ("retrying", "needs person"), ("needs person", "healthy")]);
    }

    #[test]
    fn a_table_is_told_once_when_its_lag_passes_the_threshold_and_once_when_back_under() {
        let mut changes = watch_lag(Duration::from_secs(60));
        let threshold = lag_watch().get().expect("watched").threshold;
        let pipeline = "lag_watch_test";
        for seconds in [1, 2, 90, 120, 3, 4] {
            report_lag(pipeline, "public.orders", threshold * seconds / 60);
        }
        let mut seen = Vec::new();
        while let Ok(change) = changes.try_recv() {
            if change.pipeline == pipeline {
                seen.push((change.lagging, change.behind));
            }
        }
        assert_eq!(seen, [(true, threshold * 90 / 60), (false, threshold * 3 / 60)]);
    }

    fn kind(health: &Health) -> &'static str {
        match health {
            Health::Healthy => "healthy",
            Health::Retrying { .. } => "retrying",
            Health::NeedsPerson { .. } => "needs person",
        }
    }
}
