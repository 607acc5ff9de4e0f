//! What `POST /checkout` accepts: the body, the `Idempotency-Key`, the hold id derived from it,
//! and what Stripe would refuse (an e-mail it cannot send to, an amount outside its limits),
//! checked before any stock is held.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stockbridge_domain::{OrderId, OrderLine, ProductId, Quantity, StoreId, merge_lines};

/// Limits of the checkout API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLimits {
    /// Units of one product per request (`CHECKOUT_MAX_QUANTITY`, default 10).
    pub max_quantity: u64,
    /// Lines per request (`CHECKOUT_MAX_LINES`, default 20).
    pub max_lines: usize,
    /// How long a hold lasts (`CHECKOUT_HOLD_SECONDS`, default 900).
    pub hold_seconds: u32,
    /// Units in all per request (`CHECKOUT_MAX_UNITS`, default 10).
    pub max_units: u64,
    /// The share of an item's on-hand stock that pending holds may take while the item has
    /// Payment Links, in percent (`CHECKOUT_HOLD_SHARE_PERCENT`, default 50; 100: no share
    /// kept for links).
    pub hold_share_percent: u8,
    /// Holds one e-mail may make per hold period (`CHECKOUT_HOLDS_PER_EMAIL`, default 3).
    pub holds_per_email: u32,
    /// Holds one client address (IPv6: its /64) may make per hold period: a backstop, since
    /// many honest buyers can share one address (`CHECKOUT_HOLDS_PER_CLIENT`, default 300).
    pub holds_per_client: u32,
    /// Failed authorisations after which an e-mail is refused for the rest of the hour
    /// (`CHECKOUT_FAILURES_PER_HOUR`, default 5).
    pub failures_per_hour: u32,
    /// The same for a client address, higher since many buyers share one
    /// (`CHECKOUT_FAILURES_PER_CLIENT_HOUR`, default 50).
    pub failures_per_client_hour: u32,
    /// A purchase limit for drops: units one e-mail may hold or buy through the checkout per
    /// `email_limit_seconds` (`CHECKOUT_UNITS_PER_EMAIL`, default 0: none). When set, an e-mail
    /// is required; units of a hold that is never paid come back to the buyer's allowance.
    pub units_per_email: u32,
    /// The window of `units_per_email` (`CHECKOUT_EMAIL_LIMIT_SECONDS`, default 86400: per
    /// UTC day).
    pub email_limit_seconds: u32,
}

impl Default for HoldLimits {
    fn default() -> Self {
        Self {
            max_quantity: 10,
            max_lines: 20,
            hold_seconds: 900,
            max_units: 10,
            hold_share_percent: 50,
            holds_per_email: 3,
            holds_per_client: 300,
            failures_per_hour: 5,
            failures_per_client_hour: 50,
            units_per_email: 0,
            email_limit_seconds: 86_400,
        }
    }
}

/// A checkout request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    /// The store.
    pub store_id: StoreId,
    /// Lines, merged per product.
    pub lines: Vec<OrderLine>,
    /// For the receipt.
    pub customer_email: Option<String>,
    /// The client's hashed address ([`super::caps::client_key`]), set by the HTTP edge.
    pub client: Option<String>,
}

/// A refused request: 400 with the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: {message}")]
pub struct RequestError {
    /// The field (`items[2].quantity`, `Idempotency-Key`, ...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn bad(field: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    store_id: String,
    items: Vec<RawLine>,
    #[serde(default)]
    customer_email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    product_id: String,
    quantity: i64,
}

/// Parses and validates a `POST /checkout` body.
///
/// # Errors
/// [`RequestError`] naming the field.
pub fn parse_request(body: &[u8], limits: &HoldLimits) -> Result<ReservationRequest, RequestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("not JSON: {e}")))?;
    let raw: RawRequest = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_owned);
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => f,
            (".", None) => "body".to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (p, None) => p.to_owned(),
        };
        bad(field, message)
    })?;
    let store_id = StoreId::parse(raw.store_id).map_err(|e| bad("store_id", e.to_string()))?;
    if raw.items.is_empty() {
        return Err(bad("items", "at least one line is required"));
    }
    if raw.items.len() > limits.max_lines {
        return Err(bad(
            "items",
            format!("at most {} lines per checkout", limits.max_lines),
        ));
    }
    let mut lines = Vec::with_capacity(raw.items.len());
    for (i, l) in raw.items.into_iter().enumerate() {
        let product_id = ProductId::parse(l.product_id)
            .map_err(|e| bad(format!("items[{i}].product_id"), e.to_string()))?;
        if l.quantity <= 0 || l.quantity as u64 > limits.max_quantity {
            return Err(bad(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {}", limits.max_quantity),
            ));
        }
        let quantity = Quantity::new(l.quantity as u64)
            .map_err(|e| bad(format!("items[{i}].quantity"), e.to_string()))?;
        lines.push(OrderLine {
            product_id,
            quantity,
        });
    }
    let lines = merge_lines(lines).map_err(|e| bad("items", e.to_string()))?;
    if lines.iter().any(|l| l.quantity.get() > limits.max_quantity) {
        return Err(bad(
            "items",
            format!(
                "at most {} units of one product per checkout",
                limits.max_quantity
            ),
        ));
    }
    let units: u64 = lines.iter().map(|l| l.quantity.get()).sum();
    if units > limits.max_units {
        return Err(bad(
            "items",
            format!("at most {} units per checkout", limits.max_units),
        ));
    }
    let customer_email = match raw.customer_email.map(|e| e.trim().to_owned()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) if !valid_email(&e) => {
            return Err(bad("customer_email", "not an e-mail address"));
        }
        Some(e) => Some(e),
    };
    Ok(ReservationRequest {
        store_id,
        lines,
        customer_email,
        client: None,
    })
}

