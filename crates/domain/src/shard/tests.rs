//! The shard rules, and the whole protocol of `shard.rs` run against a plain model of K shard
//! items with conditional writes: random interleavings of several deliveries per order, with
//! crashes, then one redelivery per order run to its end (as EventBridge or the reconciler
//! would). What must hold at every step and at the end is in `check` and `settle`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn order(n: usize) -> OrderId {
    OrderId::parse(format!("cs_test_order_{n}")).unwrap()
}

#[test]
fn every_delivery_of_an_order_tries_the_same_shards_each_once() {
    for n in 0..200 {
        let t = tries(&order(n), 8);
        assert_eq!(t, tries(&order(n), 8));
        let mut sorted = t.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<u16>>());
    }
    assert!(tries(&order(1), 0).is_empty());
    // Orders spread: 200 orders over 8 shards start on every shard.
    let mut first = [0u32; 8];
    for n in 0..200 {
        first[usize::from(tries(&order(n), 8)[0])] += 1;
    }
    assert!(first.iter().all(|c| *c > 5), "{first:?}");
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
    }
}

#[test]
fn a_short_order_is_refilled_from_the_fullest_shard_and_oversold_only_when_all_are_short() {
    let snapshot = [shard(0, 0, 5), shard(1, 1, 3), shard(2, 6, 9)];
    assert_eq!(
        when_short(&snapshot, &[], 0, 2),
        Short::Refill(Move {
            from: (2, 9),
            to: (0, 5),
            units: 3
        }),
        "half of the fullest, at least what is missing"
    );
    assert_eq!(
        when_short(&snapshot, &[], 0, 7),
        Short::Refill(Move {
            from: (2, 9),
            to: (0, 5),
            units: 6
        }),
        "all of it when half is not enough: the next refill takes from the next shard"
    );
    assert_eq!(when_short(&snapshot, &[], 0, 8), Short::Oversold);
    assert_eq!(when_short(&snapshot, &[1], 0, 1), Short::TakenElsewhere);
    assert_eq!(
        when_short(&[shard(0, 2, 1), shard(1, 0, 1)], &[], 0, 2),
        Short::TakeAgain
    );
}

#[test]
fn the_level_is_the_sum_and_its_version_grows_with_any_shard() {
    let before = [shard(0, 3, 4), shard(1, 0, 7)];
    assert_eq!(level(&before), (3, 11));
    assert!(!sold_out(&before));
    let after = [shard(0, 2, 5), shard(1, 0, 7)];
    assert!(level(&after).1 > level(&before).1);
    assert!(sold_out(&[shard(0, 0, 5), shard(1, 0, 7)]));
}

// ------------------------------------------------------------------- the protocol, modelled

/// A mark: the units a take took and the shard version it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    quantity: u64,
    version: u64,
}

#[derive(Debug, Clone, Default)]
struct ShardItem {
    available: u64,
    version: u64,
    marks: BTreeMap<usize, Mark>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// Recorded from the mark at (shard, version): the ledger entry at that version names it.
    Fulfilled {
        quantity: u64,
        shard: u16,
        version: u64,
    },
    Oversold,
}

/// The store: K shard items and the order records, every write conditional as on DynamoDB.
#[derive(Debug, Clone)]
struct Store {
    shards: Vec<ShardItem>,
    records: BTreeMap<usize, Record>,
    stocked: u64,
    /// Units taken and not given back.
    taken: u64,
}

impl Store {
    fn new(split: &[u64]) -> Self {
        Self {
            shards: split
                .iter()
                .map(|a| ShardItem {
                    available: *a,
                    version: 1,
                    marks: BTreeMap::new(),
                })
                .collect(),
            records: BTreeMap::new(),
            stocked: split.iter().sum(),
            taken: 0,
        }
    }

    fn snapshot(&self, o: usize) -> (Vec<Shard>, Vec<u16>) {
        let shards = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| shard(i as u16, s.available, s.version))
            .collect();
        (shards, self.marks_of(o).iter().map(|(i, _)| *i).collect())
    }

    fn marks_of(&self, o: usize) -> Vec<(u16, Mark)> {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.marks.get(&o).map(|m| (i as u16, *m)))
            .collect()
    }
}

/// Where one delivery of one order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Read,
    Take(usize),
    Snapshot,
    Move(Move),
    Record(u16, Mark),
    GiveBack(u16, Mark),
    RemoveMark(u16, Mark),
    Oversell,
    Done,
}

