//! In-memory Stripe for the inventory and the checkout: sessions, refunds, links, PaymentIntents.

use super::*;

/// An in-memory [`Payments`]: sessions' lines, links' active flags and idempotent refunds.
#[derive(Debug, Default)]
pub struct MemoryPaymentsParts {
    /// Lines per session.
    pub sessions: Mutex<HashMap<OrderId, Vec<SessionLine>>>,
    /// Active flag per link (absent = active).
    pub links: Mutex<HashMap<PaymentLinkId, bool>>,
    /// The message each link shows while off, as the last switch set it.
    pub link_messages: Mutex<HashMap<PaymentLinkId, String>>,
    /// Refunds by idempotency key: (payment intent, refund id).
    pub refunds: Mutex<BTreeMap<String, (String, RefundId)>>,
    /// Calls made, by operation.
    pub calls: Mutex<Vec<&'static str>>,
    /// While > 0, link switches fail (and decrement it).
    pub fail_links: AtomicUsize,
    /// Where each session's payment stands (absent: still pending).
    pub session_payments: Mutex<HashMap<OrderId, crate::ports::SessionPayment>>,
    /// Completed sessions, as Stripe would list them.
    pub completed: Mutex<Vec<crate::ports::SessionSummary>>,
    /// Products, prices and links.
    pub catalog: Mutex<MemoryStripeCatalog>,
    /// List pages served before one fails (`None`: never), to interrupt a backfill.
    pub pages_before_failure: Mutex<Option<usize>>,
    /// Stripe's event log (as a [`crate::ports::EventLog`]).
    pub event_log: MemoryEventLog,
    /// PaymentIntents by idempotency key.
    pub intents: Mutex<HashMap<String, MemoryIntent>>,
    /// The amount of each refund by idempotency key (`None`: in full).
    pub refund_amounts: Mutex<BTreeMap<String, Option<u64>>>,
    /// PaymentIntents Stripe refuses to refund (a disputed charge, a method that cannot refund).
    pub refuse_refunds: Mutex<std::collections::BTreeSet<String>>,
    /// Set: Stripe refuses to create PaymentIntents with this message (a 400).
    pub refuse_intents: Mutex<Option<String>>,
    /// While > 0, creating a PaymentIntent fails as an outage would (and decrements it).
    pub fail_intents: AtomicUsize,
    /// Objects a thin event names, by id (`StripeObjects::object`).
    pub objects: Mutex<HashMap<String, serde_json::Value>>,
    /// v2 events with their fetched attributes, by id (`StripeObjects::event`).
    pub v2_events: Mutex<HashMap<String, serde_json::Value>>,
    /// While > 0, reading an object fails as an outage would (and decrements it).
    pub fail_objects: AtomicUsize,
    /// Each link's completed-sessions restriction: (count, limit, set by stockbridge).
    pub link_limits: Mutex<HashMap<PaymentLinkId, (u64, u64, bool)>>,
    /// The order each payment belongs to, by PaymentIntent or charge id (a session's, as
    /// `GET /v1/checkout/sessions?payment_intent=` finds it; a hold's PaymentIntent is added
    /// when created).
    pub payment_orders: Mutex<HashMap<String, OrderId>>,
}

/// In-memory Stripe: a cheap-`Clone` handle (clones share one state, like `mini-redis`'s `Db`), so a test
/// keeps one to look inside while the use case holds another.
#[derive(Debug, Default, Clone)]
pub struct MemoryPayments(std::sync::Arc<MemoryPaymentsParts>);

impl std::ops::Deref for MemoryPayments {
    type Target = MemoryPaymentsParts;

    fn deref(&self) -> &MemoryPaymentsParts {
        &self.0
    }
}

impl MemoryPayments {
    /// Registers a session's lines.
    pub fn add_session(&self, id: &OrderId, lines: Vec<SessionLine>) {
        lock(&self.sessions).insert(id.clone(), lines);
    }

    /// Whether a link is active.
    pub fn link_active(&self, link: &PaymentLinkId) -> bool {
        lock(&self.links).get(link).copied().unwrap_or(true)
    }

    /// A buyer completes a session through `link`, as Stripe counts it: with a limit, the count
    /// rises and the link goes off at the limit (the fake Stripe's model, docs/link-guard.md).
    /// Whether the link took the buyer (it was on).
    pub fn complete_link_session(&self, link: &PaymentLinkId) -> bool {
        if !self.link_active(link) {
            return false;
        }
        if let Some((count, limit, _)) = lock(&self.link_limits).get_mut(link) {
            *count += 1;
            if *count >= *limit {
                lock(&self.links).insert(link.clone(), false);
            }
        }
        true
    }

