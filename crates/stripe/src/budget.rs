//! One Stripe budget for the whole deployment, kept in the table.
//!
//! Stripe limits the account (100 requests/s live, 25 in a sandbox) and each endpoint (25/s by
//! default). Every function calls Stripe, and with concurrency that is not reserved their
//! per-process buckets add up to no bound at all. So before each attempt the transport takes a
//! slot from counters every function shares (the `Counters` port: one conditional `UpdateItem`
//! each, about 1 write unit):
//! - the account's: `STRIPE_BUDGET_RPS` a second, counted in quarter-second slots so a burst
//!   at a slot's edge stays within Stripe's own bucket;
//! - the endpoint's (method and path, ids as `*`): [`ENDPOINT_RPS`] a second, likewise.
//!
//! Not every request is equal. Money and stock that is already sold come first: a
//! [`Priority::Settle`] request (refunds and their listing, captures, cancellations, reading a
//! PaymentIntent) may
//! fill a slot; a [`Priority::Sell`] request (an order's line items, a link switch, a checkout's
//! PaymentIntent) stops at 80 % of it; [`Priority::Background`] (catalog sync, backfill, the
//! reconciler's listings) at 50 %. However busy the shop, a fifth of the budget is always left
//! for refunds and captures. That holds from 8 requests a second: below it a quarter second
//! has room for one request of any kind (the template accepts 0, meaning its default, or 8 and
//! more).
//!
//! A request that finds its slots full waits for the next quarter second, for at most
//! [`MAX_WAIT`]; then it fails like a 429 from Stripe (the adapter's retries and the event's
//! redelivery take it from there). When the table cannot be reached the request goes ahead
//! (logged): the per-process bucket still applies and Stripe's own 429 is retried. Taking a
//! slot costs a DynamoDB round trip (a few ms) per Stripe call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use stockbridge_app::ports::{Counters, StoreError, Window};
use stockbridge_domain::Timestamp;
use stripe_client_core::StripeMethod;
use tracing::warn;

use crate::transport::TransportError;

/// Stripe's default per-endpoint limit, less a fifth for the Dashboard and other integrations.
pub const ENDPOINT_RPS: f64 = 20.0;
/// Slots per second.
const SLOTS: i64 = 4;
/// The longest a request waits for a slot before it counts as rate limited.
pub const MAX_WAIT: Duration = Duration::from_secs(3);

/// Which requests go first when the budget is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Money and sold stock: refunds, captures, cancellations, reading a PaymentIntent.
    Settle,
    /// Selling: an order's line items, switching a link, creating a checkout's PaymentIntent.
    Sell,
    /// Everything else: catalog sync, backfill, the reconciler's listings.
    Background,
}

impl Priority {
    /// The priority of one request, from its method and path (`/payment_intents/pi_1/capture`).
    pub fn of(method: &StripeMethod, path: &str) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let post = matches!(method, StripeMethod::Post);
        match parts.as_slice() {
            // A refund lists the PaymentIntent's refunds first (never refund twice).
            ["refunds"] => Self::Settle,
            ["payment_intents", _, "capture" | "cancel"] if post => Self::Settle,
            ["payment_intents", _] if !post => Self::Settle,
            ["payment_intents"] if post => Self::Sell,
            ["checkout", "sessions", _, "line_items"] => Self::Sell,
            ["payment_links", _] => Self::Sell,
            _ => Self::Background,
        }
    }

    /// The share of a slot this priority may fill.
    fn share(self) -> f64 {
        match self {
            Self::Settle => 1.0,
            Self::Sell => 0.8,
            Self::Background => 0.5,
        }
    }
}

/// The endpoint a request counts against: method and path with every id as `*`
/// (`POST /payment_intents/*/capture`).
pub fn endpoint(method: &StripeMethod, path: &str) -> String {
    let verb = match method {
        StripeMethod::Get => "GET",
        StripeMethod::Post => "POST",
        StripeMethod::Delete => "DELETE",
    };
    let path: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        // Stripe ids are `prefix_` and random base-62; resource names (`line_items`,
        // `payment_intents`) are lower case letters and underscores only.
        .map(|p| {
            let random = p
                .chars()
                .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
            if p.contains('_') && random { "*" } else { p }
        })
        .collect();
    format!("{verb} /{}", path.join("/"))
}

