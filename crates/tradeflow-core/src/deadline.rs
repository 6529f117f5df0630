//! When the current invocation has to be done.
//!
//! Lambda gives every invocation a deadline in Unix epoch milliseconds (the function's timeout
//! after the invocation started). The handlers pass it down to the domain calls, so budgets can
//! be based on the time really left instead of a configured guess.

use std::time::Duration;

/// An instant in Unix epoch milliseconds by which the invocation must be done.
///
/// [`Deadline::none`] is a deadline that never comes (callers without one: tests, tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at_ms: i64,
}

impl Deadline {
    /// The deadline at `epoch_ms` (as Lambda's invocation context carries it).
    pub const fn at_ms(epoch_ms: i64) -> Self {
        Deadline { at_ms: epoch_ms }
    }

    /// `budget` after `now_ms`: how Lambda sets it from the function's timeout.
    pub fn after(now_ms: i64, budget: Duration) -> Self {
        let budget_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
        Deadline::at_ms(now_ms.saturating_add(budget_ms))
    }

    /// No deadline: it never comes and [`Deadline::remaining`] is always [`Duration::MAX`].
    pub const fn none() -> Self {
        Deadline { at_ms: i64::MAX }
    }

    /// Whether this is [`Deadline::none`].
    pub const fn is_none(&self) -> bool {
        self.at_ms == i64::MAX
    }

    /// The instant in Unix epoch milliseconds (`i64::MAX` for [`Deadline::none`]).
    pub const fn epoch_ms(&self) -> i64 {
        self.at_ms
    }

    /// Time left at `now_ms`: zero once passed, [`Duration::MAX`] for [`Deadline::none`].
    pub fn remaining(&self, now_ms: i64) -> Duration {
        if self.is_none() {
            return Duration::MAX;
        }
        u64::try_from(self.at_ms.saturating_sub(now_ms))
            .map_or(Duration::ZERO, Duration::from_millis)
    }

    /// Whether the deadline has come at `now_ms`.
    pub fn has_passed(&self, now_ms: i64) -> bool {
        self.remaining(now_ms).is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_down_to_zero_and_stays_there() {
        let d = Deadline::at_ms(10_000);
        assert_eq!(d.remaining(7_500), Duration::from_millis(2_500));
        assert_eq!(d.remaining(10_000), Duration::ZERO);
        assert_eq!(d.remaining(12_000), Duration::ZERO);
        assert!(!d.has_passed(9_999));
        assert!(d.has_passed(10_000));
    }

    #[test]
    fn remaining_saturates_at_the_extremes() {
        assert_eq!(
            Deadline::at_ms(i64::MIN).remaining(i64::MAX),
            Duration::ZERO
        );
        assert_eq!(
            Deadline::at_ms(i64::MAX - 1).remaining(i64::MIN),
            Duration::from_millis(i64::MAX as u64)
        );
    }

    #[test]
    fn none_never_comes() {
        let d = Deadline::none();
        assert!(d.is_none());
        assert_eq!(d.remaining(i64::MAX - 1), Duration::MAX);
        assert!(!d.has_passed(i64::MAX));
        assert!(Deadline::at_ms(1_750_000_000_000) < d);
    }

    #[test]
    fn after_adds_the_budget_like_lambda_does() {
        let d = Deadline::after(1_750_000_000_000, Duration::from_secs(30));
        assert_eq!(d.epoch_ms(), 1_750_000_030_000);
        assert_eq!(d.remaining(1_750_000_000_000), Duration::from_secs(30));
        assert!(!d.is_none());
        // A huge budget saturates instead of wrapping around.
        assert_eq!(Deadline::after(1, Duration::MAX).epoch_ms(), i64::MAX);
    }
}
