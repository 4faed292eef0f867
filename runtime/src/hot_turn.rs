//! The order in which inline mode's engine thread takes its inputs ([`hot_step`]): engine events
//! first, the router stage's inputs when no event is waiting, and one router input every
//! [`HOT_ROUTER_TURN`] steps even while events keep coming, so that a flood of exchange frames
//! cannot hold back heads, receipts and relay answers. And when the idle thread rehearses its
//! latest route ([`Rehearsal`]).

use keel_engine::clock::Nanos;

/// However busy the socket, one waiting router input (a head, receipts, a relay answer) is handled
/// at least once per this many steps.
pub(crate) const HOT_ROUTER_TURN: u32 = 16;

/// What the hot loop does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HotStep<E, M> {
    /// Give this event to the engine.
    Event(E),
    /// Hand this input to the router stage.
    Router(M),
    /// Nothing waiting.
    Idle,
}

/// One step: on most turns the next event (`event`: other feeds' queue, then the socket) and a
/// router input (`router`) only if there is none; on every [`HOT_ROUTER_TURN`]-th turn (`turn`
/// counts them) a router input first.
#[inline]
pub(crate) fn hot_step<E, M>(
    turn: &mut u32,
    mut event: impl FnMut() -> Option<E>,
    router: impl FnOnce() -> Option<M>,
) -> HotStep<E, M> {
    *turn = turn.wrapping_add(1);
    let router_turn = turn.is_multiple_of(HOT_ROUTER_TURN);
    if !router_turn && let Some(ev) = event() {
        return HotStep::Event(ev);
    }
    if let Some(msg) = router() {
        return HotStep::Router(msg);
    }
    if router_turn && let Some(ev) = event() {
        return HotStep::Event(ev);
    }
    HotStep::Idle
}

/// When the idle hot thread routes its latest intent again to keep the path warm (`[engine]
/// rehearse_us`; [`keel_router::stage::RouterStage::rehearse`]): once it has had no input for the
/// interval, and then once per interval while it stays idle.
#[derive(Debug)]
pub(crate) struct Rehearsal {
    every_ns: u64,
    last_ns: Nanos,
    /// Rehearsals that routed.
    pub(crate) routed: u64,
}

impl Rehearsal {
    /// Every `every_us` microseconds of idleness (0: never).
    pub(crate) fn new(every_us: u64) -> Self {
        Self { every_ns: every_us.saturating_mul(1_000), last_ns: 0, routed: 0 }
    }

    /// Whether to rehearse at `now`, the last input having come at `busy_ns`.
    #[inline]
    pub(crate) fn due(&self, now: Nanos, busy_ns: Nanos) -> bool {
        self.every_ns > 0
            && now.saturating_sub(busy_ns) >= self.every_ns
            && now.saturating_sub(self.last_ns) >= self.every_ns
    }

    /// A rehearsal ran at `now` (and routed or not).
    pub(crate) fn ran(&mut self, now: Nanos, routed: bool) {
        self.last_ns = now;
        self.routed += u64::from(routed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Runs `steps` steps over an endless flood of events and the router inputs `router`; returns
    /// the step (1-based) at which each router input was handled and the events taken.
    fn under_flood(steps: u32, router: &mut VecDeque<u32>, mut turn: u32) -> (Vec<u32>, u32) {
        let (mut handled, mut events) = (Vec::new(), 0);
        for step in 1..=steps {
            match hot_step(&mut turn, || Some(()), || router.pop_front()) {
                HotStep::Event(()) => events += 1,
                HotStep::Router(_) => handled.push(step),
                HotStep::Idle => panic!("idle at step {step} with events waiting"),
            }
        }
        (handled, events)
    }

    #[test]
    fn a_flood_of_events_lets_one_router_input_through_every_sixteen_steps() {
        let mut router: VecDeque<u32> = (0..3).collect();
        let (handled, events) = under_flood(64, &mut router, 0);
        assert_eq!(handled, [16, 32, 48]);
        assert_eq!(events, 61);
        // Whatever the turn counter says when the inputs arrive (it wraps), none waits longer.
        for start in [5, 15, u32::MAX - 3] {
            let mut router: VecDeque<u32> = (0..4).collect();
            let (handled, _) = under_flood(80, &mut router, start);
            assert_eq!(handled.len(), 4, "start {start}: {handled:?}");
            assert!(handled[0] <= HOT_ROUTER_TURN, "start {start}: {handled:?}");
            assert!(handled.windows(2).all(|w| w[1] - w[0] == HOT_ROUTER_TURN), "start {start}: {handled:?}");
        }
    }

    #[test]
    fn rehearsals_come_once_idle_for_the_interval_and_once_per_interval_after() {
        let us = 1_000;
        let mut r = Rehearsal::new(100);
        let busy = 10_000 * us;
        assert!(!r.due(busy + 99 * us, busy), "before the interval of idleness");
        assert!(r.due(busy + 100 * us, busy));
        r.ran(busy + 100 * us, true);
        assert!(!r.due(busy + 150 * us, busy), "within an interval of the last rehearsal");
        assert!(r.due(busy + 200 * us, busy));
        r.ran(busy + 200 * us, false);
        assert_eq!(r.routed, 1);
        // A new input restarts the wait.
        let input = busy + 250 * us;
        assert!(!r.due(input + 50 * us, input));
        assert!(r.due(input + 100 * us, input));
        // 0: off.
        assert!(!Rehearsal::new(0).due(u64::MAX, 0));
    }

    #[test]
    fn events_come_first_router_inputs_fill_the_gaps_and_nothing_is_idle_with_work_waiting() {
        let mut turn = 0;
        let mut events: VecDeque<u32> = (0..3).collect();
        let mut router: VecDeque<u32> = (100..102).collect();
        let mut order = Vec::new();
        while let HotStep::Event(e) | HotStep::Router(e) =
            hot_step(&mut turn, || events.pop_front(), || router.pop_front())
        {
            order.push(e);
        }
        assert_eq!(order, [0, 1, 2, 100, 101]);
        // A flood of router inputs does not starve events either: one event per step when waiting.
        let mut events: VecDeque<u32> = (0..20).collect();
        let mut taken = 0;
        for _ in 0..20 {
            if let HotStep::Event(_) = hot_step(&mut turn, || events.pop_front(), || Some(7)) {
                taken += 1;
            }
        }
        assert!(taken >= 18, "{taken} events in 20 steps");
    }
}
