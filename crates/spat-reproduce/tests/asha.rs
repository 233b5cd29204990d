//! ASHA in virtual time (`spat_reproduce::tune::asha`): a hand-worked search, properties of the
//! replay over random metric tables, and the promotion rule against Optuna's
//! `SuccessiveHalvingPruner` on a recorded sequence of results.

use std::collections::BTreeMap;

use spat_reproduce::tune::asha::{
    best_first, promotable, schedule, winner, Metric, Rungs, Schedule, Segment,
};

type Results = BTreeMap<(usize, usize), Metric>;

fn metric(robust: f64, clean: f64) -> Metric {
    Metric { robust, clean }
}

/// A segment as (trial, rung, slot, start, from_epochs, to_epochs).
fn seg(
    (trial, rung, slot, start, from_epochs, to_epochs): (usize, usize, usize, u64, usize, usize),
) -> Segment {
    Segment {
        trial,
        rung,
        slot,
        start,
        from_epochs,
        to_epochs,
    }
}

fn segs(rows: &[(usize, usize, usize, u64, usize, usize)]) -> Vec<Segment> {
    rows.iter().copied().map(seg).collect()
}

/// The hand-worked example's results: robust accuracy (clean 0) of 9 trials at rung 0, of the
/// three trials ASHA promotes at rung 1, and of the one it promotes at rung 2.
fn hand_worked_results() -> Results {
    let rung0 = [50.0, 60.0, 40.0, 70.0, 30.0, 55.0, 65.0, 45.0, 35.0];
    let mut r: Results = (0..9).map(|t| ((t, 0), metric(rung0[t], 0.0))).collect();
    r.insert((1, 1), metric(62.0, 0.0));
    r.insert((3, 1), metric(72.0, 0.0));
    r.insert((6, 1), metric(66.0, 0.0));
    r.insert((3, 2), metric(75.0, 0.0));
    r
}

// 9 trials, η = 3, R0 = 1, 3 rungs: rungs at 1, 3, 9 epochs, so segments last 1, 2 and 6 units.
// One slot, worked by hand (Tk = trial k; "top" = the top ⌊n/η⌋ of a rung's arrived results):
//   t=0  start T0 r0 [0,1)
//   t=1  T0=50; rung 0 n=1 top {}             -> start T1 r0 [1,2)
//   t=2  T1=60; n=2 top {}                    -> start T2 r0 [2,3)
//   t=3  T2=40; n=3 top {T1}                  -> promote T1 to r1 [3,5) (epochs 1->3)
//   t=5  T1 r1=62; r1 n=1 top {}; r0 top {T1} done -> start T3 r0 [5,6)
//   t=6  T3=70; r0 n=4 top {T3}               -> promote T3 to r1 [6,8)
//   t=8  T3 r1=72; r1 n=2 top {}; r0 top {T3} done -> start T4 r0 [8,9)
//   t=9  T4=30; r0 n=5 top {T3}               -> start T5 r0 [9,10)
//   t=10 T5=55; r0 n=6 top {T3,T1} both done  -> start T6 r0 [10,11)
//   t=11 T6=65; r0 n=7 top {T3,T6}            -> promote T6 to r1 [11,13)
//   t=13 T6 r1=66; r1 n=3 top {T3}            -> promote T3 to r2 [13,19) (epochs 3->9)
//   t=19 T3 r2=75; nothing to promote         -> start T7 r0 [19,20)
//   t=20 T7=45                                -> start T8 r0 [20,21)
//   t=21 T8=35; r0 n=9 top {T3,T6,T1} all done, no trial left -> idle: finished.
// Epochs: 9·1 + 3·2 + 1·6 = 21 against the grid's 9·9 = 81.
const ONE_SLOT: &[(usize, usize, usize, u64, usize, usize)] = &[
    (0, 0, 0, 0, 0, 1),
    (1, 0, 0, 1, 0, 1),
    (2, 0, 0, 2, 0, 1),
    (1, 1, 0, 3, 1, 3),
    (3, 0, 0, 5, 0, 1),
    (3, 1, 0, 6, 1, 3),
    (4, 0, 0, 8, 0, 1),
    (5, 0, 0, 9, 0, 1),
    (6, 0, 0, 10, 0, 1),
    (6, 1, 0, 11, 1, 3),
    (3, 2, 0, 13, 3, 9),
    (7, 0, 0, 19, 0, 1),
    (8, 0, 0, 20, 0, 1),
];

