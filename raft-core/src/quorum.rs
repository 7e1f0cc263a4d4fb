//! Majority arithmetic.

/// The highest value that at least `quorum` of `match_indexes` have reached (reorders them):
/// a commit index from match indexes, or a lease's start from acknowledgement ticks.
pub(crate) fn quorum_index<T: Ord + Copy>(match_indexes: &mut [T], quorum: usize) -> T {
    assert!(
        quorum >= 1 && quorum <= match_indexes.len(),
        "quorum_within_voters: quorum {quorum} of {} voters",
        match_indexes.len()
    );
    match_indexes.sort_unstable_by(|a, b| b.cmp(a));
    match_indexes[quorum - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LogIndex;
    use alloc::vec::Vec;

    fn idx(values: &[u64]) -> Vec<LogIndex> {
        values.iter().copied().map(LogIndex).collect()
    }

    #[test]
    fn quorum_index_is_the_majority_th_largest() {
        assert_eq!(quorum_index(&mut idx(&[5]), 1), LogIndex(5));
        assert_eq!(quorum_index(&mut idx(&[5, 3, 9]), 2), LogIndex(5));
        assert_eq!(quorum_index(&mut idx(&[1, 1, 9]), 2), LogIndex(1));
        assert_eq!(quorum_index(&mut idx(&[4, 8, 6, 2, 7]), 3), LogIndex(6));
        assert_eq!(quorum_index(&mut idx(&[0, 0, 0, 7]), 3), LogIndex(0));
        assert_eq!(quorum_index(&mut [LogIndex(3); 4], 3), LogIndex(3));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::types::LogIndex;
    use proptest::prelude::*;

    proptest! {
        /// The commit rule's quorum index equals a brute-force search: the largest index that at
        /// least `quorum` match indexes reach.
        #[test]
        fn quorum_index_matches_brute_force(
            matches in proptest::collection::vec(0u64..50, 1..9),
            quorum_seed in any::<usize>(),
        ) {
            let quorum = 1 + quorum_seed % matches.len();
            let brute = (0..50u64)
                .rev()
                .find(|&n| matches.iter().filter(|&&m| m >= n).count() >= quorum)
                .unwrap_or(0);
            let mut indexes: alloc::vec::Vec<LogIndex> = matches.iter().copied().map(LogIndex).collect();
            prop_assert_eq!(quorum_index(&mut indexes, quorum), LogIndex(brute));
        }
    }
}
