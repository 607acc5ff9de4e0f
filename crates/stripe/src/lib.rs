//! Stripe adapter: the [`Payments`] port over async-stripe's typed client.
//!
//! Every call has a timeout (async-stripe sets none by default) and is retried here with
//! exponential backoff and full jitter on 429, 5xx and transport errors — async-stripe's own
//! retry strategies would send a fresh random idempotency key per `send()` (or none without its
//! `uuid` feature), which cannot deduplicate across Lambda retries. Refunds carry the order's
//! deterministic idempotency key on every attempt, so a refund is made at most once however often
//! it is retried. Link switches are naturally idempotent and carry no key (a key would replay an
//! old result if a link is switched off, on and off again within 24 hours).
//!
//! The typed requests go through [`transport::Transport`] (pooled connections, a token bucket
//! per process, and errors that keep `Retry-After`), not async-stripe's own hyper client.

use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use stockbridge_app::ports::{
    CreatedPaymentIntent, EventLog, GuardOutcome, IntentStatus, LinkDirectory, LinkSummary,
    LinkSwitch, LoggedEvent, NewPaymentIntent, Payments, PaymentsError, SessionLine, SessionLog,
    SessionPayment, SessionSummary,
};
use stockbridge_domain::{
    OrderId, PaymentIntentId, PaymentLinkId, ProductId, RefundId, RefundRequest, StripeEventId,
};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};

pub mod account;
pub mod budget;
pub mod catalog;
pub mod transport;

mod after_sale;
mod link_guard;
mod objects;
mod reads;

use stripe_checkout::checkout_session::{
    ListCheckoutSession, ListLineItemsCheckoutSession, RetrieveCheckoutSession,
};
use stripe_core::event::ListEvent;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CapturePaymentIntent, CreatePaymentIntent,
    CreatePaymentIntentAutomaticPaymentMethods, RetrievePaymentIntent,
};
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_payment::payment_link::{
    ListLineItemsPaymentLink, RetrievePaymentLink, UpdatePaymentLink,
};
use stripe_types::Expandable;
use tracing::warn;
use transport::{RateLimiter, Transport, TransportError};

/// Retry settings for Stripe calls.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts per call.
    pub attempts: u32,
    /// First backoff ceiling.
    pub base: Duration,
    /// Largest backoff ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(4),
        }
    }
}

/// Configuration of the Stripe client.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// The secret or restricted key. Never logged.
    pub api_key: SecretString,
    /// API base URL (`https://api.stripe.com/` by default; the local fake in tests).
    pub api_base: Option<String>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Requests per second this process may make (a token bucket shared by every call).
    pub max_rps: f64,
    /// Burst size of that bucket.
    pub burst: u32,
    /// The deployment's shared budget (`STRIPE_BUDGET_RPS`), taken before every attempt.
    pub budget: Option<budget::Budget>,
}

impl StripeConfig {
    /// Defaults: 10 s timeout, the default retries, 10 requests/s with bursts of 10 (well under
    /// Stripe's 25/s in test mode and 100/s live, leaving room for other functions).
    pub fn new(api_key: SecretString, api_base: Option<String>) -> Self {
        Self {
            api_key,
            api_base,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_rps: 10.0,
            burst: 10,
            budget: None,
        }
    }
}

/// Why the Stripe client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid Stripe configuration: {0}")]
pub struct StripeConfigError(String);

/// The Stripe adapter.
#[derive(Clone)]
pub struct StripePayments {
    client: Transport,
    retry: RetryPolicy,
}

impl std::fmt::Debug for StripePayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripePayments").finish_non_exhaustive()
    }
}

impl StripePayments {
    /// Builds the client.
    ///
    /// # Errors
    /// [`StripeConfigError`] when the key or URL is unusable.
    pub fn new(config: &StripeConfig) -> Result<Self, StripeConfigError> {
        let base = config
            .api_base
            .as_deref()
            .unwrap_or("https://api.stripe.com/");
        let client = Transport::new(
            config.api_key.expose_secret(),
            base,
            config.timeout,
            RateLimiter::new(config.max_rps, config.burst),
        )
        .map_err(StripeConfigError)?
        .with_budget(config.budget.clone());
        Ok(Self {
            client,
            retry: config.retry,
        })
    }

