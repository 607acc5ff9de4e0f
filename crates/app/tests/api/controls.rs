//! The kill switch (`stockbridge pause repairs|links|refunds`): honoured by the inventory's
//! effects and by the reconciler; what was left undone is done after `resume`.

use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::memory::TickingClock;
use stockbridge_app::ports::{Controls, NoNotifier};

use crate::support::{World, available, completed, order, session, world};
use stockbridge_app::memory::{MemoryPayments, MemoryStore};
use stockbridge_app::reconcile::{Budget, RunOptions, SessionWindow, run};
use stockbridge_domain::{OrderStatus, PaymentLinkId};

fn pause(w: &World, controls: Controls) {
    *w.store.controls.lock().unwrap() = controls;
}

fn link_a() -> PaymentLinkId {
    PaymentLinkId::parse("plink_prod_a").unwrap()
}

fn refunds(w: &World) -> usize {
    w.payments.refunds.lock().unwrap().len()
}

fn sync(w: &World) -> CatalogSync<MemoryStore, MemoryPayments, TickingClock> {
    CatalogSync {
        store: w.store.clone(),
        stripe: w.payments.clone(),
        clock: TickingClock::default(),
    }
}

/// A run over every store, with or without the session check over all time.
fn options(sessions: bool, budget: Budget) -> RunOptions {
    RunOptions {
        store: None,
        dry_run: false,
        max_events: 10,
        event_overlap_secs: 60,
        sessions: sessions.then_some(SessionWindow {
            from: 0,
            to: i64::MAX,
        }),
        catalog_segments: 0,
        catalog_grace_ms: 0,
        catalog_max_pages: 0,
        budget,
        found_before: Vec::new(),
    }
}

#[tokio::test]
async fn paused_links_switch_nothing_until_resume_then_the_reconciler_does() {
    let w = world(&[("prod_a", 1, 0)]);
    pause(
        &w,
        Controls {
            links_paused: true,
            ..Controls::default()
        },
    );
    session(&w, "cs_last", &[("prod_a", 1)]);
    w.app
        .handle(&completed("evt_last", "cs_last"))
        .await
        .unwrap();
    assert_eq!(available(&w, "prod_a"), 0);
    assert!(w.payments.link_active(&link_a()), "paused: left on");
    let report = w.app.check_invariants(None, None, false).await.unwrap();
    assert_eq!(report.repaired, 0, "the reconciler honours it too");
    assert!(w.payments.link_active(&link_a()));
    pause(&w, Controls::default());
    w.app.check_invariants(None, None, false).await.unwrap();
    assert!(
        !w.payments.link_active(&link_a()),
        "switched off after resume"
    );
}

#[tokio::test]
async fn paused_refunds_leave_an_oversold_order_due_until_resume() {
    let w = world(&[("prod_a", 0, 0)]);
    pause(
        &w,
        Controls {
            refunds_paused: true,
            ..Controls::default()
        },
    );
    session(&w, "cs_short", &[("prod_a", 1)]);
    w.app
        .handle(&completed("evt_short", "cs_short"))
        .await
        .expect("not an error: the refund waits");
    assert_eq!(order(&w, "cs_short").unwrap().status, OrderStatus::Oversold);
    w.app.check_invariants(None, None, false).await.unwrap();
    assert_eq!(refunds(&w), 0);
    pause(&w, Controls::default());
    w.app.check_invariants(None, None, false).await.unwrap();
    assert_eq!(refunds(&w), 1, "refunded once, after resume");
}

#[tokio::test]
async fn paused_repairs_make_a_reconciler_run_report_only() {
    let w = world(&[("prod_a", 5, 0)]);
    session(&w, "cs_lost", &[("prod_a", 1)]);
    w.payments
        .completed
        .lock()
        .unwrap()
        .push(stockbridge_app::ports::SessionSummary {
            id: stockbridge_domain::OrderId::parse("cs_lost").unwrap(),
            created: 100,
            object: serde_json::json!({"id": "cs_lost", "payment_status": "paid",
                "payment_intent": "pi_cs_lost", "metadata": {"store_id": crate::support::STORE},
                "livemode": false}),
        });
    pause(
        &w,
        Controls {
            repairs_paused: true,
            ..Controls::default()
        },
    );
    let sync = sync(&w);
    let options = options(true, Budget::unlimited());
    let r = run(&w.app, &sync, &NoNotifier, &options).await.unwrap();
    assert!(r.summary.dry_run && r.summary.controls.repairs_paused);
    assert_eq!(r.summary.discrepancies, 1, "found and recorded");
    assert!(order(&w, "cs_lost").is_none(), "not applied");
    assert!(
        w.store.cursor.0.lock().unwrap().is_some(),
        "the replay cursor is set all the same: events from now on stay replayable"
    );
    pause(&w, Controls::default());
    let r = run(&w.app, &sync, &NoNotifier, &options).await.unwrap();
    assert_eq!(r.summary.repaired, 1);
    assert_eq!(available(&w, "prod_a"), 4);
}

#[tokio::test]
async fn a_run_out_of_time_reports_every_unfinished_phase_and_still_records_its_summary() {
    let w = world(&[("prod_a", 0, 0), ("prod_b", 0, 0)]);
    let sync = sync(&w);
    let options = options(true, Budget::until(std::time::Instant::now()));
    let r = run(&w.app, &sync, &NoNotifier, &options).await.unwrap();
    assert!(
        r.summary.unfinished.contains(&"links".to_owned()),
        "{:?}",
        r.summary
    );
    assert_eq!(
        r.summary.repaired, 1,
        "no time: one item all the same, so the run still moves on"
    );
    assert!(w.store.catalog().checkpoints.contains_key("last_reconcile"));
}

#[tokio::test]
async fn a_link_check_out_of_time_goes_on_where_it_stopped_at_the_next_run() {
    // Two sold-out products whose links someone switched back on.
    let w = world(&[("prod_a", 0, 0), ("prod_b", 0, 0)]);
    let sync = sync(&w);
    let spent = options(false, Budget::until(std::time::Instant::now()));
    let link_b = PaymentLinkId::parse("plink_prod_b").unwrap();
    run(&w.app, &sync, &NoNotifier, &spent).await.unwrap();
    assert!(
        !w.payments.link_active(&link_a()),
        "one item per run at least"
    );
    assert!(
        w.payments.link_active(&link_b),
        "out of time before the second"
    );
    run(&w.app, &sync, &NoNotifier, &spent).await.unwrap();
    assert!(
        !w.payments.link_active(&link_b),
        "the next run went on from there"
    );
}
