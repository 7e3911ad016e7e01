//! Which captured table each binlog table id stands for. The server numbers a table definition anew whenever it
//! reopens the table, so ids keep coming for as long as the stream runs; the map forgets them all once it holds
//! [`MAX_TABLE_IDS`], which costs only a fresh look at the next table map of each table (every transaction
//! repeats its table maps before its rows).

use std::collections::HashMap;

/// Table ids remembered at most: far more than the tables a server holds open at once.
pub const MAX_TABLE_IDS: usize = 65_536;

/// Binlog table id → index of the captured table (`None`: a table the pipeline does not capture).
#[derive(Debug, Default)]
pub struct MappedTables {
    by_table_id: HashMap<u64, Option<usize>>,
}

impl MappedTables {
    /// `None` when the id is unknown; `Some(None)` for a table the pipeline does not capture.
    pub fn get(&self, table_id: u64) -> Option<Option<usize>> {
        self.by_table_id.get(&table_id).copied()
    }

    pub fn insert(&mut self, table_id: u64, table: Option<usize>) {
        if self.by_table_id.len() >= MAX_TABLE_IDS && !self.by_table_id.contains_key(&table_id) {
            self.by_table_id = HashMap::new();
        }
        self.by_table_id.insert(table_id, table);
    }

    pub fn len(&self) -> usize {
        self.by_table_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_table_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_table_ids_stay_within_the_bound_and_the_latest_is_kept() {
        let mut mapped = MappedTables::default();
        for table_id in 0..(3 * MAX_TABLE_IDS as u64) {
            mapped.insert(table_id, Some(1));
            assert!(mapped.len() <= MAX_TABLE_IDS);
            assert_eq!(mapped.get(table_id), Some(Some(1)));
        }
        mapped.insert(7, None);
        assert_eq!(mapped.get(7), Some(None));
    }
}