// Two slots, same results; events at the same time are applied slot 0 first, and a slot is given
// work right after its own event (before the next slot's event is applied):
//   t=0  s0: start T0 r0 [0,1); s1: start T1 r0 [0,1)
//   t=1  s0: T0=50, n=1 -> start T2 [1,2);  s1: T1=60, n=2 -> start T3 [1,2)
//   t=2  s0: T2=40, n=3 top {T1} -> promote T1 r1 [2,4);  s1: T3=70, n=4 top {T3} -> T3 r1 [2,4)
//   t=4  s0: T1 r1=62 -> start T4 [4,5);  s1: T3 r1=72 (r1 n=2 top {}) -> start T5 [4,5)
//   t=5  s0: T4=30 -> start T6 [5,6);  s1: T5=55 (top {T3,T1} done) -> start T7 [5,6)
//   t=6  s0: T6=65, n=7 top {T3,T6} -> promote T6 r1 [6,8);  s1: T7=45 -> start T8 [6,7)
//   t=7  s1: T8=35, n=9 top {T3,T6,T1} done, no trial left -> s1 idles
//   t=8  s0: T6 r1=66, r1 n=3 top {T3} -> promote T3 r2 [8,14); s1 offered again: idles
//   t=14 s0: T3 r2=75; both slots idle, nothing running: finished.
const TWO_SLOTS: &[(usize, usize, usize, u64, usize, usize)] = &[
    (0, 0, 0, 0, 0, 1),
    (1, 0, 1, 0, 0, 1),
    (2, 0, 0, 1, 0, 1),
    (3, 0, 1, 1, 0, 1),
    (1, 1, 0, 2, 1, 3),
    (3, 1, 1, 2, 1, 3),
    (4, 0, 0, 4, 0, 1),
    (5, 0, 1, 4, 0, 1),
    (6, 0, 0, 5, 0, 1),
    (7, 0, 1, 5, 0, 1),
    (6, 1, 0, 6, 1, 3),
    (8, 0, 1, 6, 0, 1),
    (3, 2, 0, 8, 3, 9),
];

#[test]
fn hand_worked_search_on_one_slot() {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    let results = hand_worked_results();
    let s = schedule(9, &rungs, 1, &results);
    assert_eq!(s.segments, segs(ONE_SLOT));
    assert!(s.finished);
    assert!(s.pending(&results).is_empty());
    let spent = s.epochs_spent(&results);
    let expected: BTreeMap<usize, usize> = [
        (0, 1),
        (1, 3),
        (2, 1),
        (3, 9),
        (4, 1),
        (5, 1),
        (6, 3),
        (7, 1),
        (8, 1),
    ]
    .into();
    assert_eq!(spent, expected);
    assert_eq!(spent.values().sum::<usize>(), 21);
    assert_eq!(rungs.exhaustive_epochs(9), 81);
    assert_eq!(winner(&rungs, &results), Some(3));
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
}

#[test]
fn hand_worked_search_on_two_slots() {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    let results = hand_worked_results();
    let s = schedule(9, &rungs, 2, &results);
    assert_eq!(s.segments, segs(TWO_SLOTS));
    assert!(s.finished);
    let spent: usize = s.epochs_spent(&results).values().sum();
    assert_eq!(spent, 21);
}

