//! What a paid Checkout Session from one of stockbridge's own Payment Links says by itself.
//!
//! Listing a session's line items is a Stripe call per order, and Stripe allows an endpoint
//! about 25 calls a second: in a flash sale that is the first ceiling. A Payment Link the
//! catalog sync made sells ONE product at ONE fixed per-unit price (Stripe prices never
//! change their amount), so the session's own `currency` and `amount_subtotal` (the total
//! before discounts, taxes and shipping) give the order exactly: `amount_subtotal /
//! unit_amount` units of that product. Only when they prove it: the currency must match and
//! the amount divide evenly into at least one unit; anything else (another currency, an
//! amount that does not divide, no subtotal, a link stockbridge did not make or does not know)
//! lists the line items as before. The catalog sync's links sell one unit per session (no
//! adjustable quantity), so their terms allow at most one: a subtotal of two or more units can
//! only mean something else was bought too (a cross-sell or an optional item configured at
//! Stripe), and the line items decide. Only links the catalog sync itself made get terms (one
//! unit, no adjustable quantity, no optional items); a link it kept from elsewhere (backfill
//! adopts the merchant's) lists its line items. What is left, and said in docs/deploy.md: an
//! extra that costs nothing (a free cross-sell), and a stockbridge link that someone edits
//! at Stripe to sell more than its one unit of one product.

use crate::{OrderLine, ProductId, Quantity};

/// A Payment Link stockbridge made: the one product it sells, at one price per unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTerms {
    /// The product.
    pub product_id: ProductId,
    /// The price per unit, in minor units (never 0: a free link is not one of these).
    pub unit_amount: u64,
    /// Lower-case ISO 4217 code.
    pub currency: String,
    /// The most units one session can buy through the link (1 for the catalog sync's links).
    pub max_quantity: u64,
}

impl LinkTerms {
    /// The order's one line, when the session's `currency` and `amount_subtotal` prove it.
    pub fn line_for(
        &self,
        currency: Option<&str>,
        amount_subtotal: Option<u64>,
    ) -> Option<OrderLine> {
        let same_currency = currency.is_some_and(|c| c.eq_ignore_ascii_case(&self.currency));
        let subtotal = amount_subtotal?;
        if !same_currency || self.unit_amount == 0 || subtotal % self.unit_amount != 0 {
            return None;
        }
        let units = subtotal / self.unit_amount;
        if units > self.max_quantity {
            return None;
        }
        Some(OrderLine {
            product_id: self.product_id.clone(),
            quantity: Quantity::new(units).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(unit_amount: u64) -> LinkTerms {
        LinkTerms {
            product_id: ProductId::parse("prod_tee").unwrap(),
            unit_amount,
            currency: "usd".into(),
            max_quantity: 5,
        }
    }

    fn units(line: Option<OrderLine>) -> Option<u64> {
        line.map(|l| l.quantity.get())
    }

    #[test]
    fn the_subtotal_divided_by_the_unit_price_is_the_quantity() {
        assert_eq!(
            units(terms(1500).line_for(Some("usd"), Some(1500))),
            Some(1)
        );
        assert_eq!(
            units(terms(1500).line_for(Some("USD"), Some(4500))),
            Some(3)
        );
    }

    #[test]
    fn anything_the_amounts_do_not_prove_falls_back_to_listing_the_line_items() {
        // Another currency, no currency, no subtotal.
        assert_eq!(terms(1500).line_for(Some("eur"), Some(1500)), None);
        assert_eq!(terms(1500).line_for(None, Some(1500)), None);
        assert_eq!(terms(1500).line_for(Some("usd"), None), None);
        // Not a whole number of units: another price (changed since the link was made, or a
        // line added at Stripe), a customer-chosen amount.
        assert_eq!(terms(1500).line_for(Some("usd"), Some(2000)), None);
        assert_eq!(terms(1500).line_for(Some("usd"), Some(1499)), None);
        // More units than one session can buy: something else was bought too (a cross-sell
        // of a product whose price is a multiple of this one's).
        let one_unit = LinkTerms {
            max_quantity: 1,
            ..terms(1000)
        };
        assert_eq!(units(one_unit.line_for(Some("usd"), Some(1000))), Some(1));
        assert_eq!(one_unit.line_for(Some("usd"), Some(3000)), None);
        // Nothing bought, or a free link.
        assert_eq!(terms(1500).line_for(Some("usd"), Some(0)), None);
        assert_eq!(terms(0).line_for(Some("usd"), Some(0)), None);
    }
}
