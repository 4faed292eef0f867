//! One clock across processes. `keel_engine::clock::mono_now_ns` counts from the first call in its
//! process (a `std::time::Instant`, which on Linux reads `CLOCK_MONOTONIC`), so two processes'
//! stamps do not compare directly. `CLOCK_MONOTONIC` itself is system-wide: the isolated harness
//! stamps its own events with [`abs_mono_ns`] and maps each process's `mono_now_ns` stamps onto it
//! with that process's [`MonoOffset`] (the pair read back to back, error below the pair's spread,
//! [`MonoOffset::error_ns`], typically tens of ns).

use keel_engine::clock::mono_now_ns;

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: the same value in every process of the machine.
pub fn abs_mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` at this process's `mono_now_ns() == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonoOffset {
    /// Add to a `mono_now_ns` stamp to get [`abs_mono_ns`].
    pub offset_ns: u64,
    /// Half the spread of the best bracketing pair: the mapping's uncertainty.
    pub error_ns: u64,
}

impl MonoOffset {
    /// Measures this process's offset (best of 100 bracketing reads).
    pub fn measure() -> MonoOffset {
        let mut best = MonoOffset { offset_ns: 0, error_ns: u64::MAX };
        for _ in 0..100 {
            let a = abs_mono_ns();
            let m = mono_now_ns();
            let b = abs_mono_ns();
            let half = b.saturating_sub(a) / 2;
            if half < best.error_ns {
                best = MonoOffset { offset_ns: (a + half).saturating_sub(m), error_ns: half };
            }
        }
        best
    }

    /// `mono_now_ns` stamp `ns` of this process on the system-wide clock.
    pub fn to_abs(&self, ns: u64) -> u64 {
        ns.saturating_add(self.offset_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_maps_process_stamps_onto_the_system_clock() {
        let off = MonoOffset::measure();
        let a = abs_mono_ns();
        let m = off.to_abs(mono_now_ns());
        let b = abs_mono_ns();
        // Ordering only (no timing): the mapped stamp lies between two system reads, within the error.
        assert!(m + off.error_ns >= a && m <= b + off.error_ns, "{a} {m} {b} {off:?}");
    }
}
