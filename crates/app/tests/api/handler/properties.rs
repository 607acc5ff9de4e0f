//! The handler's invariants under random interleavings: stock, refunds and sessions.

use super::*;

mod invariants {
    use super::*;

    #[tokio::test]
    async fn a_link_left_active_at_zero_is_switched_off_recorded_and_restocked_later() {
        let w = world(&[("prod_a", 1), ("prod_b", 3)]);
        let (s, a) = (
            StoreId::parse(STORE).unwrap(),
            ProductId::parse("prod_a").unwrap(),
        );
        let (link_a, link_b) = (
            PaymentLinkId::parse("plink_prod_a").unwrap(),
            PaymentLinkId::parse("plink_prod_b").unwrap(),
        );
        // Someone sets stock to 0 behind stockbridge's back (the link stays on), and switches
        // prod_b's link off by hand although it has stock.
        w.app
            .change_stock(
                &s,
                &a,
                stockbridge_domain::StockChange::Set(0),
                None,
                "test",
            )
            .await
            .unwrap();
        w.payments
            .links
            .lock()
            .unwrap()
            .insert(link_a.clone(), true);
        w.payments
            .links
            .lock()
            .unwrap()
            .insert(link_b.clone(), false);

        let dry = w.app.check_link_invariants(Some(&s), true).await.unwrap();
        assert_eq!(
            (dry.items, dry.links, dry.discrepancies.len(), dry.repaired),
            (2, 2, 2, 0)
        );
        assert!(w.payments.link_active(&link_a), "a dry run repairs nothing");

        let run = w.app.check_link_invariants(None, false).await.unwrap();
        assert_eq!((run.discrepancies.len(), run.repaired), (2, 1));
        assert!(
            !w.payments.link_active(&link_a) && !w.payments.link_active(&link_b),
            "b was switched off by someone else: reported, left off"
        );
        let recorded = w.store.recorded();
        assert_eq!(recorded.len(), 4);
        assert_eq!(
            recorded.iter().filter(|(_, _, repaired)| *repaired).count(),
            1
        );
        assert!(
            w.store.snapshot().items[&(s.clone(), a.clone())]
                .deactivated_links
                .contains(&link_a)
        );

        // Only b is left (someone else's); the link switched off by the check comes back with
        // a restock.
        let again = w.app.check_link_invariants(None, false).await.unwrap();
        assert_eq!((again.discrepancies.len(), again.repaired), (1, 0));
        w.app
            .change_stock(
                &s,
                &a,
                stockbridge_domain::StockChange::Set(2),
                None,
                "test",
            )
            .await
            .unwrap();
        assert!(w.payments.link_active(&link_a));
    }
}

mod refund_invariant {
    use super::*;
    use stockbridge_app::ports::InventoryStore;

    #[tokio::test]
    async fn an_oversold_order_left_without_its_refund_is_refunded_once() {
        let w = world(&[("prod_a", 0)]);
        // The order was decided and committed, then the process died before the refund.
        let facts = stockbridge_domain::CheckoutFacts {
            order_id: OrderId::parse("cs_lost").unwrap(),
            store_id: StoreId::parse(STORE).unwrap(),
            lines: vec![stockbridge_domain::OrderLine {
                product_id: ProductId::parse("prod_a").unwrap(),
                quantity: stockbridge_domain::Quantity::new(1).unwrap(),
            }],
            payment: stockbridge_domain::PaymentState::Paid,
            payment_intent: Some(stockbridge_domain::PaymentIntentId::parse("pi_lost").unwrap()),
            payment_link: None,
            event_id: stockbridge_domain::StripeEventId::parse("evt_lost").unwrap(),
            paid_at: stockbridge_domain::PaidAt::At(stockbridge_domain::Timestamp(0)),
            amounts: std::collections::BTreeMap::new(),
        };
        let s = StoreId::parse(STORE).unwrap();
        let (_, items) = w
            .store
            .load(&facts.order_id, &s, &[ProductId::parse("prod_a").unwrap()])
            .await
            .unwrap();
        let d = stockbridge_domain::decide_checkout(None, &facts, &items, Timestamp(1));
        w.store.commit(&d.write).await.unwrap();
        assert_eq!(status(&w, "cs_lost"), OrderStatus::Oversold);

        let dry = w.app.check_invariants(None, None, true).await.unwrap();
        assert_eq!(
            (dry.oversold_orders, dry.discrepancies.len(), dry.repaired),
            (1, 2, 0),
            "the refund, and the sold-out product's link still on"
        );
        assert!(w.payments.refunds.lock().unwrap().is_empty());

        let run = w.app.check_invariants(Some(&s), None, false).await.unwrap();
        assert_eq!(run.repaired, 2);
        let refunds = w.payments.refunds.lock().unwrap().clone();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds["stockbridge-refund-cs_lost"].0, "pi_lost");
        assert!(
            w.store.snapshot().orders[&OrderId::parse("cs_lost").unwrap()]
                .refund_id
                .is_some()
        );
        let again = w.app.check_invariants(None, None, false).await.unwrap();
        assert!(again.discrepancies.is_empty() && again.repaired == 0);
    }
}

mod session_invariant {
    use super::*;
    use stockbridge_app::ports::SessionSummary;

    #[tokio::test]
    async fn a_paid_session_without_an_order_is_applied_once_and_unpaid_ones_are_left() {
        let w = world(&[("prod_a", 5)]);
        session(&w, "cs_lost", &[("prod_a", 2)]);
        let summary = |id: &str, status: &str| SessionSummary {
            id: OrderId::parse(id).unwrap(),
            created: 100,
            object: json!({"id": id, "payment_status": status, "payment_intent": format!("pi_{id}"), "metadata": {"store_id": STORE}, "livemode": false}),
        };
        w.payments
            .completed
            .lock()
            .unwrap()
            .extend([summary("cs_lost", "paid"), summary("cs_unpaid", "unpaid")]);
        let r = w
            .app
            .check_invariants(
                None,
                Some(stockbridge_app::reconcile::SessionWindow { from: 50, to: 1000 }),
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            (r.sessions, r.discrepancies.len(), r.repaired),
            (1, 1, 1),
            "{r:?}"
        );
        assert_eq!(status(&w, "cs_lost"), OrderStatus::Fulfilled);
        assert_eq!(available(&w, "prod_a"), 3);
        let again = w
            .app
            .check_invariants(
                None,
                Some(stockbridge_app::reconcile::SessionWindow { from: 50, to: 1000 }),
                false,
            )
            .await
            .unwrap();
        assert!(again.discrepancies.is_empty());
        let later = w
            .app
            .check_invariants(
                None,
                Some(stockbridge_app::reconcile::SessionWindow {
                    from: 200,
                    to: 1000,
                }),
                false,
            )
            .await
            .unwrap();
        assert_eq!(later.sessions, 0, "older sessions are outside the window");
        let young = w
            .app
            .check_invariants(
                None,
                Some(stockbridge_app::reconcile::SessionWindow { from: 0, to: 99 }),
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            young.sessions, 0,
            "sessions inside the grace period are left to their events"
        );
    }
}
