//! Checks a webhook delivery's `Stripe-Signature` header before anything reads the body.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256, the key being the endpoint's `whsec_…`
//! secret as it is written (its UTF-8 bytes), and sends `t=<unix seconds>,v1=<hex>[,v1=…]`
//! (a `v0` signature in test mode, which only Stripe can check: ignored, as Stripe advises, so
//! nobody can downgrade the scheme). A delivery is genuine when one `v1` signature matches one
//! configured secret and `t` is within the tolerance of now.
//!
//! Why by hand and not `async-stripe-webhook`: that crate checks one secret, then always parses
//! the body as a v1 snapshot event, so a thin event (`v2.core.event`) with a good signature
//! fails as unparseable. The scheme is the same (hmac + sha2, compared in constant time).
//!
//! Several `v1` signatures come while an endpoint's secret is being rolled (Stripe signs with
//! the old and the new secret for up to 24 hours); several secrets are configured for the same
//! reason on our side (`STRIPE_WEBHOOK_SECRET` lists them), so a rotation never fails a
//! delivery.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Stripe's default tolerance: a delivery whose timestamp is further than this from now (either
/// way) is refused, so a captured delivery cannot be replayed later.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused (logged; the caller only hears "bad signature").
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("no Stripe-Signature header")]
    Missing,
    /// The header has no `t=` timestamp, or one that is not a number.
    #[error("the Stripe-Signature header has no usable timestamp")]
    NoTimestamp,
    /// The header has no `v1=` signature.
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    /// The timestamp is too far from now.
    #[error("the signature's timestamp is {age_secs} s from now (tolerance {TOLERANCE_SECS} s)")]
    Stale {
        /// Now minus the timestamp (negative: in the future).
        age_secs: i64,
    },
    /// No `v1` signature matches any configured secret.
    #[error("no v1 signature matches a configured endpoint secret")]
    Mismatch,
}

/// The endpoint secrets a delivery may be signed with (the current one, and during a rotation
/// the previous one). Never printed.
#[derive(Clone)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

/// A secret list that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SecretsError(String);

impl Secrets {
    /// Reads `whsec_…` secrets separated by commas, spaces or new lines.
    ///
    /// # Errors
    /// [`SecretsError`] when there is none, or one does not start with `whsec_` (a Stripe API
    /// key pasted by mistake would otherwise fail every delivery, silently).
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let list: Vec<String> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(SecretsError(
                "no webhook endpoint secret is configured".into(),
            ));
        }
        if let Some(bad) = list.iter().position(|s| !s.starts_with("whsec_")) {
            return Err(SecretsError(format!(
                "webhook secret #{} does not start with whsec_ (use the endpoint's signing secret, not an API key)",
                bad + 1
            )));
        }
        Ok(Self(list))
    }
}

/// Checks `header` (the `Stripe-Signature` value) over the raw `body` at `now` (Unix seconds).
///
/// # Errors
/// [`SignatureError`]: the delivery must be refused without reading the body.
pub fn verify(
    body: &[u8],
    header: Option<&str>,
    secrets: &Secrets,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {} // v0 and unknown schemes: ignored (never a downgrade)
        }
    }
    let t = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let age_secs = now.saturating_sub(t);
    if age_secs.abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale { age_secs });
    }
    for secret in &secrets.0 {
        let Some(expected) = sign(secret, t, body) else {
            continue;
        };
        // Every candidate is compared, in constant time, so the timing says nothing about
        // which one came close.
        let matched = signatures.iter().fold(subtle::Choice::from(0), |any, s| {
            any | expected.as_bytes().ct_eq(s.as_bytes())
        });
        if bool::from(matched) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `v1` signature of `body` at `t` with `secret`, in lowercase hex (as Stripe sends it);
/// `None` only if the HMAC refused the key (HMAC takes keys of any length: never).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> Option<String> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
