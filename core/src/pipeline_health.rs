//! What each pipeline of this process needs now, as its runs end: nothing (its last run finished), time (it failed
//! and is retried with backoff), or a person (a failure retrying cannot mend: a configuration the source refuses,
//! bad input, a source that lost the history a table needs). `/readyz` answers unready while a pipeline needs a
//! person, and the alert webhook is told of each change.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

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

    fn kind(health: &Health) -> &'static str {
        match health {
            Health::Healthy => "healthy",
            Health::Retrying { .. } => "retrying",
            Health::NeedsPerson { .. } => "needs person",
        }
    }
}