#[test]
fn hand_worked_search_stops_at_the_first_unknown_result() {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    let all = hand_worked_results();
    let known: Results = [(0, 0), (1, 0)].iter().map(|k| (*k, all[k])).collect();
    let one = schedule(9, &rungs, 1, &known);
    assert_eq!(one.segments, segs(&ONE_SLOT[..3]));
    assert_eq!(one.pending(&known), segs(&ONE_SLOT[2..3]));
    assert!(!one.finished);
    // Two slots with only T0's result: T2 is decided on slot 0 at t=1, then T1's event (slot 1,
    // also t=1) is unknown, so T3 is not decided yet.
    let first: Results = [((0, 0), all[&(0, 0)])].into();
    let two = schedule(9, &rungs, 2, &first);
    assert_eq!(two.segments, segs(&TWO_SLOTS[..3]));
    assert_eq!(two.pending(&first), segs(&[TWO_SLOTS[1], TWO_SLOTS[2]]));
    // T1's own result is known but T0's is not: nothing after the first event is decided.
    let late: Results = [((1, 0), all[&(1, 0)])].into();
    let blocked = schedule(9, &rungs, 2, &late);
    assert_eq!(blocked.segments, segs(&TWO_SLOTS[..2]));
    assert_eq!(blocked.pending(&late), segs(&TWO_SLOTS[..1]));
    assert_eq!(blocked.epochs_spent(&late), [(0, 0), (1, 1)].into());
}

#[test]
fn ties_break_on_clean_accuracy_then_on_the_lower_trial_id() {
    // η = 2, two rungs, one slot: after T0 and T1 arrive, the top ⌊2/2⌋ = 1 is promoted.
    let rungs = Rungs::new(2, 2, 2).unwrap();
    let promoted = |r0: Metric, r1: Metric| {
        let results: Results = [((0, 0), r0), ((1, 0), r1)].into();
        let s = schedule(2, &rungs, 1, &results);
        assert_eq!(s.segments.len(), 3, "{s:?}");
        assert_eq!((s.segments[2].rung, s.segments[2].from_epochs), (1, 2));
        assert_eq!(s.segments[2].to_epochs, 4);
        s.segments[2].trial
    };
    assert_eq!(promoted(metric(40.0, 70.0), metric(41.0, 10.0)), 1);
    assert_eq!(promoted(metric(40.0, 70.0), metric(40.0, 80.0)), 1);
    assert_eq!(promoted(metric(40.0, 90.0), metric(40.0, 80.0)), 0);
    assert_eq!(promoted(metric(40.0, 80.0), metric(40.0, 80.0)), 0);
    assert_eq!(promoted(metric(f64::NAN, 99.0), metric(0.0, 0.0)), 1);
    let mut ranked = [
        (3, metric(40.0, 80.0)),
        (1, metric(40.0, 80.0)),
        (2, metric(40.0, 81.0)),
        (0, metric(39.0, 99.0)),
    ];
    ranked.sort_by(best_first);
    let order: Vec<usize> = ranked.iter().map(|r| r.0).collect();
    assert_eq!(order, [2, 1, 3, 0]);
}

#[test]
fn promotable_is_the_top_floor_n_over_eta() {
    let arrived: Vec<(usize, Metric)> = (0..8)
        .map(|t| (t, metric([5.0, 9.0, 1.0, 7.0, 3.0, 8.0, 2.0, 6.0][t], 0.0)))
        .collect();
    assert!(promotable(3, &arrived[..2]).is_empty());
    assert_eq!(promotable(3, &arrived[..3]), [1]);
    assert_eq!(promotable(3, &arrived[..6]), [1, 5]);
    assert_eq!(promotable(3, &arrived), [1, 5]);
    assert_eq!(promotable(2, &arrived), [1, 5, 3, 7]);
}

#[test]
fn winner_is_the_best_at_the_highest_rung_reached() {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    assert_eq!(winner(&rungs, &Results::new()), None);
    let mut r: Results = [((0, 0), metric(90.0, 90.0)), ((1, 0), metric(10.0, 10.0))].into();
    assert_eq!(winner(&rungs, &r), Some(0));
    r.insert((1, 1), metric(5.0, 5.0));
    assert_eq!(winner(&rungs, &r), Some(1));
    r.insert((2, 1), metric(5.0, 6.0));
    assert_eq!(winner(&rungs, &r), Some(2));
}

