//! The take's rules, without mocks: decisions in, takes and records out; and the whole protocol
//! (decide, take, record, with crashes and redeliveries) run against a plain model of the item's
//! conditional update.

use proptest::prelude::*;

use super::*;
use crate::{
    CatalogItem, OrderRecord, PaidAt, PaymentIntentId, PaymentLinkId, Quantity, StripeEventId,
    decide_checkout,
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
        spread: None,
        low_stock: None,
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
    let d = decide_checkout(
        None,
        &paid(&[("prod_a", 2)]),
        &items(&[item("prod_a", 10, 4)]),
        NOW,
    );
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
        (
            "the last units (links switch off)",
            paid(&[("prod_a", 2)]),
            stock.clone(),
        ),
        (
            "two products",
            paid(&[("prod_a", 1), ("prod_b", 1)]),
            stock.clone(),
        ),
        ("more than there is", paid(&[("prod_a", 3)]), stock.clone()),
        (
            "a delayed payment (held, not sold)",
            facts("cs_1", &[("prod_b", 1)], PaymentState::Awaiting),
            stock.clone(),
        ),
        (
            "links recorded off (a restock switches them on)",
            paid(&[("prod_a", 1)]),
            items(&[off]),
        ),
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
    let d = decide_checkout(
        None,
        &paid(&[("prod_a", 2)]),
        &items(&[item("prod_a", 10, 4)]),
        NOW,
    );
    let mark = TakeMark {
        version: 9,
        available: 3,
        held: 1,
        quantity: 2,
        shard: None,
    };
    let recorded = with_take(d.clone(), mark);
    assert!(
        recorded.write.items.is_empty(),
        "the take was the item write"
    );
    assert_eq!(recorded.write.order, d.write.order);
    let [entry] = recorded.write.ledger.as_slice() else {
        panic!("one entry")
    };
    assert_eq!(
        (entry.version, entry.delta, entry.level, entry.held),
        (9, -2, 3, 1)
    );
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
        quantity: 2,
        shard: None,
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
    assert_eq!(
        d.effects.publish,
        vec![taken.level()],
        "the newest level read"
    );
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
        quantity: 1,
        shard: None,
    });
    let again = decide_checkout(
        Some(record),
        &paid(&[("prod_a", 1)]),
        &items(&[marked]),
        NOW,
    );
    assert!(again.write.is_empty());
    assert_eq!(
        again.outcome,
        Outcome::AlreadyApplied(OrderStatus::Fulfilled)
    );
}

#[test]
fn a_duplicate_take_is_given_back_with_both_movements_in_the_ledger() {
    // A duplicate took 2 at version 6 (level 4); other orders then sold the rest.
    let mut at_zero = item("prod_a", 0, 9);
    at_zero.deactivated_links = vec![PaymentLinkId::parse("plink_prod_a").unwrap()];
    let mark = TakeMark {
        version: 6,
        available: 4,
        held: 0,
        quantity: 2,
        shard: None,
    };
    let order = OrderId::parse("cs_dup").unwrap();
    let d = undo(&at_zero, &order, mark, NOW);
    let [update] = d.write.items.as_slice() else {
        panic!("one item write")
    };
    assert_eq!(
        (update.expected_version, update.version, update.available),
        (9, 10, 2)
    );
    let entries: Vec<_> = d
        .write
        .ledger
        .iter()
        .map(|e| (e.version, e.delta, e.level, e.cause.kind))
        .collect();
    assert_eq!(
        entries,
        vec![(6, -2, 4, CauseKind::Order), (10, 2, 2, CauseKind::Release)]
    );
    assert!(
        d.write
            .ledger
            .iter()
            .all(|e| e.cause.order_id.as_ref() == Some(&order))
    );
    assert!(d.write.order.is_none(), "the order's record is not touched");
    assert_eq!(
        d.effects.reactivate.len(),
        1,
        "back in stock: its links come back on"
    );
    assert_eq!(d.effects.publish.len(), 1);
}