type Taken<'a> = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;
type Given<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The counters the budget keeps, as an object (the `Counters` port is not object safe).
trait Slots: Send + Sync {
    fn take<'a>(&'a self, w: &'a Window, cap: u32) -> Taken<'a>;
    fn give_back<'a>(&'a self, w: &'a Window) -> Given<'a>;
}

impl<C: Counters> Slots for C {
    fn take<'a>(&'a self, w: &'a Window, cap: u32) -> Taken<'a> {
        Box::pin(Counters::take(self, w, 1, cap))
    }
    fn give_back<'a>(&'a self, w: &'a Window) -> Given<'a> {
        Box::pin(Counters::give_back(self, w, 1))
    }
}

/// The deployment's shared budget.
#[derive(Clone)]
pub struct Budget {
    slots: Arc<dyn Slots>,
    account_rps: f64,
    endpoint_rps: f64,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("account_rps", &self.account_rps)
            .field("endpoint_rps", &self.endpoint_rps)
            .finish_non_exhaustive()
    }
}

/// Whether a slot was taken, and if not, when to try again.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    Go,
    Full,
}

impl Budget {
    /// `account_rps` requests a second for the whole deployment, kept in `counters`.
    pub fn new(counters: impl Counters + 'static, account_rps: f64) -> Self {
        Self {
            slots: Arc::new(counters),
            account_rps,
            endpoint_rps: ENDPOINT_RPS.min(account_rps),
        }
    }

    fn cap(rps: f64, priority: Priority) -> u32 {
        // At least one request a slot, or a small budget would never let anything through.
        ((rps / SLOTS as f64) * priority.share()).floor().max(1.0) as u32
    }

    async fn try_take(
        &self,
        priority: Priority,
        endpoint: &str,
        now_ms: i64,
    ) -> Result<Admission, StoreError> {
        let len = 1000 / SLOTS;
        let start = Timestamp(now_ms - now_ms.rem_euclid(len));
        let account = Window {
            key: "stripe".into(),
            start,
            seconds: 1,
        };
        if !self
            .slots
            .take(&account, Self::cap(self.account_rps, priority))
            .await?
        {
            return Ok(Admission::Full);
        }
        let ep = Window {
            key: format!("stripe {endpoint}"),
            start,
            seconds: 1,
        };
        if self
            .slots
            .take(&ep, Self::cap(self.endpoint_rps, priority))
            .await?
        {
            return Ok(Admission::Go);
        }
        // The endpoint is full: the account's slot goes back to the others (if that fails,
        // the slot stays taken: the budget errs on the side of fewer requests).
        if let Err(e) = self.slots.give_back(&account).await {
            warn!(error = %e, "the shared Stripe budget kept a slot it could not give back");
        }
        Ok(Admission::Full)
    }

