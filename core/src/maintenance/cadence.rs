//! When a writer maintains the table it commits to: each time the table's version passes a multiple of
//! `every_commits`, with VACUUM every [`VACUUM_EVERY_PASSES`]th time. Counted on the version, not per process,
//! so a pipeline that commits once per scheduled run is maintained as often as a continuous one.

use super::MaintenancePolicy;

/// Passes between two VACUUMs: a full VACUUM lists the whole table directory, a compaction only reads the log.
pub const VACUUM_EVERY_PASSES: u64 = 10;

#[derive(Debug, Clone)]
pub struct MaintenanceCadence {
    every_commits: u64,
    /// The version of the last commit seen.
    checked_through: Option<u64>,
}

impl MaintenanceCadence {
    /// `every_commits` 0: never.
    pub fn new(every_commits: u64) -> Self {
        MaintenanceCadence { every_commits, checked_through: None }
    }

    /// The pass the commit that made `version` calls for, if any.
    pub fn after_commit(&mut self, version: u64) -> Option<MaintenancePolicy> {
        if self.every_commits == 0 {
            return None;
        }
        // The first commit this writer sees is taken as one commit past the last.
        let previous = self.checked_through.replace(version).unwrap_or(version.saturating_sub(1));
        let passed = |every: u64| previous / every < version / every;
        if !passed(self.every_commits) {
            return None;
        }
        let vacuum = passed(self.every_commits.saturating_mul(VACUUM_EVERY_PASSES));
        Some(MaintenancePolicy { vacuum, ..MaintenancePolicy::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_come_as_the_version_passes_each_multiple_with_a_vacuum_every_tenth() {
        let mut cadence = MaintenanceCadence::new(100);
        let passes: Vec<(u64, bool)> = (1..=2000)
            .filter_map(|version| cadence.after_commit(version).map(|policy| (version, policy.vacuum)))
            .collect();
        assert_eq!(passes.len(), 20);
        assert_eq!(passes[0], (100, false));
        assert_eq!(
            passes.iter().filter(|(_, vacuum)| *vacuum).map(|(version, _)| *version).collect::<Vec<_>>(),
            [1000, 2000]
        );
    }

    #[test]
    fn a_writer_that_starts_late_or_skips_versions_still_passes_each_multiple_once() {
        let mut cadence = MaintenanceCadence::new(100);
        assert!(cadence.after_commit(100).is_some(), "a writer whose first commit is version 100");
        assert!(cadence.after_commit(150).is_none());
        // Another writer's commits in between: version 250 passes 200.
        assert!(cadence.after_commit(250).is_some());
        assert!(cadence.after_commit(251).is_none());
        assert!(MaintenanceCadence::new(0).after_commit(100).is_none(), "0 turns it off");
    }
}
