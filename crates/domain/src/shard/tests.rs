//! The shard rules, and the whole protocol of `shard.rs` run against a plain model of a stock
//! item and K shard items with conditional writes: random interleavings of several deliveries
//! per order and of an operator spreading and collecting the product, with crashes, then one
//! redelivery per order run to its end (as EventBridge or the reconciler would). What must hold
//! at every step and at the end is in `check` and `settle`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn order(n: usize) -> OrderId {
    OrderId::parse(format!("cs_test_order_{n}")).unwrap()
}

#[test]
fn every_delivery_of_an_order_has_the_same_home_and_orders_spread_over_every_shard() {
    let mut first = [0u32; 8];
    for n in 0..200 {
        assert_eq!(home(&order(n), 8), home(&order(n), 8));
        first[usize::from(home(&order(n), 8))] += 1;
    }
    assert!(first.iter().all(|c| *c > 5), "{first:?}");
    assert_eq!(home(&order(1), 0), 0, "no shard count is one shard");
}

#[test]
fn a_split_keeps_every_unit_and_differs_by_one_at_most() {
    assert_eq!(split(10, 4), [3, 3, 2, 2]);
    assert_eq!(split(3, 8), [1, 1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(split(0, 2), [0, 0]);
    assert_eq!(split(7, 0), [7], "no shard count is one shard");
}

fn shard(index: u16, available: u64, version: u64) -> Shard {
    Shard {
        index,
        available,
        version,
        epoch: 1,
    }
}

#[test]
fn a_dry_home_is_refilled_from_the_fullest_shard_which_keeps_a_unit() {
    let snapshot = [shard(0, 0, 5), shard(1, 1, 3), shard(2, 7, 9)];
    assert_eq!(
        refill(&snapshot, 0, 2),
        Refill::Move(Move {
            from: (2, 9),
            to: (0, 5),
            units: 3
        }),
        "half of what the fullest can spare, at least what is missing (q + 1)"
    );
    assert_eq!(
        refill(&snapshot, 0, 5),
        Refill::Move(Move {
            from: (2, 9),
            to: (0, 5),
            units: 6
        }),
        "all it can spare when half is not enough"
    );
    assert_eq!(
        refill(&snapshot, 0, 6),
        Refill::Collect,
        "no shard can spare 7"
    );
    assert_eq!(
        refill(&[shard(0, 3, 1), shard(1, 0, 1)], 0, 2),
        Refill::TakeAgain
    );
    assert_eq!(
        refill(&[shard(0, 1, 1), shard(1, 1, 1)], 0, 1),
        Refill::Collect,
        "the last units of a rush are sold through the item"
    );
}

#[test]
fn the_level_is_the_sum_and_its_version_grows_through_spreads_and_collects() {
    let before = [shard(0, 3, 4), shard(1, 0, 7)];
    assert_eq!(level(2, 10, &before), (5, 21));
    let after = [shard(0, 2, 5), shard(1, 0, 7)];
    assert!(level(2, 10, &after).1 > level(2, 10, &before).1);
    // Collected: the item alone carries a version above every level published while spread.
    assert!(collected_version(10, &after) > level(2, 10, &after).1);
}

// ------------------------------------------------------------------- the protocol, modelled

/// A take's mark: the units it took, the version it produced, and the shard it took from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    quantity: u64,
    version: u64,
    shard: u16,
}

/// Where a mark is: on its shard, or on the item after a collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Item,
    Shard(u16),
}

#[derive(Debug, Clone, Default)]
struct Node {
    available: u64,
    version: u64,
    epoch: u64,
    marks: BTreeMap<usize, Mark>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// Recorded from the take at (shard, version) or by the item's transaction (`None`).
    Fulfilled {
        quantity: u64,
        take: Option<(u16, u64)>,
    },
    Oversold,
}

/// The store: the item, K shard items and the order records, every write conditional.
#[derive(Debug, Clone)]
struct Store {
    item: Node,
    /// K while spread, 0 while not.
    spread: u16,
    shards: Vec<Node>,
    records: BTreeMap<usize, Record>,
    stocked: u64,
    /// Units taken (by takes or the item's transaction) and not given back.
    taken: u64,
}

impl Store {
    fn new(stock: u64, k: u16) -> Self {
        Self {
            item: Node {
                available: stock,
                version: 1,
                ..Node::default()
            },
            spread: 0,
            shards: vec![Node::default(); usize::from(k)],
            records: BTreeMap::new(),
            stocked: stock,
            taken: 0,
        }
    }

    fn node(&mut self, at: At) -> &mut Node {
        match at {
            At::Item => &mut self.item,
            At::Shard(i) => &mut self.shards[usize::from(i)],
        }
    }

    fn snapshot(&self) -> Vec<Shard> {
        (0..self.spread)
            .map(|i| {
                let s = &self.shards[usize::from(i)];
                shard(i, s.available, s.version)
            })
            .collect()
    }