    /// Waits for a slot for one request.
    ///
    /// # Errors
    /// A 429-like [`TransportError`] when none came within [`MAX_WAIT`].
    pub async fn admit(&self, method: &StripeMethod, path: &str) -> Result<(), TransportError> {
        let priority = Priority::of(method, path);
        let endpoint = endpoint(method, path);
        let give_up = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            match self.try_take(priority, &endpoint, now_ms).await {
                Ok(Admission::Go) => return Ok(()),
                Ok(Admission::Full) => {}
                Err(e) => {
                    warn!(error = %e, endpoint, "the shared Stripe budget cannot be read: going ahead on this process's own limit");
                    return Ok(());
                }
            }
            let len = 1000 / SLOTS;
            let next =
                Duration::from_millis(u64::try_from(len - now_ms.rem_euclid(len)).unwrap_or(0))
                    + Duration::from_millis(rand::random_range(0..20));
            if tokio::time::Instant::now() + next > give_up {
                return Err(TransportError::Api {
                    status: 429,
                    code: Some("stockbridge_budget".into()),
                    kind: None,
                    message: format!(
                        "the deployment's Stripe budget has no room for {endpoint} ({priority:?})"
                    ),
                    retry_after: Some(Duration::from_millis(u64::try_from(len).unwrap_or(250))),
                    should_retry: Some(true),
                });
            }
            tokio::time::sleep(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_sold_stock_come_first_catalog_work_last() {
        use StripeMethod::{Get, Post};
        for (m, p, want) in [
            (Post, "/refunds", Priority::Settle),
            (Get, "/refunds", Priority::Settle),
            (Post, "/payment_intents/pi_1/capture", Priority::Settle),
            (Post, "/payment_intents/pi_1/cancel", Priority::Settle),
            (Get, "/payment_intents/pi_1", Priority::Settle),
            (Post, "/payment_intents", Priority::Sell),
            (Get, "/checkout/sessions/cs_1/line_items", Priority::Sell),
            (Post, "/payment_links/plink_1", Priority::Sell),
            (Get, "/payment_links/plink_1", Priority::Sell),
            (Post, "/products/prod_1", Priority::Background),
            (Get, "/events", Priority::Background),
            (Get, "/checkout/sessions", Priority::Background),
            (Post, "/payment_links", Priority::Background),
        ] {
            assert_eq!(Priority::of(&m, p), want, "{p}");
        }
    }

    #[test]
    fn an_endpoint_is_its_method_and_path_with_ids_starred() {
        assert_eq!(
            endpoint(
                &StripeMethod::Get,
                "/checkout/sessions/cs_test_a1B2/line_items"
            ),
            "GET /checkout/sessions/*/line_items"
        );
        assert_eq!(
            endpoint(&StripeMethod::Post, "/payment_intents/pi_3Nq9/capture"),
            "POST /payment_intents/*/capture"
        );
        assert_eq!(endpoint(&StripeMethod::Post, "/refunds"), "POST /refunds");
    }

    async fn admitted(b: &Budget, p: Priority, endpoint: &str, at: i64) -> bool {
        b.try_take(p, endpoint, at).await.unwrap() == Admission::Go
    }

    #[tokio::test]
    async fn a_slot_full_of_catalog_work_still_has_room_for_selling_and_refunds() {
        let store = stockbridge_app::memory::MemoryStore::default();
        // 20 a second: a quarter second takes 5 settling, 4 selling, 2 background requests.
        let b = Budget::new(store.clone(), 20.0);
        let (t, bg, sell, settle) = (
            1_000_000,
            Priority::Background,
            Priority::Sell,
            Priority::Settle,
        );
        assert!(admitted(&b, bg, "GET /events", t).await);
        assert!(admitted(&b, bg, "GET /events", t + 100).await);
        assert!(
            !admitted(&b, bg, "GET /products", t + 200).await,
            "half the slot"
        );
        assert!(admitted(&b, sell, "POST /payment_links/*", t).await);
        assert!(admitted(&b, sell, "POST /payment_links/*", t).await);
        assert!(
            !admitted(&b, sell, "POST /payment_links/*", t).await,
            "80 %"
        );
        assert!(admitted(&b, settle, "POST /refunds", t).await);
        assert!(
            !admitted(&b, settle, "POST /refunds", t).await,
            "the slot is full"
        );
        assert!(
            admitted(&b, bg, "GET /events", t + 250).await,
            "the next slot"
        );
    }

    #[tokio::test]
    async fn a_full_endpoint_gives_the_accounts_slot_back() {
        let store = stockbridge_app::memory::MemoryStore::default();
        // 80 a second for the account, 20 for one endpoint: 5 refunds a quarter second.
        let b = Budget::new(store.clone(), 80.0);
        for _ in 0..5 {
            assert!(admitted(&b, Priority::Settle, "POST /refunds", 0).await);
        }
        assert!(!admitted(&b, Priority::Settle, "POST /refunds", 0).await);
        let account = Window {
            key: "stripe".into(),
            start: Timestamp(0),
            seconds: 1,
        };
        assert_eq!(Counters::count(&store, &account).await.unwrap(), 5);
        assert!(admitted(&b, Priority::Settle, "POST /payment_intents/*/capture", 0).await);
    }

    #[test]
    fn each_priority_fills_its_share_of_a_quarter_second_and_never_less_than_one() {
        assert_eq!(Budget::cap(80.0, Priority::Settle), 20);
        assert_eq!(Budget::cap(80.0, Priority::Sell), 16);
        assert_eq!(Budget::cap(80.0, Priority::Background), 10);
        assert_eq!(Budget::cap(20.0, Priority::Background), 2);
        assert_eq!(Budget::cap(2.0, Priority::Background), 1);
    }
}