#[test]
fn rungs_are_checked_on_creation_and_when_read_back() {
    let r = Rungs::new(2, 3, 4).unwrap();
    assert_eq!(
        (r.epochs(0), r.epochs(1), r.epochs(3), r.max_epochs()),
        (2, 6, 54, 54)
    );
    let bad = |r0, eta, k| Rungs::new(r0, eta, k).unwrap_err().to_string();
    assert!(bad(0, 3, 3).contains("--min-epochs"), "{}", bad(0, 3, 3));
    assert!(bad(1, 1, 3).contains("--eta"), "{}", bad(1, 1, 3));
    assert!(bad(1, 3, 0).contains("at least one rung"));
    assert!(bad(1, 3, 10).contains("above 9999"), "{}", bad(1, 3, 10));
    assert!(bad(usize::MAX, 2, 2).contains("above 9999"));
    assert!(bad(1, usize::MAX, 200).contains("above 9999"));
    assert_eq!(Rungs::new(9999, 2, 1).unwrap().max_epochs(), 9999);
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<Rungs>(&json).unwrap(), r);
    let forged = r#"{"min_epochs":1,"eta":1,"count":3}"#;
    let e = serde_json::from_str::<Rungs>(forged)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--eta"), "{e}");
}

#[test]
fn no_trials_or_one_rung() {
    let rungs = Rungs::new(1, 3, 3).unwrap();
    let empty = schedule(0, &rungs, 2, &Results::new());
    assert!(empty.finished && empty.segments.is_empty());
    // One rung: every trial trains to R0 once; nothing is promoted.
    let flat = Rungs::new(4, 2, 1).unwrap();
    let results: Results = (0..5).map(|t| ((t, 0), metric(t as f64, 0.0))).collect();
    let s = schedule(5, &flat, 2, &results);
    assert!(s.finished);
    assert!(s.segments.iter().all(|s| s.rung == 0 && s.epochs() == 4));
    assert_eq!(s.segments.len(), 5);
    // Zero slots are taken as one.
    assert_eq!(
        schedule(5, &flat, 0, &results),
        schedule(5, &flat, 1, &results)
    );
}

/// splitmix64: a small seeded generator for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// A metric for every (trial, rung): distinct robust values per rung (a trial's quality plus
/// noise, rising with the rung), or coarse values with many ties when `ties`.
fn table(rng: &mut Rng, trials: usize, rungs: &Rungs, ties: bool) -> Results {
    let quality = rng.permutation(trials);
    let mut t = Results::new();
    for k in 0..rungs.count {
        let noise = rng.permutation(trials);
        for trial in 0..trials {
            let m = if ties {
                metric((rng.below(3) * 10) as f64, (rng.below(2) * 10) as f64)
            } else {
                let robust = 20.0 + 2.0 * k as f64 + quality[trial] as f64;
                let robust = robust + noise[trial] as f64 / (trials + 1) as f64;
                metric(robust, (50 + rng.below(40)) as f64)
            };
            t.insert((trial, k), m);
        }
    }
    t
}

/// A search setting: (trials, rungs, slots).
fn settings() -> Vec<(usize, Rungs, usize)> {
    let r = |r0, eta, k| Rungs::new(r0, eta, k).unwrap();
    vec![
        (9, r(1, 3, 3), 1),
        (9, r(1, 3, 3), 2),
        (27, r(1, 3, 3), 4),
        (20, r(2, 2, 4), 3),
        (12, r(1, 4, 2), 5),
        (3, r(1, 2, 3), 8),
        (30, r(3, 3, 2), 2),
    ]
}

/// Runs a controller that, each round, measures a random non-empty subset of the pending
/// segments, in random order, and calls `schedule` again; checks every round's invariants and
/// returns the final schedule.
fn controller(
    rng: &mut Rng,
    full: &Results,
    trials: usize,
    rungs: &Rungs,
    slots: usize,
) -> Schedule {
    let mut known = Results::new();
    let mut previous = schedule(trials, rungs, slots, &known);
    for _round in 0..10_000 {
        let pending = previous.pending(&known);
        assert!(
            pending.len() <= slots,
            "{} pending on {slots} slots",
            pending.len()
        );
        assert_eq!(previous.finished, pending.is_empty());
        if previous.finished {
            return previous;
        }
        let order = rng.permutation(pending.len());
        let take = 1 + rng.below(pending.len());
        for &i in &order[..take] {
            let key = (pending[i].trial, pending[i].rung);
            known.insert(key, full[&key]);
        }
        let next = schedule(trials, rungs, slots, &known);
        assert!(
            next.segments.starts_with(&previous.segments),
            "a schedule with more results must extend the one with fewer"
        );
        previous = next;
    }
    panic!("the search did not finish in 10000 rounds");
}