    /// The operator's (or any other path's) spread: the item's units into K shards.
    fn spread(&mut self, k: u16) {
        if self.spread != 0 {
            return;
        }
        self.item.epoch += 1;
        self.item.version += 1;
        let units = split(self.item.available, k);
        self.item.available = 0;
        for (s, units) in self.shards.iter_mut().zip(units) {
            assert!(
                s.marks.is_empty() && s.available == 0,
                "a shard kept units or marks"
            );
            s.available = units;
            s.version += 1;
            s.epoch = self.item.epoch;
        }
        self.spread = k;
    }

    /// Step 4: every shard's units and marks back to the item, in one transaction.
    fn collect(&mut self) {
        if self.spread == 0 {
            return;
        }
        let snapshot = self.snapshot();
        self.item.version = collected_version(self.item.version, &snapshot);
        for s in &mut self.shards {
            self.item.available += s.available;
            s.available = 0;
            s.version += 1;
            self.item.marks.append(&mut s.marks);
        }
        self.spread = 0;
    }
}

/// Where one delivery of one order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Read,
    /// A take on the home shard, with the epoch read from the item.
    Take(u64),
    Snapshot(u64),
    Move(Move, u64),
    Collect,
    /// The item's one transaction, conditional on the item's version as read.
    Transaction(u64),
    Record(Mark, At),
    GiveBack(Mark, At),
    RemoveMark(Mark, At),
    Done,
}

/// Step 1 of a delivery: read the order and the item (and, for a recorded order of a spread
/// product, its home shard, where a duplicate take's mark would be).
fn read(store: &Store, o: usize, k: u16) -> Step {
    let h = home(&order(o), k);
    let on_item = store.item.marks.get(&o).map(|m| (*m, At::Item));
    let on_home = (store.spread > 0)
        .then(|| store.shards[usize::from(h)].marks.get(&o))
        .flatten()
        .map(|m| (*m, At::Shard(h)));
    match (store.records.get(&o).copied(), on_item) {
        // Not recorded: a take collected from its shard; record it.
        (None, Some((m, at))) => Step::Record(m, at),
        (None, None) if store.spread > 0 => Step::Take(store.item.epoch),
        (None, None) => Step::Transaction(store.item.version),
        (Some(record), found) => match found.or(on_home) {
            None => Step::Done,
            Some((m, at)) if record == recorded_from(m) => Step::RemoveMark(m, at),
            Some((m, at)) => Step::GiveBack(m, at),
        },
    }
}

fn recorded_from(m: Mark) -> Record {
    Record::Fulfilled {
        quantity: m.quantity,
        take: Some((m.shard, m.version)),
    }
}

/// A take on the home shard `h` under `epoch`.
fn take(store: &mut Store, o: usize, h: u16, epoch: u64, quantity: u64) -> Step {
    let s = &mut store.shards[usize::from(h)];
    if store.spread == 0 || s.epoch != epoch {
        Step::Read
    } else if let Some(m) = s.marks.get(&o) {
        Step::Record(*m, At::Shard(h))
    } else if s.available > quantity {
        s.available -= quantity;
        s.version += 1;
        let m = Mark {
            quantity,
            version: s.version,
            shard: h,
        };
        s.marks.insert(o, m);
        store.taken += quantity;
        Step::Record(m, At::Shard(h))
    } else {
        Step::Snapshot(epoch)
    }
}

/// A refill, conditional on both shards' versions and epoch.
fn refill_move(store: &mut Store, m: Move, epoch: u64) -> Step {
    let (from, to) = (usize::from(m.from.0), usize::from(m.to.0));
    let (a, b) = (&store.shards[from], &store.shards[to]);
    if a.version == m.from.1 && b.version == m.to.1 && a.epoch == epoch && b.epoch == epoch {
        let donor = &mut store.shards[from];
        assert!(donor.available > m.units, "a donor keeps a unit");
        donor.available -= m.units;
        donor.version += 1;
        store.shards[to].available += m.units;
        store.shards[to].version += 1;
        Step::Take(epoch)
    } else {
        Step::Snapshot(epoch)
    }
}

/// One step of one delivery of order `o` (`quantity` units, `k` shards): each step one
/// conditional request.
fn step(store: &mut Store, o: usize, at: Step, quantity: u64, k: u16) -> Step {
    let h = home(&order(o), k);
    match at {
        Step::Read => read(store, o, k),
        Step::Take(epoch) => take(store, o, h, epoch, quantity),
        Step::Snapshot(epoch) => {
            if store.spread == 0 || store.item.epoch != epoch {
                return Step::Read;
            }
            match refill(&store.snapshot(), h, quantity) {
                Refill::TakeAgain => Step::Take(epoch),
                Refill::Move(m) => Step::Move(m, epoch),
                Refill::Collect => Step::Collect,
            }
        }
        Step::Move(m, epoch) => refill_move(store, m, epoch),
        Step::Collect => {
            store.collect();
            Step::Read
        }
        Step::Transaction(version) => {
            if store.records.contains_key(&o) || store.item.version != version {
                return Step::Read;
            }
            store.item.version += 1;
            let record = if store.item.available >= quantity {
                store.item.available -= quantity;
                store.taken += quantity;
                Record::Fulfilled {
                    quantity,
                    take: None,
                }
            } else {
                Record::Oversold
            };
            store.records.insert(o, record);
            Step::Read
        }
        Step::Record(m, at) => match store.records.entry(o) {
            std::collections::btree_map::Entry::Occupied(_) => Step::GiveBack(m, at),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(recorded_from(m));
                Step::RemoveMark(m, at)
            }
        },
        Step::GiveBack(m, at) => {
            // Never the sale itself: the record names the take.
            if store.records.get(&o) == Some(&recorded_from(m)) {
                return Step::RemoveMark(m, at);
            }
            // Conditional on the mark where this delivery saw it (a collect may have moved it:
            // then nothing happens and the next read finds it on the item); units go to the item.
            if store.node(at).marks.get(&o) == Some(&m) {
                store.node(at).marks.remove(&o);
                store.item.available += m.quantity;
                store.item.version += 1;
                store.taken -= m.quantity;
            }
            Step::Read
        }
        Step::RemoveMark(m, at) => {
            if store.node(at).marks.get(&o) == Some(&m) {
                store.node(at).marks.remove(&o);
            }
            Step::Read
        }
        Step::Done => Step::Done,
    }
}