    /// Fails a link update while `fail_links` counts down (an outage).
    fn injected_link_failure(&self, operation: &'static str) -> Result<(), PaymentsError> {
        match self
            .fail_links
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Err(PaymentsError::Unavailable {
                operation,
                message: "injected failure".into(),
            }),
            Err(_) => Ok(()),
        }
    }

    /// A limit set at Stripe by someone else (a merchant in the Dashboard).
    pub fn set_foreign_limit(&self, link: &PaymentLinkId, limit: u64) {
        let mut limits = lock(&self.link_limits);
        let count = limits.get(link).map_or(0, |l| l.0);
        limits.insert(link.clone(), (count, limit, false));
    }

    /// The link's limit as Stripe would report it.
    pub fn link_limit(&self, link: &PaymentLinkId) -> stockbridge_domain::link_guard::LinkLimit {
        use stockbridge_domain::link_guard::{LinkGuard, LinkLimit};
        match lock(&self.link_limits).get(link) {
            None => LinkLimit::None,
            Some(&(count, limit, true)) => LinkLimit::Ours(LinkGuard { count, limit }),
            Some(_) => LinkLimit::Theirs,
        }
    }
}

impl Payments for MemoryPayments {
    async fn line_items(&self, session: &OrderId) -> Result<Vec<SessionLine>, PaymentsError> {
        lock(&self.calls).push("line_items");
        lock(&self.sessions)
            .get(session)
            .cloned()
            .ok_or_else(|| PaymentsError::Rejected {
                operation: "list line items",
                message: format!("No such checkout.session: {session}"),
            })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundId, PaymentsError> {
        lock(&self.calls).push("refund");
        if lock(&self.refuse_refunds).contains(request.payment_intent.as_str()) {
            return Err(PaymentsError::Rejected {
                operation: "refund",
                message: format!("Charge for {} has been disputed", request.payment_intent),
            });
        }
        let mut refunds = lock(&self.refunds);
        if let Some((_, id)) = refunds.get(&request.idempotency_key) {
            return Ok(id.clone());
        }
        let id = RefundId::parse(format!("re_{}", refunds.len() + 1)).map_err(|e| {
            PaymentsError::Invalid {
                operation: "refund",
                message: e.to_string(),
            }
        })?;
        refunds.insert(
            request.idempotency_key.clone(),
            (request.payment_intent.to_string(), id.clone()),
        );
        lock(&self.refund_amounts).insert(request.idempotency_key.clone(), request.amount);
        Ok(id)
    }

    async fn set_link_active(
        &self,
        link: &PaymentLinkId,
        active: bool,
        msg: Option<&str>,
    ) -> Result<crate::ports::LinkSwitch, PaymentsError> {
        lock(&self.calls).push("read_link");
        if self.link_active(link) == active {
            return Ok(crate::ports::LinkSwitch::Unchanged {
                inactive_message: lock(&self.link_messages).get(link).cloned(),
                at_guard_limit: !active && self.link_limit(link).reached_ours(),
            });
        }
        lock(&self.calls).push("set_link_active");
        self.injected_link_failure("update payment link")?;
        lock(&self.links).insert(link.clone(), active);
        // As the Stripe adapter: switching on clears the message, switching off sets it.
        match msg.filter(|_| !active) {
            Some(m) => lock(&self.link_messages).insert(link.clone(), m.to_owned()),
            None if active => lock(&self.link_messages).remove(link),
            None => None,
        };
        Ok(crate::ports::LinkSwitch::Switched)
    }

    async fn guard_link(
        &self,
        link: &PaymentLinkId,
        sessions: u64,
        activate: bool,
    ) -> Result<crate::ports::GuardOutcome, PaymentsError> {
        use crate::ports::GuardOutcome;
        lock(&self.calls).push("read_link");
        let (count, current) = match lock(&self.link_limits).get(link) {
            Some(&(_, _, false)) => return Ok(GuardOutcome::Theirs),
            Some(&(count, limit, true)) => (count, Some(limit)),
            None => (0, None),
        };
        let limit = count + sessions.max(1);
        // As the adapter: a link off at stockbridge's own limit is switched on with the new one.
        let reached = current.is_some_and(|l| count >= l);
        let switch_on = (activate || reached) && !self.link_active(link);
        if current == Some(limit) && !switch_on {
            return Ok(GuardOutcome::Unchanged);
        }
        lock(&self.calls).push("guard_link");
        self.injected_link_failure("update payment link limit")?;
        lock(&self.link_limits).insert(link.clone(), (count, limit, true));
        if switch_on {
            lock(&self.links).insert(link.clone(), true);
            lock(&self.link_messages).remove(link);
        }
        Ok(GuardOutcome::Set {
            limit,
            switched_on: switch_on,
        })
    }

    async fn create_payment_intent(
        &self,
        request: &crate::ports::NewPaymentIntent,
    ) -> Result<crate::ports::CreatedPaymentIntent, PaymentsError> {
        lock(&self.calls).push("create_payment_intent");
        if let Some(message) = lock(&self.refuse_intents).clone() {
            return Err(PaymentsError::Refused {
                operation: "create payment intent",
                message,
            });
        }
        if self
            .fail_intents
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PaymentsError::Unavailable {
                operation: "create payment intent",
                message: "injected outage".into(),
            });
        }
        let mut intents = lock(&self.intents);
        let n = intents.len();
        let entry = intents
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| MemoryIntent {
                id: stockbridge_domain::PaymentIntentId::parse(format!("pi_{}", n + 1))
                    .expect("valid id"),
                amount: request.amount,
                status: "requires_payment_method",
            });
        lock(&self.payment_orders).insert(entry.id.to_string(), request.hold_id.clone());
        Ok(crate::ports::CreatedPaymentIntent {
            id: entry.id.clone(),
            client_secret: format!("{}_secret_test", entry.id),
        })
    }

    async fn capture_payment_intent(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
        _key: &str,
    ) -> Result<(), PaymentsError> {
        lock(&self.calls).push("capture");
        self.intent_transition(payment_intent, "succeeded")
    }

    async fn cancel_payment_intent(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
        _key: &str,
    ) -> Result<(), PaymentsError> {
        lock(&self.calls).push("cancel");
        self.intent_transition(payment_intent, "canceled")
    }

    async fn order_of_payment(
        &self,
        payment_intent: Option<&stockbridge_domain::PaymentIntentId>,
        charge: &stockbridge_domain::ChargeId,
    ) -> Result<Option<OrderId>, PaymentsError> {
        lock(&self.calls).push("order_of_payment");
        let orders = lock(&self.payment_orders);
        Ok(payment_intent
            .and_then(|pi| orders.get(pi.as_str()))
            .or_else(|| orders.get(charge.as_str()))
            .cloned())
    }

    async fn payment_intent_status(
        &self,
        payment_intent: &stockbridge_domain::PaymentIntentId,
    ) -> Result<crate::ports::IntentStatus, PaymentsError> {
        lock(&self.calls).push("read_intent");
        self.intent_status(payment_intent)
            .map(crate::ports::IntentStatus::parse)
            .ok_or_else(|| PaymentsError::NotFound {
                operation: "read payment intent",
                message: payment_intent.to_string(),
            })
    }
}

