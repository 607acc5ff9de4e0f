//! The take's rules, without mocks: decisions in, takes and records out; and the whole protocol
//! (decide, take, record, with crashes and redeliveries) run against a plain model of the item's
//! conditional update.

use proptest::prelude::*;

use super::*;
use crate::{
    CatalogItem, PaidAt, PaymentIntentId, PaymentLinkId, Quantity, StripeEventId, decide_checkout,
};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn pid(s: &str) -> ProductId {
    ProductId::parse(s).unwrap()
}

fn item(product: &str, available: u64, version: u64) -> CatalogItem {
    CatalogItem {
        store_id: StoreId::parse("store_1").unwrap(),
        product_id: pid(product),
        name: product.to_owned(),
        available,
        held: 0,
        version,
        payment_links: vec![PaymentLinkId::parse(format!("plink_{product}")).unwrap()],
        deactivated_links: Vec::new(),
        updated_at: Timestamp(0),
        managed_since: Timestamp(0),
        unrecorded_take: None,
    }
}

fn items(list: &[CatalogItem]) -> Items {
    list.iter()
        .map(|i| (i.product_id.clone(), i.clone()))
        .collect()
}

fn facts(order: &str, lines: &[(&str, u64)], payment: PaymentState) -> CheckoutFacts {
    CheckoutFacts {
        order_id: OrderId::parse(order).unwrap(),
        store_id: StoreId::parse("store_1").unwrap(),
        lines: lines
            .iter()
            .map(|(p, q)| OrderLine {
                product_id: pid(p),
                quantity: Quantity::new(*q).unwrap(),
            })
            .collect(),
        payment,
        payment_intent: Some(PaymentIntentId::parse("pi_1").unwrap()),
        payment_link: Some(PaymentLinkId::parse("plink_session").unwrap()),
        event_id: StripeEventId::parse("evt_1").unwrap(),
        paid_at: PaidAt::At(Timestamp(0)),
        amounts: std::collections::BTreeMap::new(),
    }
}

fn paid(lines: &[(&str, u64)]) -> CheckoutFacts {
    facts("cs_1", lines, PaymentState::Paid)
}

#[test]
fn a_paid_one_product_order_that_leaves_stock_is_a_take() {
    let d = decide_checkout(None, &paid(&[("prod_a", 2)]), &items(&[item("prod_a", 10, 4)]), NOW);
    let take = take_of(&d).expect("a take");
    assert_eq!(commit_of(&d), Commit::Take(take.clone()));
    assert_eq!(take.product_id, pid("prod_a"));
    assert_eq!(take.order_id.as_str(), "cs_1");
    assert_eq!(take.quantity, 2);
    assert_eq!(take.managed_since, Timestamp(0));
    assert_eq!(take.at, NOW);
}

#[test]
fn everything_but_the_simple_shape_keeps_its_transaction() {
    let stock = items(&[item("prod_a", 2, 1), item("prod_b", 5, 1)]);
    let mut off = item("prod_a", 5, 1);
    off.deactivated_links = vec![PaymentLinkId::parse("plink_prod_a").unwrap()];
    let cases = [
        ("the last units (links switch off)", paid(&[("prod_a", 2)]), stock.clone()),
        ("two products", paid(&[("prod_a", 1), ("prod_b", 1)]), stock.clone()),
        ("more than there is", paid(&[("prod_a", 3)]), stock.clone()),
        (
            "a delayed payment (held, not sold)",
            facts("cs_1", &[("prod_b", 1)], PaymentState::Awaiting),
            stock.clone(),
        ),
        ("links recorded off (a restock switches them on)", paid(&[("prod_a", 1)]), items(&[off])),
        ("no catalog product", paid(&[("prod_z", 1)]), stock.clone()),
    ];
    for (why, facts, stock) in cases {
        let d = decide_checkout(None, &facts, &stock, NOW);
        assert_eq!(commit_of(&d), Commit::Transaction, "{why}");
    }
    let existing = decide_checkout(None, &paid(&[("prod_b", 1)]), &stock, NOW);
    let Some(OrderWrite::Create(record)) = &existing.write.order else {
        panic!("created")
    };
    let again = decide_checkout(Some(record), &paid(&[("prod_b", 1)]), &stock, NOW);
    assert_eq!(take_of(&again), None, "an order already recorded");
}

#[test]
fn a_take_is_recorded_with_the_version_and_levels_it_produced() {
    let d = decide_checkout(None, &paid(&[("prod_a", 2)]), &items(&[item("prod_a", 10, 4)]), NOW);
    let mark = TakeMark {
        version: 9,
        available: 3,
        held: 1,
    };
    let recorded = with_take(d.clone(), mark);
    assert!(recorded.write.items.is_empty(), "the take was the item write");
    assert_eq!(recorded.write.order, d.write.order);
    let [entry] = recorded.write.ledger.as_slice() else {
        panic!("one entry")
    };
    assert_eq!((entry.version, entry.delta, entry.level, entry.held), (9, -2, 3, 1));
    let [level] = recorded.effects.publish.as_slice() else {
        panic!("one level")
    };
    assert_eq!((level.version, level.available, level.held), (9, 3, 1));
    assert_eq!(recorded.outcome, Outcome::Fulfilled);
}