/// What holds after every step.
fn check(store: &Store) {
    let available: u64 =
        store.item.available + store.shards.iter().map(|s| s.available).sum::<u64>();
    assert_eq!(
        available + store.taken,
        store.stocked,
        "units appeared or vanished"
    );
    if store.spread == 0 {
        assert!(
            store
                .shards
                .iter()
                .all(|s| s.available == 0 && s.marks.is_empty()),
            "units or marks left in the shards of a collected product"
        );
    }
}

/// One delivery per order run to its end without crashes (a redelivery, or the reconciler),
/// then what holds for good.
fn settle(store: &mut Store, quantities: &[u64], k: u16) {
    finish(store, quantities, k);
    let sold: u64 = store
        .records
        .values()
        .map(|r| match r {
            Record::Fulfilled { quantity, .. } => *quantity,
            Record::Oversold => 0,
        })
        .sum();
    assert_eq!(
        store.records.len(),
        quantities.len(),
        "every order recorded once"
    );
    assert!(
        store.item.marks.is_empty() && store.shards.iter().all(|s| s.marks.is_empty()),
        "marks left"
    );
    assert_eq!(
        store.taken, sold,
        "a unit taken twice, or taken and not sold"
    );
}

fn finish(store: &mut Store, quantities: &[u64], k: u16) {
    for (o, q) in quantities.iter().enumerate() {
        let mut at = Step::Read;
        for _ in 0..1_000 {
            at = step(store, o, at, *q, k);
            check(store);
            if at == Step::Done {
                break;
            }
        }
        assert_eq!(at, Step::Done, "order {o} never finished");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn exactly_once_and_never_negative_across_shards_spreads_and_collects(
        k in 1u16..6,
        stock in 0u64..30,
        quantities in proptest::collection::vec(1u64..4, 1..12),
        // (delivery slot, what happens: 0 = crash, 1 = the operator spreads, 2 = collects,
        // otherwise one step)
        schedule in proptest::collection::vec((0usize..36, 0u8..14), 0..600),
    ) {
        let mut store = Store::new(stock, k);
        store.spread(k);
        // Up to three deliveries per order, interleaved; a crash ends a delivery (its
        // effects stay), and a later slot of the same order starts a fresh one.
        let mut deliveries: Vec<Option<Step>> = vec![None; quantities.len() * 3];
        for (slot, what) in schedule {
            let slot = slot % deliveries.len();
            let o = slot / 3;
            let at = deliveries[slot].unwrap_or(Step::Read);
            match what {
                0 => deliveries[slot] = None,
                1 => store.spread(k),
                2 => store.collect(),
                _ => {
                    let next = step(&mut store, o, at, quantities[o], k);
                    deliveries[slot] = (next != Step::Done).then_some(next);
                }
            }
            check(&store);
        }
        settle(&mut store, &quantities, k);
    }

    /// With one delivery per order (no duplicate take can exist), units spread over shards
    /// never make an order short while the stock covers every order: refills and the collect
    /// always find them.
    #[test]
    fn spread_units_never_make_an_order_short_while_the_stock_covers_every_order(
        k in 1u16..7,
        extra in 0u64..5,
        quantities in proptest::collection::vec(1u64..4, 1..12),
        schedule in proptest::collection::vec(0usize..12, 0..600),
    ) {
        let demand: u64 = quantities.iter().sum();
        let mut store = Store::new(demand + extra, k);
        store.spread(k);
        let mut deliveries: Vec<Option<Step>> = vec![Some(Step::Read); quantities.len()];
        for slot in schedule {
            let o = slot % quantities.len();
            if let Some(at) = deliveries[o] {
                let next = step(&mut store, o, at, quantities[o], k);
                check(&store);
                deliveries[o] = (next != Step::Done).then_some(next);
            }
        }
        settle(&mut store, &quantities, k);
        prop_assert!(store.records.values().all(|r| *r != Record::Oversold),
            "enough stock for every order, yet one was short: {:?}", store.records);
    }
}