#[test]
fn results_in_any_order_give_the_same_stable_schedule() {
    let mut rng = Rng(0x5eed);
    for (trials, rungs, slots) in settings() {
        for ties in [false, true] {
            let full = table(&mut rng, trials, &rungs, ties);
            let direct = schedule(trials, &rungs, slots, &full);
            assert!(direct.finished);
            for _ in 0..3 {
                let incremental = controller(&mut rng, &full, trials, &rungs, slots);
                assert_eq!(
                    incremental, direct,
                    "{trials} trials, {rungs:?}, {slots} slots"
                );
            }
        }
    }
}

/// Checks that each slot runs one segment at a time, and each trial's segments climb the rungs
/// one by one, continuing from where the last one stopped, after its result arrived.
fn check_segments_chain(s: &Schedule, rungs: &Rungs) {
    let mut by_slot: BTreeMap<usize, Vec<&Segment>> = BTreeMap::new();
    let mut by_trial: BTreeMap<usize, Vec<&Segment>> = BTreeMap::new();
    for seg in &s.segments {
        by_slot.entry(seg.slot).or_default().push(seg);
        by_trial.entry(seg.trial).or_default().push(seg);
    }
    for run in by_slot.values() {
        assert!(run.windows(2).all(|w| w[0].end() <= w[1].start), "{run:?}");
    }
    for chain in by_trial.values() {
        for (k, seg) in chain.iter().enumerate() {
            assert_eq!(seg.rung, k);
            assert_eq!(seg.to_epochs, rungs.epochs(k));
            let from = if k == 0 { 0 } else { rungs.epochs(k - 1) };
            assert_eq!(seg.from_epochs, from);
            if k > 0 {
                assert!(chain[k - 1].end() <= seg.start);
            }
        }
    }
}

#[test]
fn every_trial_starts_once_in_id_order_and_segments_chain() {
    let mut rng = Rng(7);
    for (trials, rungs, slots) in settings() {
        let full = table(&mut rng, trials, &rungs, false);
        let s = schedule(trials, &rungs, slots, &full);
        let starts: Vec<usize> = s
            .segments
            .iter()
            .filter(|s| s.rung == 0)
            .map(|s| s.trial)
            .collect();
        assert_eq!(starts, (0..trials).collect::<Vec<_>>());
        assert!(s.segments.iter().all(|seg| seg.slot < slots));
        check_segments_chain(&s, &rungs);
    }
}

/// The rung-`rung` results among the first `p` arrivals.
fn arrived_at(arrivals: &[Segment], p: usize, rung: usize, full: &Results) -> Vec<(usize, Metric)> {
    arrivals[..p]
        .iter()
        .filter(|a| a.rung == rung)
        .map(|a| (a.trial, full[&(a.trial, a.rung)]))
        .collect()
}

/// Whether `trial` is among the top ⌊n/η⌋ of `arrived`, written out independently of the crate's
/// ranking: fewer than ⌊n/η⌋ results beat it (higher robust, then higher clean, then lower id).
fn in_top(eta: usize, arrived: &[(usize, Metric)], trial: usize) -> bool {
    let Some(&(_, me)) = arrived.iter().find(|a| a.0 == trial) else {
        return false;
    };
    let beats = |&&(id, m): &&(usize, Metric)| {
        m.robust > me.robust
            || (m.robust == me.robust && m.clean > me.clean)
            || (m.robust == me.robust && m.clean == me.clean && id < trial)
    };
    arrived.iter().filter(beats).count() < arrived.len() / eta
}

#[test]
fn promotions_are_only_of_the_top_of_their_rung() {
    let mut rng = Rng(11);
    for (trials, rungs, slots) in settings() {
        for ties in [false, true] {
            let full = table(&mut rng, trials, &rungs, ties);
            let s = schedule(trials, &rungs, slots, &full);
            let arrivals = s.arrivals(&full);
            assert_eq!(arrivals.len(), s.segments.len());
            for p in s.segments.iter().filter(|s| s.rung > 0) {
                // Decided after every arrival before its start and some of those at its start.
                let lo = arrivals.iter().filter(|a| a.end() < p.start).count();
                let hi = arrivals.iter().filter(|a| a.end() <= p.start).count();
                let top_somewhere = (lo..=hi).any(|n| {
                    in_top(
                        rungs.eta,
                        &arrived_at(&arrivals, n, p.rung - 1, &full),
                        p.trial,
                    )
                });
                assert!(
                    top_somewhere,
                    "{p:?} was not in the top of rung {}",
                    p.rung - 1
                );
            }
        }
    }
}

