use super::*;
use crate::{CatalogItem, OrderId, OrderLine, ProductId, Quantity, StoreId};

fn item(available: u64) -> CatalogItem {
    CatalogItem {
        store_id: StoreId::parse("s1").unwrap(),
        product_id: ProductId::parse("tee").unwrap(),
        name: "Tee".into(),
        available,
        held: 0,
        version: 3,
        payment_links: vec![],
        deactivated_links: vec![],
        updated_at: Timestamp(0),
        managed_since: Timestamp(0),
        unrecorded_take: None,
        spread: None,
        low_stock: None,
    }
}

fn items(available: u64) -> Items {
    [(ProductId::parse("tee").unwrap(), item(available))]
        .into_iter()
        .collect()
}

fn facts(q: u64) -> CheckoutFacts {
    CheckoutFacts {
        order_id: OrderId::parse("hold_1").unwrap(),
        store_id: StoreId::parse("s1").unwrap(),
        lines: vec![OrderLine {
            product_id: ProductId::parse("tee").unwrap(),
            quantity: Quantity::new(q).unwrap(),
        }],
        payment: PaymentState::Awaiting,
        payment_intent: None,
        payment_link: None,
        event_id: StripeEventId::parse("api-hold_1").unwrap(),
        paid_at: crate::PaidAt::At(Timestamp(0)),
        amounts: std::collections::BTreeMap::new(),
    }
}

fn held(q: u64, available: u64) -> OrderRecord {
    let HoldDecision::Reserve(d) = decide_hold(
        None,
        &facts(q),
        &items(available),
        terms(),
        100,
        Timestamp(0),
    ) else {
        panic!("reserved")
    };
    let Some(OrderWrite::Create(r)) = d.write.order else {
        panic!("created")
    };
    r
}

fn terms() -> HoldTerms {
    HoldTerms {
        expires_at: Timestamp(900),
        amount: Some(2000),
        currency: Some("usd".into()),
        email: None,
        client: None,
        allowance: None,
    }
}

fn pi() -> PaymentIntentId {
    PaymentIntentId::parse("pi_1").unwrap()
}

fn evt() -> StripeEventId {
    StripeEventId::parse("evt_1").unwrap()
}

#[test]
fn a_hold_reserves_all_lines_or_answers_what_is_short() {
    let HoldDecision::Reserve(d) =
        decide_hold(None, &facts(2), &items(5), terms(), 100, Timestamp(0))
    else {
        panic!()
    };
    assert_eq!((d.write.items[0].available, d.write.items[0].held), (3, 2));
    let Some(OrderWrite::Create(r)) = &d.write.order else {
        panic!()
    };
    assert_eq!(
        (r.status, r.hold.clone()),
        (OrderStatus::Pending, Some(terms()))
    );
    assert!(d.effects.capture.is_none() && d.effects.refund.is_none());

    let HoldDecision::Short(s) =
        decide_hold(None, &facts(6), &items(5), terms(), 100, Timestamp(0))
    else {
        panic!()
    };
    assert_eq!((s[0].requested, s[0].available), (6, 5));
    let existing = held(2, 5);
    assert_eq!(
        decide_hold(
            Some(&existing),
            &facts(2),
            &items(3),
            terms(),
            100,
            Timestamp(0)
        ),
        HoldDecision::Existing(Box::new(existing))
    );
}

#[test]
fn an_authorised_hold_becomes_a_sale_and_is_captured_once_per_key() {
    let hold = held(2, 5);
    let mut stock = items(3);
    stock.values_mut().for_each(|i| i.held = 2);
    let d = decide_authorized(&hold, &pi(), &evt(), &stock, Timestamp(10));
    assert_eq!(d.outcome, Outcome::Confirmed);
    // The stock left `available` when held: now it leaves `held`, sold.
    let u = &d.write.items[0];
    assert_eq!((u.available, u.held, u.version), (3, 0, 4));
    assert_eq!((d.write.ledger[0].delta, d.write.ledger[0].held), (0, 0));
    let capture = d.effects.capture.clone().unwrap();
    assert_eq!(capture.idempotency_key, "stockbridge-capture-hold_1");
    assert!(d.effects.cancel.is_none() && d.effects.refund.is_none());
    // The duplicate event: nothing written, the same capture (same key) re-run.
    let Some(OrderWrite::Update { record, .. }) = d.write.order else {
        panic!()
    };
    let again = decide_authorized(&record, &pi(), &evt(), &items(3), Timestamp(11));
    assert!(again.write.is_empty());
    assert_eq!(again.effects.capture, Some(capture));
}

