//! Quantities and stock levels.

use std::fmt;
use std::num::NonZeroU32;

/// A number of units ordered or moved: never zero.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Quantity(NonZeroU32);

/// Why a number is not a valid quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Zero units.
    #[error("quantity must be at least 1")]
    Zero,
    /// More than fits.
    #[error("quantity {0} is larger than {max}", max = u32::MAX)]
    TooLarge(u64),
}

impl Quantity {
    /// A quantity from a count of units.
    ///
    /// # Errors
    /// [`QuantityError`] for zero or a count above `u32::MAX`.
    pub fn new(units: u64) -> Result<Self, QuantityError> {
        let units = u32::try_from(units).map_err(|_| QuantityError::TooLarge(units))?;
        NonZeroU32::new(units).map(Self).ok_or(QuantityError::Zero)
    }

    /// The number of units.
    pub fn get(self) -> u64 {
        u64::from(self.0.get())
    }

    /// The sum of two quantities, if it still fits.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0.get()).map(Quantity)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_a_quantity() {
        assert_eq!(Quantity::new(0), Err(QuantityError::Zero));
    }

    #[test]
    fn a_quantity_above_u32_is_refused() {
        assert_eq!(
            Quantity::new(1 << 33),
            Err(QuantityError::TooLarge(1 << 33))
        );
    }

    #[test]
    fn adding_quantities_detects_overflow() {
        let big = Quantity::new(u64::from(u32::MAX)).unwrap();
        assert_eq!(big.checked_add(Quantity::new(1).unwrap()), None);
        assert_eq!(
            Quantity::new(2)
                .unwrap()
                .checked_add(Quantity::new(3).unwrap())
                .unwrap()
                .get(),
            5
        );
    }
}
