//! Low-stock alerts: a threshold per item, and one alert per downward crossing.
//!
//! Contract: while an item is armed, the first level at or below its threshold *crosses*: one
//! alert, numbered (`crossing`, counting up for the item's life, so a consumer can drop a
//! duplicate). It stays *low* — no alert however the level hovers at or around the threshold —
//! until the level comes back to [`rearm_level`], a margin above the threshold (hysteresis:
//! a fifth, at least two units),
//! which arms it again. The level is what can still be sold (`available`, summed over a spread
//! product's shards), so a hold that takes the last units above the threshold alerts too: those
//! units are not for sale while it lasts.
//!
//! Who acts on a step (the broadcaster, which reads every changed item) records it on the item
//! with a condition on the state it read, so two readers of one change record one crossing; the
//! alert is recorded pending, published, then cleared: a publish that failed stays pending and
//! is published at a later read (at least once: a crash, a retry or two readers of a pending
//! alert can repeat it, each with its crossing number).

/// An item's threshold and where it stands against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LowStock {
    /// Alert when `available` is at or below this (at least 1).
    pub threshold: u64,
    /// Crossed and not yet back to [`rearm_level`].
    pub low: bool,
    /// Crossings so far (the last alert's number).
    pub crossings: u64,
    /// A crossing whose alert is recorded but not yet known to be published.
    pub pending: Option<u64>,
}

/// What a level means for an item's low-stock state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowStockStep {
    /// Crossed downwards: record `low` and this crossing, then alert.
    Cross {
        /// The new crossing's number.
        crossing: u64,
    },
    /// Back up to the re-arm level: record not `low`.
    Rearm,
    /// An alert recorded but not known to be published: publish it (again).
    Publish {
        /// Its number.
        crossing: u64,
    },
    /// Nothing to do.
    Hold,
}

/// The level at which a low item is armed again: a fifth above the threshold, at least two
/// units, so a level moving by a unit or two around the threshold (a checkout hold taken and
/// expiring) does not alert again.
pub fn rearm_level(threshold: u64) -> u64 {
    threshold.saturating_add((threshold / 5).max(2))
}

/// What `available` means for an item in `state`.
pub fn step(state: &LowStock, available: u64) -> LowStockStep {
    if let Some(crossing) = state.pending {
        return LowStockStep::Publish { crossing };
    }
    if !state.low && available <= state.threshold {
        return LowStockStep::Cross {
            crossing: state.crossings + 1,
        };
    }
    if state.low && available >= rearm_level(state.threshold) {
        return LowStockStep::Rearm;
    }
    LowStockStep::Hold
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `levels` through `step`, applying each step as the broadcaster records it (and
    /// publishing at once); returns the crossings alerted.
    fn alerts(threshold: u64, levels: &[u64]) -> Vec<u64> {
        let mut s = LowStock {
            threshold,
            ..LowStock::default()
        };
        let mut out = Vec::new();
        for &level in levels {
            match step(&s, level) {
                LowStockStep::Cross { crossing } => {
                    s.low = true;
                    s.crossings = crossing;
                    out.push(crossing);
                }
                LowStockStep::Rearm => s.low = false,
                LowStockStep::Publish { .. } | LowStockStep::Hold => {}
            }
        }
        out
    }

    #[test]
    fn a_level_falling_through_the_threshold_alerts_once() {
        assert_eq!(alerts(5, &[9, 7, 6, 5, 4, 3, 0]), vec![1]);
    }

    #[test]
    fn hovering_at_the_threshold_does_not_alert_again_until_it_is_re_armed() {
        // Threshold 5: re-armed at 7 (at least two units above).
        assert_eq!(rearm_level(5), 7);
        assert_eq!(alerts(5, &[6, 5, 6, 5, 4, 6, 4, 5]), vec![1]);
        assert_eq!(alerts(5, &[6, 5, 7, 5, 4]), vec![1, 2]);
        // Threshold 20: re-armed only at 24.
        assert_eq!(rearm_level(20), 24);
        assert_eq!(alerts(20, &[25, 20, 23, 19, 24, 20]), vec![1, 2]);
    }

    #[test]
    fn a_threshold_set_below_the_level_alerts_at_once_and_a_restock_re_arms() {
        assert_eq!(alerts(5, &[3, 2, 50, 5]), vec![1, 2]);
    }

    #[test]
    fn a_recorded_alert_not_known_published_is_published_again_before_anything_else() {
        let s = LowStock {
            threshold: 5,
            low: true,
            crossings: 3,
            pending: Some(3),
        };
        assert_eq!(step(&s, 50), LowStockStep::Publish { crossing: 3 });
        let s = LowStock { pending: None, ..s };
        assert_eq!(step(&s, 50), LowStockStep::Rearm);
        assert_eq!(step(&s, 5), LowStockStep::Hold);
    }
}