#[test]
fn finished_exactly_when_nothing_more_can_run() {
    let mut rng = Rng(13);
    for (trials, rungs, slots) in settings() {
        let full = table(&mut rng, trials, &rungs, false);
        let s = schedule(trials, &rungs, slots, &full);
        assert!(s.finished);
        // Every trial in a rung's final top ⌊n/η⌋ went on to the next rung.
        for k in 0..rungs.count - 1 {
            let arrived = arrived_at(&s.arrivals(&full), s.segments.len(), k, &full);
            for t in (0..trials).filter(|&t| in_top(rungs.eta, &arrived, t)) {
                assert!(s.segments.iter().any(|x| x.trial == t && x.rung == k + 1));
            }
        }
        // Taking away any one result leaves the search unfinished.
        let seg = s.segments[rng.below(s.segments.len())];
        let mut fewer = full.clone();
        fewer.remove(&(seg.trial, seg.rung));
        let cut = schedule(trials, &rungs, slots, &fewer);
        assert!(!cut.finished);
        assert!(s.segments.starts_with(&cut.segments));
        assert!(
            cut.pending(&fewer).contains(&seg),
            "{seg:?} is decided and waits for its result"
        );
    }
}

#[test]
fn epochs_spent_are_below_the_exhaustive_grid() {
    let mut rng = Rng(17);
    for (trials, rungs, slots) in settings() {
        let full = table(&mut rng, trials, &rungs, false);
        let s = schedule(trials, &rungs, slots, &full);
        let spent = s.epochs_spent(&full);
        assert_eq!(spent.len(), trials);
        for (&t, &e) in &spent {
            let top = s
                .segments
                .iter()
                .filter(|s| s.trial == t)
                .map(|s| s.rung)
                .max()
                .unwrap();
            assert_eq!(e, rungs.epochs(top));
        }
        let total: usize = spent.values().sum();
        let grid = rungs.exhaustive_epochs(trials);
        assert!(total <= grid);
        if rungs.count > 1 && trials >= rungs.eta {
            assert!(total < grid, "{total} epochs against the grid's {grid}");
        }
        // On one slot the virtual clock is the epochs spent.
        let one = schedule(trials, &rungs, 1, &full);
        assert_eq!(
            one.segments.last().unwrap().end(),
            one.epochs_spent(&full).values().sum::<usize>() as u64
        );
    }
}

/// The search settings of the Optuna comparison: (trials, rungs, slots, seed of the metric table).
fn optuna_settings() -> Vec<(usize, Rungs, usize, u64)> {
    let r = |r0, eta, k| Rungs::new(r0, eta, k).unwrap();
    vec![(30, r(1, 3, 3), 2, 1), (20, r(1, 2, 4), 3, 2)]
}

/// Writes, for `scripts/golden/asha_reference.py`, the sequence of reports (trial, rung, robust,
/// clean) that ASHA applies on each search of [`optuna_settings`], in the order it applies them.
#[test]
#[ignore = "writes the report sequences scripts/golden/asha_reference.py feeds to Optuna; run by that script"]
fn export_report_sequences() {
    let out =
        std::env::var("ASHA_SEQUENCE_OUT").expect("set ASHA_SEQUENCE_OUT to the file to write");
    let cases: Vec<serde_json::Value> = optuna_settings()
        .into_iter()
        .map(|(trials, rungs, slots, seed)| {
            let full = table(&mut Rng(seed), trials, &rungs, false);
            let s = schedule(trials, &rungs, slots, &full);
            assert!(s.finished);
            let reports: Vec<serde_json::Value> = s
                .arrivals(&full)
                .iter()
                .map(|a| {
                    let m = full[&(a.trial, a.rung)];
                    serde_json::json!([a.trial, a.rung, m.robust, m.clean])
                })
                .collect();
            serde_json::json!({"trials": trials, "rungs": rungs, "slots": slots, "reports": reports})
        })
        .collect();
    std::fs::write(out, serde_json::to_string(&cases).unwrap()).unwrap();
}