/// The item as the store keeps it, with the conditional writes the adapters make: a plain
/// model of the store, so the protocol (read, decide, take, record, undo) can be run in any
/// interleaving.
#[derive(Default)]
struct Model {
    available: u64,
    version: u64,
    links_off: Vec<PaymentLinkId>,
    marks: std::collections::BTreeMap<String, TakeMark>,
    orders: std::collections::BTreeMap<String, OrderRecord>,
    /// version -> (delta, order)
    ledger: std::collections::BTreeMap<u64, (i64, Option<String>)>,
}

impl Model {
    fn item(&self, order: &str) -> CatalogItem {
        let mut i = item("prod_a", self.available, self.version);
        i.deactivated_links = self.links_off.clone();
        i.unrecorded_take = self.marks.get(order).copied();
        i
    }

    fn read(&self, order: &str) -> (Option<OrderRecord>, Items) {
        (self.orders.get(order).cloned(), items(&[self.item(order)]))
    }

    fn take(&mut self, t: &StockTake) -> Option<TakeMark> {
        let fits = self.available > t.quantity && self.links_off.is_empty();
        if !fits || self.marks.contains_key(t.order_id.as_str()) {
            return None;
        }
        self.available -= t.quantity;
        self.version += 1;
        let mark = TakeMark {
            version: self.version,
            available: self.available,
            held: 0,
            quantity: t.quantity,
            shard: None,
        };
        self.marks.insert(t.order_id.as_str().to_owned(), mark);
        Some(mark)
    }

    /// All or nothing, as one transaction; `mark`: only while the item carries it (removed).
    fn commit(&mut self, w: &WriteSet, mark: Option<(&str, TakeMark)>) -> bool {
        if let Some(OrderWrite::Create(r)) = &w.order
            && self.orders.contains_key(r.order_id.as_str())
        {
            return false;
        }
        if w.items.iter().any(|u| {
            u.expected_version != self.version || u.expected_deactivated_links != self.links_off
        }) || w
            .ledger
            .iter()
            .any(|e| self.ledger.contains_key(&e.version))
        {
            return false;
        }
        if let Some((order, m)) = mark {
            if self.marks.get(order) != Some(&m) {
                return false;
            }
            self.marks.remove(order);
        }
        if let Some(OrderWrite::Create(r)) = &w.order {
            self.orders
                .insert(r.order_id.as_str().to_owned(), r.clone());
        }
        for u in &w.items {
            self.available = u.available;
            self.version = u.version;
            self.links_off = u.deactivated_links.clone();
        }
        for e in &w.ledger {
            let order = e.cause.order_id.as_ref().map(|o| o.as_str().to_owned());
            self.ledger.insert(e.version, (e.delta, order));
        }
        true
    }

    /// Whether the ledger entry at the mark's version is the order's own record of it.
    fn recorded(&self, order: &str, m: TakeMark) -> bool {
        self.ledger
            .get(&m.version)
            .is_some_and(|(_, o)| o.as_deref() == Some(order))
    }

    /// What a function's next take (or the reconciler) does: removes recorded marks.
    fn clean(&mut self) {
        let recorded: Vec<String> = self
            .marks
            .iter()
            .filter(|(o, m)| self.orders.contains_key(*o) && self.recorded(o, **m))
            .map(|(o, _)| o.clone())
            .collect();
        for o in recorded {
            self.marks.remove(&o);
        }
    }
}

/// One delivery of an order, one request at a time.
enum Stage {
    Start,
    Taking(Decision, StockTake),
    Recording(Decision, TakeMark),
    Undoing(TakeMark),
    Done,
}

struct Delivery {
    order: String,
    quantity: u64,
    stage: Stage,
}

impl Delivery {
    fn new(order: usize) -> Self {
        Self {
            order: format!("cs_{order}"),
            quantity: 1 + (order as u64 % 3),
            stage: Stage::Start,
        }
    }

