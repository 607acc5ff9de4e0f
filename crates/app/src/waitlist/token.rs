//! Signed links of the waitlist: confirm an address, leave a list, fetch a restock's entries.
//!
//! A token is `{payload}.{mac}`: the payload is the [`Token`] as JSON, base64url; the mac is
//! HMAC-SHA256 of the payload text under the waitlist's secret, base64url. Whoever holds a
//! token may do what it says and nothing else; nobody can make one without the secret. A
//! token names an address by its hashed key only, so a link never carries the address.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use stockbridge_domain::{ProductId, StoreId, Timestamp};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a link allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Token {
    /// Confirm an address's entry, until `expires` (ms).
    Confirm {
        /// The store.
        store: String,
        /// The product.
        product: String,
        /// The address's key.
        email: String,
        /// Until when (ms).
        expires: i64,
    },
    /// Leave a list (no end: as long as the entry lasts).
    Unsubscribe {
        /// The store.
        store: String,
        /// The product.
        product: String,
        /// The address's key.
        email: String,
    },
    /// Read the entries a restock serves, until `expires` (ms).
    Entries {
        /// The store.
        store: String,
        /// The product.
        product: String,
        /// The restock announced before (its version; 0: none).
        from: u64,
        /// The restock's version.
        to: u64,
        /// Until when (ms).
        expires: i64,
    },
}

impl Token {
    /// The store and product it is about.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] if they are not ids (a token signed by a bug).
    pub fn subject(&self) -> Result<(StoreId, ProductId), TokenError> {
        let (Self::Confirm { store, product, .. }
        | Self::Unsubscribe { store, product, .. }
        | Self::Entries { store, product, .. }) = self;
        Ok((
            StoreId::parse(store.clone()).map_err(|_| TokenError::Invalid)?,
            ProductId::parse(product.clone()).map_err(|_| TokenError::Invalid)?,
        ))
    }

    fn expires(&self) -> Option<i64> {
        match self {
            Self::Confirm { expires, .. } | Self::Entries { expires, .. } => Some(*expires),
            Self::Unsubscribe { .. } => None,
        }
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token, or not signed by this secret.
    #[error("this link is not valid (it was changed or cut short)")]
    Invalid,
    /// Signed, but its time is up.
    #[error("this link has expired")]
    Expired,
}

/// Signs and checks tokens with the waitlist's secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The shortest secret accepted, in bytes.
    pub const MIN_SECRET: usize = 32;

    /// A signer with `secret`, or `None` when it is shorter than [`Self::MIN_SECRET`].
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= Self::MIN_SECRET).then(|| Self {
            key: secret.to_vec(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// The token for `t`.
    pub fn sign(&self, t: &Token) -> String {
        let payload = B64.encode(serde_json::to_vec(t).unwrap_or_default());
        let mac = self.mac().chain_update(payload.as_bytes()).finalize();
        format!("{payload}.{}", B64.encode(mac.into_bytes()))
    }

    /// What `token` allows at `now`.
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Token, TokenError> {
        let (payload, mac) = token.trim().split_once('.').ok_or(TokenError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| TokenError::Invalid)?;
        // Checked in constant time before anything of the payload is read.
        self.mac()
            .chain_update(payload.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        let json = B64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let t: Token = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if t.expires().is_some_and(|e| e <= now.0) {
            return Err(TokenError::Expired);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7u8; 32]).unwrap()
    }

    fn confirm(expires: i64) -> Token {
        Token::Confirm {
            store: "s1".into(),
            product: "prod_1".into(),
            email: "email:abc".into(),
            expires,
        }
    }

    #[test]
    fn a_token_allows_what_it_says_until_it_expires() {
        let t = signer().sign(&confirm(2_000));
        assert_eq!(signer().verify(&t, Timestamp(1_999)), Ok(confirm(2_000)));
        assert_eq!(
            signer().verify(&t, Timestamp(2_000)),
            Err(TokenError::Expired)
        );
        let u = Token::Unsubscribe {
            store: "s1".into(),
            product: "prod_1".into(),
            email: "email:abc".into(),
        };
        let tu = signer().sign(&u);
        assert_eq!(signer().verify(&tu, Timestamp(i64::MAX)), Ok(u));
        assert!(!t.contains('@') && !t.contains('+') && !t.contains('/'));
    }

    #[test]
    fn a_changed_token_or_another_secret_is_refused() {
        let t = signer().sign(&confirm(2_000));
        let other = Signer::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, Timestamp(0)), Err(TokenError::Invalid));
        // Another payload under the first token's mac.
        let forged = signer().sign(&confirm(9_000));
        let (payload, _) = forged.split_once('.').unwrap();
        let (_, mac) = t.split_once('.').unwrap();
        let swapped = format!("{payload}.{mac}");
        assert_eq!(
            signer().verify(&swapped, Timestamp(0)),
            Err(TokenError::Invalid)
        );
        for bad in ["", ".", "abc", "abc.def", &t[..t.len() - 2]] {
            assert_eq!(signer().verify(bad, Timestamp(0)), Err(TokenError::Invalid));
        }
        assert!(Signer::new(&[1u8; 31]).is_none(), "a short secret");
    }
}
