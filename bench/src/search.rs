//! The rate search's rule (`--search`): after each round, raise the rate, run the same
//! rate once more, or end.

/// Most rates a search tries (a round run again at the same rate is not counted).
pub const MAX_ROUNDS: usize = 14;

/// How a search round went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Nothing lost, refused or cut off, the p99 within the limit, the generator not
    /// saturated.
    Passed,
    /// Nothing lost, refused or cut off, the generator not saturated: only the p99 was
    /// over the limit (which one stall of the machine can cause).
    OnlyP99Failed,
    /// A line lost, refused, duplicated, reordered or echoed, a member cut off, or the
    /// generator saturated.
    Failed,
}

/// What a search does after a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// The next rate.
    Raise,
    /// The same rate once more.
    Again,
    /// The search is over.
    End,
}

/// The search's rule: a passing round raises the rate (up to [`MAX_ROUNDS`] rates); a
/// round failing on its p99 alone is run again, `retries` times at most; any other
/// failure ends the search. `rates` counts the rates tried so far, this one included;
/// `tries`, the runs of this rate before this one.
pub fn next_round(outcome: Outcome, rates: usize, tries: usize, retries: usize) -> Next {
    match outcome {
        Outcome::Passed if rates < MAX_ROUNDS => Next::Raise,
        Outcome::OnlyP99Failed if tries < retries => Next::Again,
        _ => Next::End,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_retries_a_p99_failure_only_and_stops_at_its_last_rate() {
        use Next::*;
        use Outcome::*;
        assert_eq!(next_round(Passed, 1, 0, 1), Raise);
        assert_eq!(next_round(OnlyP99Failed, 3, 0, 1), Again);
        assert_eq!(next_round(OnlyP99Failed, 3, 1, 1), End);
        assert_eq!(next_round(Passed, 3, 1, 1), Raise);
        assert_eq!(next_round(OnlyP99Failed, 3, 0, 0), End);
        assert_eq!(next_round(OnlyP99Failed, 3, 1, 2), Again);
        assert_eq!(next_round(Failed, 3, 0, 1), End);
        assert_eq!(next_round(Passed, MAX_ROUNDS - 1, 0, 1), Raise);
        assert_eq!(next_round(Passed, MAX_ROUNDS, 0, 1), End);
    }
}
