//! The waitlist's configuration (docs/waitlist.md): its signing secret, where its links point,
//! its caps, and the bus its events go to. Used by the checkout (`POST /waitlist` and the
//! links) and the broadcaster (restock announcements).

use stockbridge_app::waitlist::{Signer, WaitlistLimits, WaitlistLinks};

use super::*;
use crate::settings::number;
use crate::wiring::secret_text;

/// What the waitlist needs, once configured.
#[derive(Debug, Clone)]
pub struct WaitlistSetup {
    /// Signs and checks its links. `links.base` is empty when `WAITLIST_LINK_BASE` is unset:
    /// the checkout then links to the host a request came to.
    pub links: WaitlistLinks,
    /// `WAITLIST_JOINS_PER_CLIENT` (60), `WAITLIST_JOINS_PER_EMAIL` (5), per hour.
    pub limits: WaitlistLimits,
    /// Its events, on `MERCHANT_EVENT_BUS`.
    pub events: EventBridgeNotifier,
}

/// The waitlist's setup: `None` when it is off (neither `WAITLIST_SECRET` nor
/// `WAITLIST_SECRET_ARN` is set).
///
/// # Errors
/// [`ConfigError`]: a secret shorter than 32 bytes or unreadable, a cap that is not a number,
/// or `MERCHANT_EVENT_BUS` unset (a confirmation request must reach the merchant's mailer).
pub async fn waitlist() -> Result<Option<WaitlistSetup>, ConfigError> {
    let aws = aws_config().await;
    let secret = match (var("WAITLIST_SECRET"), var("WAITLIST_SECRET_ARN")) {
        (Some(s), _) => s,
        (None, Some(arn)) => secret_text(&arn, &aws).await?,
        (None, None) => return Ok(None),
    };
    let signer = Signer::new(secret.trim().as_bytes()).ok_or(ConfigError::Invalid {
        name: "WAITLIST_SECRET",
        message: format!(
            "the signing secret needs at least {} bytes",
            Signer::MIN_SECRET
        ),
    })?;
    let bus = var("MERCHANT_EVENT_BUS").ok_or(ConfigError::Missing(
        "MERCHANT_EVENT_BUS",
        "the waitlist publishes its confirmation requests and announcements there",
    ))?;
    Ok(Some(WaitlistSetup {
        links: WaitlistLinks {
            signer,
            base: var("WAITLIST_LINK_BASE").unwrap_or_default(),
        },
        limits: WaitlistLimits {
            per_client: number("WAITLIST_JOINS_PER_CLIENT", 60, 1)?,
            per_email: number("WAITLIST_JOINS_PER_EMAIL", 5, 1)?,
        },
        events: EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(&aws), bus),
    }))
}