#[test]
fn an_expired_hold_is_released_and_a_late_authorisation_is_cancelled_when_stock_is_gone() {
    let hold = held(2, 2);
    assert!(
        decide_hold_expired(&hold, &items(0), Timestamp(899)).is_none(),
        "not yet"
    );
    let d = decide_hold_expired(&hold, &items(0), Timestamp(900)).unwrap();
    assert_eq!(d.write.items[0].available, 2);
    let Some(OrderWrite::Update {
        record: released,
        expected_status,
        ..
    }) = d.write.order
    else {
        panic!()
    };
    assert_eq!(
        (released.status, expected_status),
        (OrderStatus::Released, OrderStatus::Pending)
    );
    assert!(decide_hold_expired(&released, &items(2), Timestamp(901)).is_none());

    // Sold elsewhere meanwhile: the late authorisation is cancelled, never captured.
    let late = decide_authorized(&released, &pi(), &evt(), &items(1), Timestamp(950));
    assert!(matches!(late.outcome, Outcome::Oversold(_)));
    assert!(late.effects.capture.is_none() && late.effects.refund.is_none());
    assert_eq!(
        late.effects.cancel.unwrap().idempotency_key,
        "stockbridge-cancel-hold_1"
    );
    assert!(late.write.items.is_empty());

    // Still there: taken again and captured.
    let back = decide_authorized(&released, &pi(), &evt(), &items(4), Timestamp(950));
    assert_eq!(back.outcome, Outcome::Fulfilled);
    assert_eq!(back.write.items[0].available, 2);
    assert!(back.effects.capture.is_some());
}

fn updated(d: &Decision) -> OrderRecord {
    let Some(OrderWrite::Update { record, .. }) = &d.write.order else {
        panic!("an update")
    };
    record.clone()
}

#[test]
fn a_cancelled_payment_intent_is_terminal_and_returns_only_stock_still_taken() {
    // Pending: the stock goes back.
    let d = decide_hold_canceled(&held(2, 5), &evt(), &items(3), Timestamp(10));
    assert_eq!(d.outcome, Outcome::Canceled);
    assert_eq!(d.write.items[0].available, 5);
    let canceled = updated(&d);
    assert_eq!(canceled.status, OrderStatus::Canceled);
    // A late authorisation for it never takes stock or captures.
    let late = decide_authorized(&canceled, &pi(), &evt(), &items(5), Timestamp(11));
    assert!(late.write.is_empty() && late.effects.capture.is_none());
    assert_eq!(late.outcome, Outcome::AlreadyApplied(OrderStatus::Canceled));
    // Released by the sweeper first: recorded, nothing moves.
    let released = updated(&decide_hold_expired(&held(2, 5), &items(3), Timestamp(900)).unwrap());
    let d = decide_hold_canceled(&released, &evt(), &items(5), Timestamp(901));
    assert!(d.write.items.is_empty());
    assert_eq!(updated(&d).status, OrderStatus::Canceled);
    // A sale whose capture never happened: its stock goes back.
    let sale = updated(&decide_authorized(
        &held(2, 5),
        &pi(),
        &evt(),
        &items(3),
        Timestamp(5),
    ));
    let d = decide_hold_canceled(&sale, &evt(), &items(3), Timestamp(6));
    assert_eq!(d.write.items[0].available, 5);
    // Cancelled by stockbridge itself (oversold): already applied.
    let again = decide_hold_canceled(&updated(&d), &evt(), &items(5), Timestamp(7));
    assert!(again.write.is_empty());
}

#[test]
fn a_capture_refused_for_good_returns_the_sales_stock_once() {
    let sale = updated(&decide_authorized(
        &held(2, 5),
        &pi(),
        &evt(),
        &items(3),
        Timestamp(5),
    ));
    let d = decide_capture_refused(&sale, &items(3), Timestamp(6)).unwrap();
    assert_eq!(d.outcome, Outcome::CaptureRefused);
    assert_eq!(d.write.items[0].available, 5);
    assert_eq!(
        d.write.ledger[0].cause.actor.as_deref(),
        Some("capture-refused")
    );
    let failed = updated(&d);
    assert_eq!(failed.status, OrderStatus::CaptureFailed);
    assert!(decide_capture_refused(&failed, &items(5), Timestamp(7)).is_none());
    assert!(decide_capture_refused(&held(2, 5), &items(3), Timestamp(7)).is_none());
    let dup = decide_authorized(&failed, &pi(), &evt(), &items(5), Timestamp(8));
    assert!(dup.write.is_empty() && dup.effects.capture.is_none());
}