/// A PaymentIntent as [`MemoryPayments`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryIntent {
    /// Its id.
    pub id: stockbridge_domain::PaymentIntentId,
    /// Amount.
    pub amount: u64,
    /// `requires_payment_method`, `requires_capture`, `succeeded`, `canceled`.
    pub status: &'static str,
}

impl MemoryPayments {
    /// Marks a PaymentIntent authorised (as confirming it in the browser would).
    pub fn authorize(&self, id: &stockbridge_domain::PaymentIntentId) {
        if let Some(i) = lock(&self.intents).values_mut().find(|i| &i.id == id) {
            i.status = "requires_capture";
        }
    }

    /// Sets a PaymentIntent's status as Stripe would on its own (an authorisation that lapsed:
    /// `canceled`).
    pub fn set_intent_status(&self, id: &stockbridge_domain::PaymentIntentId, to: &'static str) {
        if let Some(i) = lock(&self.intents).values_mut().find(|i| &i.id == id) {
            i.status = to;
        }
    }

    /// A PaymentIntent's status.
    pub fn intent_status(&self, id: &stockbridge_domain::PaymentIntentId) -> Option<&'static str> {
        lock(&self.intents)
            .values()
            .find(|i| &i.id == id)
            .map(|i| i.status)
    }

    fn intent_transition(
        &self,
        id: &stockbridge_domain::PaymentIntentId,
        to: &'static str,
    ) -> Result<(), PaymentsError> {
        let mut intents = lock(&self.intents);
        let i =
            intents
                .values_mut()
                .find(|i| &i.id == id)
                .ok_or_else(|| PaymentsError::NotFound {
                    operation: "payment intent",
                    message: id.to_string(),
                })?;
        let allowed = match to {
            "succeeded" => i.status == "requires_capture",
            _ => i.status != "succeeded" && i.status != "canceled",
        };
        if i.status == to {
            return Ok(()); // the same call again (a replayed idempotency key)
        }
        if !allowed {
            return Err(PaymentsError::UnexpectedState {
                operation: "payment intent",
                message: format!("status {}", i.status),
            });
        }
        i.status = to;
        Ok(())
    }
}