/// Validates the `Idempotency-Key` header (required).
///
/// # Errors
/// [`RequestError`] on `Idempotency-Key`.
pub fn idempotency_key(header: Option<&str>) -> Result<String, RequestError> {
    match header.map(str::trim) {
        None | Some("") => Err(bad(
            "Idempotency-Key",
            "the header is required (a random UUID per checkout attempt; send the same one when retrying)",
        )),
        Some(k) if k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) => Err(bad(
            "Idempotency-Key",
            "at most 255 printable ASCII characters",
        )),
        Some(k) => Ok(k.to_owned()),
    }
}

/// The hold id for a request: derived from the store and the client's Idempotency-Key, so a
/// retry finds the same hold (and, through the hold's key, the same PaymentIntent).
///
/// The id is public (the answer, the PaymentIntent's metadata), so it is a cryptographic hash
/// (SHA-256, 128 bits kept): no one can forge a key that lands on another buyer's hold and
/// receive its `client_secret`. A non-cryptographic hash (the FNV of earlier versions) can be
/// inverted.
pub fn hold_id(store: &StoreId, key: &str) -> OrderId {
    let digest = Sha256::new()
        .chain_update(store.as_str().as_bytes())
        .chain_update(b"\n")
        .chain_update(key.as_bytes())
        .finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    OrderId::parse(format!("hold_{hex}")).expect("a valid id")
}

/// Whether Stripe would take `email` as a `receipt_email`: one `@`, a non-empty local part, a
/// dotted domain of letters, digits and hyphens, printable ASCII, at most 254 characters.
/// Stricter than RFC 5322 on purpose: what Stripe refuses after the stock is held would hold it
/// for nothing.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"@()<>[]\\,;:\"".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && domain.contains('.')
        && domain.split('.').all(label_ok)
}

/// Stripe's minimum charge in a currency's minor units (Stripe's "Minimum and maximum charge
/// amounts" table, settlement in the same currency); `None` for currencies not listed, where
/// only the positive-amount rule is checked here and Stripe has the last word.
pub fn minimum_amount(currency: &str) -> Option<u64> {
    Some(match currency {
        "usd" | "aud" | "brl" | "cad" | "chf" | "eur" | "inr" | "nzd" | "sgd" | "jpy" => 50,
        "gbp" => 30,
        "bgn" => 100,
        "aed" | "myr" | "pln" | "ron" => 200,
        "dkk" => 250,
        "nok" | "sek" => 300,
        "hkd" => 400,
        "mxn" | "thb" => 1000,
        "czk" => 1500,
        "huf" => 17500,
        _ => return None,
    })
}

/// Stripe's largest amount for most currencies: eight digits of minor units.
pub const MAXIMUM_AMOUNT: u64 = 99_999_999;

/// Whether Stripe would accept `amount` in `currency` for a PaymentIntent; the refusal, in
/// words a buyer can act on, otherwise.
pub fn amount_problem(amount: u64, currency: &str) -> Option<String> {
    let minimum = minimum_amount(currency).unwrap_or(1);
    if amount < minimum {
        return Some(format!(
            "the total ({amount} {currency} minor units) is below the smallest payment Stripe takes ({minimum})"
        ));
    }
    (amount > MAXIMUM_AMOUNT).then(|| {
        format!("the total ({amount} {currency} minor units) is above the largest payment Stripe takes ({MAXIMUM_AMOUNT})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_id_is_a_cryptographic_hash_of_store_and_key() {
        let s = StoreId::parse("s1").unwrap();
        let a = hold_id(&s, "k1");
        assert_eq!(a, hold_id(&s, "k1"));
        assert_ne!(a, hold_id(&s, "k2"));
        assert_ne!(a, hold_id(&StoreId::parse("s2").unwrap(), "k1"));
        // SHA-256("s1\nk1"), first 16 bytes.
        assert_eq!(a.as_str(), "hold_21583ea44cb81989503b472075177282");
    }

    #[test]
    fn e_mails_stripe_would_refuse_are_refused() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "x_y@ex-ample.org",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "a@b", "@b.co", "a@", "a@@b.co", "a b@c.co", "a@b..co", "a@-b.co", "a.@b.co",
            "a@b.co.", "(a)@b.co", "ä@b.co", "a@b_c.co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn amounts_outside_stripes_limits_are_named() {
        assert!(amount_problem(49, "usd").is_some());
        assert!(amount_problem(50, "usd").is_none());
        assert!(amount_problem(29, "gbp").is_some());
        assert!(amount_problem(1, "xyz").is_none());
        assert!(amount_problem(0, "xyz").is_some());
        assert!(amount_problem(MAXIMUM_AMOUNT + 1, "usd").is_some());
    }
}
