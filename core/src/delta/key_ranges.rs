//! The key ranges a batch of changes touches, as a target-only predicate for the MERGE.
//!
//! delta-rs prunes target files with the min/max of the source keys. Changes to a few distant key ranges
//! (recent orders and a backfill of old ones, say) span the whole table by min/max, and the merge then scans
//! and holds every file in between. Adding `target.key BETWEEN lo AND hi OR …` over the ranges the changes
//! actually fall in, split at the widest gaps, lets it skip those files. The ranges cover every source key,
//! so no row that could match is excluded.

use deltalake::arrow::array::{Array, ArrayRef, Int64Array};
use deltalake::arrow::compute::{cast, sort_to_indices};
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::{Expr, lit};
use deltalake::datafusion::scalar::ScalarValue;

/// Ranges in one predicate: enough to separate a few clusters, few enough to keep the scan filter cheap.
const MAX_RANGES: usize = 16;

/// `column BETWEEN lo AND hi OR …` covering every non-null value of `keys`, for integer keys (`None` for
/// other types or without a non-null key).
pub(crate) fn key_range_predicate(keys: &ArrayRef, column: Expr) -> Option<Expr> {
    let integer = matches!(
        keys.data_type(),
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    );
    if !integer {
        return None;
    }
    let values = cast(keys, &DataType::Int64).ok()?;
    let values = values.as_any().downcast_ref::<Int64Array>()?;
    let order = sort_to_indices(values, None, None).ok()?;
    let sorted: Vec<usize> =
        order.values().iter().map(|&index| index as usize).filter(|&index| values.is_valid(index)).collect();
    if sorted.is_empty() {
        return None;
    }
    // Cut at the widest gaps between consecutive keys.
    let mut gaps: Vec<(i64, usize)> = sorted
        .windows(2)
        .enumerate()
        .map(|(position, pair)| (values.value(pair[1]).saturating_sub(values.value(pair[0])), position + 1))
        .filter(|(gap, _)| *gap > 1)
        .collect();
    gaps.sort_unstable_by_key(|&(gap, _)| std::cmp::Reverse(gap));
    let mut cuts: Vec<usize> = gaps.into_iter().take(MAX_RANGES - 1).map(|(_, position)| position).collect();
    cuts.sort_unstable();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for end in cuts.into_iter().chain(std::iter::once(sorted.len())) {
        let low = ScalarValue::try_from_array(keys, sorted[start]).ok()?;
        let high = ScalarValue::try_from_array(keys, sorted[end - 1]).ok()?;
        ranges.push(column.clone().between(lit(low), lit(high)));
        start = end;
    }
    ranges.into_iter().reduce(Expr::or)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::datafusion::prelude::col;

    use super::*;

    #[test]
    fn distant_clusters_become_separate_ranges() {
        let keys: ArrayRef =
            Arc::new(Int64Array::from(vec![Some(5_000_001), Some(3), None, Some(1), Some(2), Some(5_000_000)]));
        let predicate = key_range_predicate(&keys, col("id")).expect("two clusters");
        let text = predicate.to_string();
        assert!(text.contains("BETWEEN Int64(1) AND Int64(3)"), "{text}");
        assert!(text.contains("BETWEEN Int64(5000000) AND Int64(5000001)"), "{text}");
    }

    #[test]
    fn contiguous_keys_are_one_range_and_other_types_none() {
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 2, 4]));
        let predicate = key_range_predicate(&keys, col("id")).expect("one range");
        assert_eq!(predicate.to_string(), "id BETWEEN Int64(1) AND Int64(4)");
        let names: ArrayRef = Arc::new(deltalake::arrow::array::StringArray::from(vec!["a", "z"]));
        assert!(key_range_predicate(&names, col("id")).is_none());
    }
}