/// How spat's promotion rule and Optuna's compared on a fixture's reports.
#[derive(Debug, Default, PartialEq)]
struct Comparison {
    reports: usize,
    /// Reports where at least η values had arrived at the rung (both rules take the top ⌊n/η⌋).
    defined_alike: usize,
    agreed: usize,
    /// Reports with n < η where Optuna continues the best value so far and ASHA promotes none.
    below_eta_differences: usize,
}

/// Compares, report by report, whether the reporting trial is in spat's promotable set of its rung
/// (the results arrived there so far, its own included) with Optuna's `should_prune() == false`.
fn compare_with_optuna(eta: usize, reports: &[(usize, usize, Metric, bool)]) -> Comparison {
    let mut c = Comparison::default();
    let mut arrived: BTreeMap<usize, Vec<(usize, Metric)>> = BTreeMap::new();
    for &(trial, rung, m, optuna_continues) in reports {
        let at_rung = arrived.entry(rung).or_default();
        at_rung.push((trial, m));
        let spat_promotes = promotable(eta, at_rung).contains(&trial);
        c.reports += 1;
        if at_rung.len() >= eta {
            c.defined_alike += 1;
            assert_eq!(
                spat_promotes, optuna_continues,
                "trial {trial} at rung {rung}"
            );
            c.agreed += 1;
            continue;
        }
        assert!(
            !spat_promotes,
            "ASHA promotes nothing from fewer than η results"
        );
        let best_so_far = at_rung.iter().all(|o| o.1.robust <= m.robust);
        assert_eq!(
            optuna_continues, best_so_far,
            "trial {trial} at rung {rung}, n < η"
        );
        if optuna_continues {
            c.below_eta_differences += 1;
        } else {
            c.agreed += 1;
        }
    }
    c
}

fn fixture_reports(case: &serde_json::Value) -> Vec<(usize, usize, Metric, bool)> {
    let rows = case["reports"].as_array().expect("reports");
    rows.iter()
        .map(|r| {
            let n = |i: usize| r[i].as_u64().expect("an id") as usize;
            let f = |i: usize| r[i].as_f64().expect("a number");
            (
                n(0),
                n(1),
                metric(f(2), f(3)),
                r[4].as_bool().expect("a decision"),
            )
        })
        .collect()
}

// Optuna's SuccessiveHalvingPruner on the report sequences spat's ASHA produced
// (scripts/golden/asha_reference.py): both take the top ⌊n/η⌋ of the values reported at a rung,
// except while fewer than η values exist, where Optuna continues the best one so far
// (promotable_idx -1 -> 0) and ASHA promotes nothing yet. The fixture's robust values have no
// ties, so Optuna's `>=` and spat's tie-breaks never meet.
#[test]
fn optuna_successive_halving_agrees_except_below_eta_results() {
    let text = include_str!("fixtures/asha_optuna.json");
    let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut totals = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let trials = case["trials"].as_u64().unwrap() as usize;
        let slots = case["slots"].as_u64().unwrap() as usize;
        let rungs: Rungs = serde_json::from_value(case["rungs"].clone()).unwrap();
        let reports = fixture_reports(case);
        let results: Results = reports.iter().map(|r| ((r.0, r.1), r.2)).collect();
        // The fixture's sequence is still the one spat's ASHA applies to these results.
        let s = schedule(trials, &rungs, slots, &results);
        assert!(s.finished);
        let sequence: Vec<(usize, usize)> = s
            .arrivals(&results)
            .iter()
            .map(|a| (a.trial, a.rung))
            .collect();
        let recorded: Vec<(usize, usize)> = reports.iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(sequence, recorded);
        totals.push(compare_with_optuna(rungs.eta, &reports));
    }
    let c = |reports, defined_alike, below_eta_differences| Comparison {
        reports,
        defined_alike,
        agreed: reports - below_eta_differences,
        below_eta_differences,
    };
    assert_eq!(totals, [c(54, 48, 5), c(37, 33, 4)]);
}