#[test]
fn an_order_whose_take_is_not_recorded_is_recorded_and_takes_nothing_again() {
    let mut taken = item("prod_a", 6, 12);
    taken.unrecorded_take = Some(TakeMark {
        version: 10,
        available: 7,
        held: 0,
    });
    let d = decide_checkout(
        None,
        &paid(&[("prod_a", 2), ("prod_unknown", 1)]),
        &items(&[taken.clone()]),
        NOW,
    );
    assert!(d.write.items.is_empty() && d.write.checks.is_empty());
    assert_eq!(take_of(&d), None, "nothing is taken again");
    let Commit::Record(take) = commit_of(&d) else {
        panic!("recorded as the take's record (its mark can go)")
    };
    assert_eq!((take.product_id.as_str(), take.quantity), ("prod_a", 2));
    let Some(OrderWrite::Create(record)) = &d.write.order else {
        panic!("the order is recorded")
    };
    assert_eq!(record.status, OrderStatus::Fulfilled);
    assert_eq!(record.lines.len(), 1);
    assert_eq!(record.unmatched.len(), 1);
    let [entry] = d.write.ledger.as_slice() else {
        panic!("one entry")
    };
    assert_eq!((entry.version, entry.delta, entry.level), (10, -2, 7));
    assert_eq!(d.effects.publish, vec![taken.level()], "the newest level read");
    assert_eq!(d.outcome, Outcome::Fulfilled);
}

#[test]
fn a_recorded_order_wins_over_a_mark_left_on_its_item() {
    let stock = items(&[item("prod_a", 10, 4)]);
    let d = decide_checkout(None, &paid(&[("prod_a", 1)]), &stock, NOW);
    let Some(OrderWrite::Create(record)) = &d.write.order else {
        panic!("created")
    };
    let mut marked = item("prod_a", 9, 5);
    marked.unrecorded_take = Some(TakeMark {
        version: 5,
        available: 9,
        held: 0,
    });
    let again = decide_checkout(Some(record), &paid(&[("prod_a", 1)]), &items(&[marked]), NOW);
    assert!(again.write.is_empty());
    assert_eq!(again.outcome, Outcome::AlreadyApplied(OrderStatus::Fulfilled));
}

/// The item as the store keeps it, with the conditional update the take asks for.
#[derive(Default)]
struct Model {
    available: u64,
    version: u64,
    marks: std::collections::BTreeMap<String, TakeMark>,
    orders: std::collections::BTreeMap<String, OrderRecord>,
    ledger: std::collections::BTreeMap<u64, i64>,
}

impl Model {
    fn read(&self, order: &str) -> (Option<OrderRecord>, Items) {
        let mut i = item("prod_a", self.available, self.version);
        i.unrecorded_take = self.marks.get(order).copied();
        (self.orders.get(order).cloned(), items(&[i]))
    }

    fn take(&mut self, t: &StockTake) -> Option<TakeMark> {
        let fits = self.available > t.quantity;
        if !fits || self.marks.contains_key(t.order_id.as_str()) {
            return None;
        }
        self.available -= t.quantity;
        self.version += 1;
        let mark = TakeMark {
            version: self.version,
            available: self.available,
            held: 0,
        };
        self.marks.insert(t.order_id.as_str().to_owned(), mark);
        Some(mark)
    }

    fn commit(&mut self, w: &WriteSet) -> bool {
        if let Some(OrderWrite::Create(r)) = &w.order {
            if self.orders.contains_key(r.order_id.as_str()) {
                return false;
            }
            self.orders.insert(r.order_id.as_str().to_owned(), r.clone());
        }
        for u in &w.items {
            if u.expected_version != self.version {
                return false;
            }
            self.available = u.available;
            self.version = u.version;
        }
        for e in &w.ledger {
            assert!(self.ledger.insert(e.version, e.delta).is_none(), "ledger key reused");
        }
        true
    }

    /// One delivery of `order`, crashing after `crash_after` writes (0: no crash).
    fn deliver(&mut self, order: &str, q: u64, crash_after: usize) {
        let facts = facts(order, &[("prod_a", q)], PaymentState::Paid);
        for _ in 0..20 {
            let (existing, stock) = self.read(order);
            let d = decide_checkout(existing.as_ref(), &facts, &stock, NOW);
            if d.write.is_empty() {
                return;
            }
            let Some(take) = take_of(&d) else {
                if self.commit(&d.write) {
                    self.marks.remove(order);
                    return;
                }
                continue;
            };
            let Some(mark) = self.take(&take) else {
                continue;
            };
            if crash_after == 1 {
                return;
            }
            if self.commit(&with_take(d, mark).write) {
                self.marks.remove(order);
            }
            return;
        }
        panic!("no progress");
    }
}

proptest! {
    /// Exactly once and never below zero, whatever the duplicates and crashes between the take
    /// and the record: every unit taken belongs to exactly one fulfilled order, and the ledger
    /// adds up to the level.
    #[test]
    fn takes_apply_each_order_once_across_crashes_and_redeliveries(
        start in 0u64..30,
        deliveries in proptest::collection::vec((0usize..12, 1u64..4, 0usize..2), 1..60),
    ) {
        let mut m = Model { available: start, ..Model::default() };
        let quantity = |o: usize| 1 + (o as u64 % 3);
        for (o, _, crash) in &deliveries {
            m.deliver(&format!("cs_{o}"), quantity(*o), *crash);
        }
        // Every order is delivered once more without a crash, as Stripe's retries would.
        for (o, _, _) in &deliveries {
            m.deliver(&format!("cs_{o}"), quantity(*o), 0);
        }
        let sold: u64 = m.orders.values()
            .filter(|r| r.status == OrderStatus::Fulfilled)
            .flat_map(|r| r.lines.iter().map(|l| l.quantity.get()))
            .sum();
        prop_assert_eq!(m.available + sold, start);
        let moved: i64 = m.ledger.values().sum();
        prop_assert_eq!(i64::try_from(start).unwrap() + moved, i64::try_from(m.available).unwrap());
        prop_assert!(m.marks.is_empty(), "every take is recorded");
    }
}