    /// Runs the delivery's next request against `m`.
    fn step(&mut self, m: &mut Model) {
        let order = self.order.clone();
        self.stage = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Start => {
                let (existing, stock) = m.read(&order);
                let facts = facts(&order, &[("prod_a", self.quantity)], PaymentState::Paid);
                if existing.is_some() {
                    // A take of this order next to its record that the record does not name is
                    // a duplicate: give it back.
                    match stock.values().find_map(|i| i.unrecorded_take) {
                        Some(mark) if !m.recorded(&order, mark) => Stage::Undoing(mark),
                        _ => Stage::Done,
                    }
                } else {
                    let d = decide_checkout(None, &facts, &stock, NOW);
                    match commit_of(&d) {
                        Commit::Take(t) => Stage::Taking(d, t),
                        Commit::Record(_) | Commit::Transaction if d.write.is_empty() => {
                            Stage::Done
                        }
                        Commit::Record(_) | Commit::Transaction => {
                            if m.commit(&d.write, None) {
                                Stage::Done
                            } else {
                                Stage::Start
                            }
                        }
                    }
                }
            }
            Stage::Taking(d, t) => match m.take(&t) {
                Some(mark) => Stage::Recording(with_take(d, mark), mark),
                None => Stage::Start,
            },
            Stage::Recording(d, mark) => {
                if m.commit(&d.write, None) {
                    Stage::Done
                } else {
                    Stage::Undoing(mark)
                }
            }
            Stage::Undoing(mark) => {
                let i = m.item(&order);
                if i.unrecorded_take == Some(mark) && !m.recorded(&order, mark) {
                    let d = undo(&i, &OrderId::parse(&order).unwrap(), mark, NOW);
                    if !m.commit(&d.write, Some((&order, mark))) {
                        return self.stage = Stage::Undoing(mark);
                    }
                }
                Stage::Start
            }
            Stage::Done => Stage::Done,
        };
    }
}

proptest! {
    /// Exactly once and never below zero, whatever the interleaving of deliveries of the same
    /// and other orders, the crashes between any two requests and the removal of recorded marks:
    /// every unit taken belongs to exactly one fulfilled order, the ledger adds up to the level
    /// with one entry per version, and no mark is left once every order is delivered again.
    #[test]
    fn takes_apply_each_order_once_in_any_interleaving(
        start in 0u64..30,
        orders in proptest::collection::vec(0usize..8, 1..24),
        schedule in proptest::collection::vec((0usize..64, 0u8..10), 0..400),
    ) {
        let mut m = Model { available: start, ..Model::default() };
        let mut live: Vec<Delivery> = orders.iter().map(|o| Delivery::new(*o)).collect();
        for (pick, what) in schedule {
            match what {
                0 => m.clean(),
                // A crash: the delivery stops wherever it is.
                1 if !live.is_empty() => { live.remove(pick % live.len()); }
                _ if !live.is_empty() => {
                    let n = pick % live.len();
                    live[n].step(&mut m);
                    if matches!(live[n].stage, Stage::Done) {
                        live.remove(n);
                    }
                }
                _ => {}
            }
        }
        // What is still in flight finishes; then every order is delivered once more, alone.
        for d in &mut live {
            for _ in 0..50 { d.step(&mut m); }
            prop_assert!(matches!(d.stage, Stage::Done), "no progress");
        }
        for o in &orders {
            let mut d = Delivery::new(*o);
            for _ in 0..50 { d.step(&mut m); }
            prop_assert!(matches!(d.stage, Stage::Done), "no progress");
        }
        m.clean();
        let sold: u64 = m.orders.values()
            .filter(|r| r.status == OrderStatus::Fulfilled)
            .flat_map(|r| r.lines.iter().map(|l| l.quantity.get()))
            .sum();
        prop_assert_eq!(m.available + sold, start, "units taken == units of fulfilled orders");
        let moved: i64 = m.ledger.values().map(|(d, _)| d).sum();
        prop_assert_eq!(i64::try_from(start).unwrap() + moved, i64::try_from(m.available).unwrap());
        prop_assert_eq!(m.ledger.keys().copied().collect::<Vec<_>>(), (1..=m.version).collect::<Vec<_>>(),
            "one ledger entry per version");
        prop_assert!(m.marks.is_empty(), "marks left: {:?}", m.marks);
    }
}