    /// Sends a typed request with an idempotency key on every attempt (retried like any call).
    async fn send_keyed<R>(
        &self,
        operation: &'static str,
        req: &R,
        idempotency_key: &str,
    ) -> Result<R::Output, PaymentsError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let key = IdempotencyKey::new(idempotency_key).map_err(|e| PaymentsError::Invalid {
            operation,
            message: format!("idempotency key: {e:?}"),
        })?;
        self.with_retry(operation, || {
            req.customize()
                .request_strategy(RequestStrategy::Idempotent(key.clone()))
                .send(&self.client)
        })
        .await
    }

    async fn with_retry<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, PaymentsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (err, should_retry) = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let should = match &e {
                        TransportError::Api { should_retry, .. } => *should_retry,
                        _ => None,
                    };
                    (classify(operation, e), should)
                }
            };
            // Stripe-Should-Retry overrides the status: `false` is final, `true` (e.g. a 409
            // lock timeout) is worth another attempt.
            let retryable = should_retry.unwrap_or_else(|| err.is_retryable());
            if !retryable || attempt >= self.retry.attempts {
                return Err(err);
            }
            let ceiling = self
                .retry
                .cap
                .min(self.retry.base.saturating_mul(1 << (attempt - 1).min(16)));
            // Full jitter, but never sooner than Stripe's Retry-After.
            let floor = match &err {
                PaymentsError::RateLimited {
                    retry_after: Some(d),
                    ..
                } => *d,
                _ => Duration::ZERO,
            };
            let pause = floor.max(rand::rng().random_range(Duration::ZERO..=ceiling));
            warn!(operation, attempt, error = %err, pause_ms = pause.as_millis() as u64, "Stripe call failed: retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

fn classify(operation: &'static str, e: TransportError) -> PaymentsError {
    match e {
        TransportError::Api {
            status,
            code,
            kind,
            message,
            retry_after,
            ..
        } => {
            // 409: another request with this idempotency key is still running, or a lock
            // timeout: worth another attempt, never a refusal.
            if status == 429 {
                PaymentsError::RateLimited {
                    operation,
                    retry_after,
                }
            } else if status >= 500 || status == 409 {
                PaymentsError::Unavailable { operation, message }
            } else if status == 404 {
                PaymentsError::NotFound { operation, message }
            } else if code.as_deref() == Some("charge_already_refunded") {
                PaymentsError::AlreadyRefunded
            } else if code.as_deref() == Some("payment_intent_unexpected_state") {
                PaymentsError::UnexpectedState { operation, message }
            } else if matches!(status, 400 | 402)
                && matches!(
                    kind.as_deref(),
                    Some("invalid_request_error" | "card_error")
                )
            {
                // Stripe's own validation of this request: the same request is refused again.
                PaymentsError::Refused {
                    operation,
                    message: format!("HTTP {status}: {message}"),
                }
            } else {
                PaymentsError::Rejected {
                    operation,
                    message: format!("HTTP {status}: {message}"),
                }
            }
        }
        TransportError::Timeout => PaymentsError::Unavailable {
            operation,
            message: "timed out".into(),
        },
        TransportError::Connection(m) => PaymentsError::Unavailable {
            operation,
            message: m,
        },
        TransportError::Decode(m) => PaymentsError::Invalid {
            operation,
            message: m,
        },
    }
}

impl Payments for StripePayments {
    async fn line_items(&self, session: &OrderId) -> Result<Vec<SessionLine>, PaymentsError> {
        const OP: &str = "list checkout session line items";
        let mut lines = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListLineItemsCheckoutSession::new(session.as_str()).limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = self.with_retry(OP, || req.send(&self.client)).await?;
            for item in &page.data {
                let invalid = |message: String| PaymentsError::Invalid {
                    operation: OP,
                    message,
                };
                let price = item
                    .price
                    .as_ref()
                    .ok_or_else(|| invalid(format!("line item {} has no price", item.id)))?;
                let product = match &price.product {
                    Expandable::Id(id) => id.as_str().to_owned(),
                    Expandable::Object(p) => p.id.as_str().to_owned(),
                };
                let product_id = ProductId::parse(product)
                    .map_err(|e| invalid(format!("line item {}: price.product: {e}", item.id)))?;
                let quantity = item
                    .quantity
                    .ok_or_else(|| invalid(format!("line item {} has no quantity", item.id)))?;
                lines.push(SessionLine {
                    product_id,
                    quantity,
                    amount_total: u64::try_from(item.amount_total).ok(),
                });
            }
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.as_str().to_owned()),
                _ => return Ok(lines),
            }
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundId, PaymentsError> {
        const OP: &str = "create refund";
        // The idempotency key guards a retry for 24 hours; past that (a refund retried after a
        // pause, a parked repair retried by hand), the refund this order already got is found
        // by its metadata, so a partial refund is never made twice.
        let list = ListRefund::new()
            .payment_intent(request.payment_intent.as_str())
            .limit(100);
        let made = self
            .with_retry("list refunds", || list.send(&self.client))
            .await?;
        let order = request.order_id.as_str();
        if let Some(r) = made.data.iter().find(|r| {
            r.metadata
                .as_ref()
                .and_then(|m| m.get(REFUND_ORDER_KEY))
                .is_some_and(|o| o == order)
        }) {
            return RefundId::parse(r.id.as_str()).map_err(|e| PaymentsError::Invalid {
                operation: OP,
                message: e.to_string(),
            });
        }
        let mut req = CreateRefund::new()
            .payment_intent(request.payment_intent.as_str())
            .metadata([(REFUND_ORDER_KEY.to_owned(), order.to_owned())]);
        if let Some(amount) = request.amount {
            req = req.amount(i64::try_from(amount).map_err(|e| PaymentsError::Invalid {
                operation: OP,
                message: format!("refund amount {amount}: {e}"),
            })?);
        }
        let refund = self.send_keyed(OP, &req, &request.idempotency_key).await?;
        RefundId::parse(refund.id.as_str()).map_err(|e| PaymentsError::Invalid {
            operation: OP,
            message: e.to_string(),
        })
    }

    async fn set_link_active(
        &self,
        link: &PaymentLinkId,
        active: bool,
        inactive_message: Option<&str>,
    ) -> Result<LinkSwitch, PaymentsError> {
        const OP: &str = "update payment link";
        // Read first: a switch that changes nothing is never sent (rate budget), and the answer
        // says whether the link was already in that state — for a switch-off, whether someone
        // else had switched it off (then it is not stockbridge's to switch back on).
        let retrieve = RetrievePaymentLink::new(link.as_str());
        let current = self
            .with_retry("read payment link", || retrieve.send(&self.client))
            .await?;
        if current.active == active {
            return Ok(LinkSwitch::Unchanged {
                inactive_message: current.inactive_message.clone(),
                at_guard_limit: !active && link_guard::link_limit(&current).reached_ours(),
            });
        }
        let mut req = UpdatePaymentLink::new(link.as_str()).active(active);
        // Switching on clears the message shown while off: Stripe would keep it, and the message
        // is how a later switch-off is told apart (stockbridge's own, or someone else's).
        match (active, inactive_message) {
            (true, _) => req = req.inactive_message(""),
            (false, Some(m)) => req = req.inactive_message(m),
            (false, None) => {}
        }
        self.with_retry(OP, || req.send(&self.client)).await?;
        Ok(LinkSwitch::Switched)
    }

    async fn guard_link(
        &self,
        link: &PaymentLinkId,
        sessions: u64,
        activate: bool,
    ) -> Result<GuardOutcome, PaymentsError> {
        self.set_guard(link, sessions, activate).await
    }

    async fn create_payment_intent(
        &self,
        request: &NewPaymentIntent,
    ) -> Result<CreatedPaymentIntent, PaymentsError> {
        const OP: &str = "create payment intent";
        let invalid = |message: String| PaymentsError::Invalid {
            operation: OP,
            message,
        };
        let currency = request
            .currency
            .parse::<stripe_types::Currency>()
            .map_err(|_| invalid(format!("currency {}", request.currency)))?;
        let amount = i64::try_from(request.amount).map_err(|_| invalid("amount".into()))?;
        let mut req = CreatePaymentIntent::new(amount, currency)
            .capture_method(stripe_shared::PaymentIntentCaptureMethod::Manual)
            .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
            .metadata(std::collections::HashMap::from([
                ("hold_id".to_owned(), request.hold_id.to_string()),
                ("store_id".to_owned(), request.store_id.to_string()),
            ]));
        if let Some(e) = &request.receipt_email {
            req = req.receipt_email(e.clone());
        }
        let pi = self.send_keyed(OP, &req, &request.idempotency_key).await?;
        Ok(CreatedPaymentIntent {
            id: PaymentIntentId::parse(pi.id.as_str()).map_err(|e| invalid(e.to_string()))?,
            client_secret: pi
                .client_secret
                .ok_or_else(|| invalid("no client_secret in the answer".into()))?,
        })
    }

    async fn capture_payment_intent(
        &self,
        payment_intent: &PaymentIntentId,
        idempotency_key: &str,
    ) -> Result<(), PaymentsError> {
        let req = CapturePaymentIntent::new(payment_intent.as_str());
        self.send_keyed("capture payment intent", &req, idempotency_key)
            .await
            .map(|_| ())
    }

    async fn cancel_payment_intent(
        &self,
        payment_intent: &PaymentIntentId,
        idempotency_key: &str,
    ) -> Result<(), PaymentsError> {
        let req = CancelPaymentIntent::new(payment_intent.as_str());
        self.send_keyed("cancel payment intent", &req, idempotency_key)
            .await
            .map(|_| ())
    }

    async fn order_of_payment(
        &self,
        payment_intent: Option<&stockbridge_domain::PaymentIntentId>,
        charge: &stockbridge_domain::ChargeId,
    ) -> Result<Option<OrderId>, PaymentsError> {
        self.find_order_of_payment(payment_intent, charge).await
    }

    async fn payment_intent_status(
        &self,
        payment_intent: &PaymentIntentId,
    ) -> Result<IntentStatus, PaymentsError> {
        let req = RetrievePaymentIntent::new(payment_intent.as_str());
        let pi = self
            .with_retry("read payment intent", || req.send(&self.client))
            .await?;
        Ok(IntentStatus::parse(pi.status.as_str()))
    }
}

/// The refund metadata key naming the order a refund was made for.
const REFUND_ORDER_KEY: &str = "stockbridge_order";

/// The Stripe API version this build's typed requests (and event decoding) are generated for.
pub fn api_version() -> &'static str {
    stripe_shared::version::VERSION.as_str()
}