/// One step of one delivery of order `o` (`quantity` units, `k` shards): the protocol of
/// `shard.rs`, each step one conditional request.
fn step(store: &mut Store, o: usize, at: Step, quantity: u64, k: u16) -> Step {
    let tries = tries(&order(o), k);
    match at {
        Step::Read => {
            let marks = store.marks_of(o);
            match (store.records.get(&o).copied(), marks.first().copied()) {
                (Some(_), None) => Step::Done,
                (None, None) => Step::Take(0),
                // Not recorded: the take happened (maybe after falling over); record it.
                (None, Some((i, m))) => Step::Record(i, m),
                // Recorded from this mark: only the mark's removal is left.
                (Some(Record::Fulfilled { shard, version, .. }), Some((i, m)))
                    if shard == i && version == m.version =>
                {
                    Step::RemoveMark(i, m)
                }
                // Any other mark of a recorded order is a duplicate take.
                (Some(_), Some((i, m))) => Step::GiveBack(i, m),
            }
        }
        Step::Take(n) => {
            let i = usize::from(tries[n]);
            let s = &mut store.shards[i];
            if s.marks.contains_key(&o) {
                Step::Read
            } else if s.available >= quantity {
                s.available -= quantity;
                s.version += 1;
                let m = Mark {
                    quantity,
                    version: s.version,
                };
                s.marks.insert(o, m);
                store.taken += quantity;
                Step::Record(i as u16, m)
            } else if n + 1 < tries.len() {
                Step::Take(n + 1)
            } else {
                Step::Snapshot
            }
        }
        Step::Snapshot => {
            let (snapshot, marked) = store.snapshot(o);
            match when_short(&snapshot, &marked, tries[0], quantity) {
                Short::TakenElsewhere => Step::Read,
                Short::TakeAgain => Step::Take(0),
                Short::Refill(m) => Step::Move(m),
                Short::Oversold => Step::Oversell,
            }
        }
        Step::Move(m) => {
            let (from, to) = (usize::from(m.from.0), usize::from(m.to.0));
            if store.shards[from].version == m.from.1 && store.shards[to].version == m.to.1 {
                store.shards[from].available = store.shards[from]
                    .available
                    .checked_sub(m.units)
                    .expect("a move never takes more than the shard had");
                store.shards[from].version += 1;
                store.shards[to].available += m.units;
                store.shards[to].version += 1;
                Step::Take(0)
            } else {
                Step::Snapshot
            }
        }
        Step::Record(i, m) => match store.records.entry(o) {
            std::collections::btree_map::Entry::Occupied(_) => Step::Read,
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Record::Fulfilled {
                    quantity: m.quantity,
                    shard: i,
                    version: m.version,
                });
                Step::RemoveMark(i, m)
            }
        },
        Step::GiveBack(i, m) => {
            let s = &mut store.shards[usize::from(i)];
            if s.marks.get(&o) == Some(&m) {
                s.marks.remove(&o);
                s.available += m.quantity;
                s.version += 1;
                store.taken -= m.quantity;
            }
            Step::Read
        }
        Step::RemoveMark(i, m) => {
            let s = &mut store.shards[usize::from(i)];
            if s.marks.get(&o) == Some(&m) {
                s.marks.remove(&o);
            }
            Step::Read
        }
        Step::Oversell => {
            store.records.entry(o).or_insert(Record::Oversold);
            Step::Read
        }
        Step::Done => Step::Done,
    }
}

/// What holds after every step.
fn check(store: &Store) {
    let available: u64 = store.shards.iter().map(|s| s.available).sum();
    assert_eq!(
        available + store.taken,
        store.stocked,
        "units appeared or vanished"
    );
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
        store.shards.iter().all(|s| s.marks.is_empty()),
        "marks left"
    );
    assert_eq!(
        store.taken, sold,
        "a unit taken twice, or taken and not sold"
    );
    let available: u64 = store.shards.iter().map(|s| s.available).sum();
    assert_eq!(available + sold, store.stocked);
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
    fn exactly_once_and_never_negative_across_shards(
        k in 1u16..6,
        stock in 0u64..30,
        quantities in proptest::collection::vec(1u64..4, 1..12),
        // (delivery slot, what happens: 0 = crash, otherwise one step)
        schedule in proptest::collection::vec((0usize..36, 0u8..12), 0..600),
    ) {
        let mut store = Store::new(&split(stock, k));
        // Up to three deliveries per order, interleaved; a crash ends a delivery (its
        // effects stay), and a later slot of the same order starts a fresh one.
        let mut deliveries: Vec<Option<Step>> = vec![None; quantities.len() * 3];
        for (slot, what) in schedule {
            let slot = slot % deliveries.len();
            let o = slot / 3;
            let at = deliveries[slot].unwrap_or(Step::Read);
            if what == 0 {
                deliveries[slot] = None;
                continue;
            }
            let next = step(&mut store, o, at, quantities[o], k);
            check(&store);
            deliveries[slot] = (next != Step::Done).then_some(next);
        }
        settle(&mut store, &quantities, k);
    }

    /// With one delivery per order (no duplicate take can exist), units spread over shards
    /// never make an order short while the stock covers every order: falling over and moving
    /// units between shards always find them.
    #[test]
    fn spread_units_never_make_an_order_short_while_the_stock_covers_every_order(
        k in 1u16..7,
        extra in 0u64..5,
        quantities in proptest::collection::vec(1u64..4, 1..12),
        schedule in proptest::collection::vec(0usize..12, 0..600),
        uneven in proptest::collection::vec(0u64..6, 6),
    ) {
        let demand: u64 = quantities.iter().sum();
        // Enough in all, spread unevenly (some shards empty): the rest of the demand on shard 0.
        let mut stock: Vec<u64> = (0..usize::from(k)).map(|i| uneven[i].min(demand)).collect();
        let spread: u64 = stock.iter().sum();
        stock[0] += (demand + extra).saturating_sub(spread);
        let mut store = Store::new(&stock);
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
