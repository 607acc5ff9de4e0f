//! Identifiers. Each is a newtype that can only hold a valid value.
//!
//! Store and product ids end up in DynamoDB keys and MQTT topic levels, so they may not contain
//! the topic separators `/`, `+`, `#`, the key separator `#`, whitespace or control characters.

use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value was empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier.
        kind: &'static str,
    },
    /// The value was longer than allowed.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value contained a character that is not allowed.
    #[error(
        "{kind} {value:?} contains {ch:?}, which is not allowed (no whitespace, control characters, '/', '+' or '#')"
    )]
    BadChar {
        /// Which identifier.
        kind: &'static str,
        /// The offending value.
        value: String,
        /// The offending character.
        ch: char,
    },
}

const MAX_ID_LEN: usize = 200;

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            max: MAX_ID_LEN,
        });
    }
    if let Some(ch) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '+' | '#'))
    {
        return Err(IdError::BadChar {
            kind,
            value: value.to_owned(),
            ch,
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an identifier.
            ///
            /// # Errors
            /// [`IdError`] when the value is empty, too long or holds a forbidden character.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A Stripe product id (`prod_...`), which is also the catalog's product id.
    ProductId, "product id"
);
id_type!(
    /// A store: one physical or online shop. Stock is kept per (store, product).
    StoreId, "store id"
);
id_type!(
    /// An order, keyed by the Stripe Checkout Session id (`cs_...`) — never by the delivery
    /// envelope's id, which differs on each delivery path.
    OrderId, "order id"
);
id_type!(
    /// A Stripe event id (`evt_...`).
    StripeEventId, "stripe event id"
);
id_type!(
    /// A Stripe PaymentIntent id (`pi_...`).
    PaymentIntentId, "payment intent id"
);
id_type!(
    /// A Stripe Charge id (`ch_...`, `py_...`): what a refund or a dispute is about.
    ChargeId, "charge id"
);
id_type!(
    /// A Stripe Payment Link id (`plink_...`).
    PaymentLinkId, "payment link id"
);
id_type!(
    /// A Stripe Refund id (`re_...`).
    RefundId, "refund id"
);
id_type!(
    /// A Stripe Price id (`price_...`).
    PriceId, "price id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_with_a_topic_wildcard_is_refused() {
        assert!(matches!(
            ProductId::parse("prod_+"),
            Err(IdError::BadChar { ch: '+', .. })
        ));
        assert!(matches!(
            StoreId::parse("a/b"),
            Err(IdError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            StoreId::parse("a#b"),
            Err(IdError::BadChar { ch: '#', .. })
        ));
    }

    #[test]
    fn an_empty_or_huge_id_is_refused() {
        assert_eq!(
            ProductId::parse(""),
            Err(IdError::Empty { kind: "product id" })
        );
        assert!(matches!(
            ProductId::parse("x".repeat(201)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn a_stripe_id_is_accepted_and_displayed_unchanged() {
        let id = ProductId::parse("prod_NWjs8kKbJWmuuc").unwrap();
        assert_eq!(id.to_string(), "prod_NWjs8kKbJWmuuc");
        assert_eq!(id.as_str(), "prod_NWjs8kKbJWmuuc");
    }
}
