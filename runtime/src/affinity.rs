//! CPU pinning (`sched_setaffinity`), for the hot engine thread (`[engine] hot_cpu`) and the
//! isolated harness: a whole process (its threads spawned later inherit the mask) or one named
//! thread found under `/proc/self/task`.

use std::io;

/// CPUs of this machine (`sysconf(_SC_NPROCESSORS_ONLN)`).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

fn set(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("cpu {c} out of range")));
        }
        // SAFETY: `c` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The CPUs thread `tid` (0: the calling thread) may run on.
pub fn allowed(tid: libc::pid_t) -> io::Result<Vec<usize>> {
    // SAFETY: as in `set`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading bits of an initialised set, indices below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Restricts the calling thread (and every thread it spawns afterwards) to `cpus`.
pub fn pin_current(cpus: &[usize]) -> io::Result<()> {
    set(0, cpus)
}

/// The ids of this process's threads (`/proc/self/task`).
pub fn thread_ids() -> io::Result<Vec<libc::pid_t>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

/// Pins every thread of this process whose name (`/proc/self/task/*/comm`) is `name`, except
/// those in `exclude` (e.g. threads that existed before the pipeline started), to `cpus`; returns
/// their thread ids.
pub fn pin_threads_named(
    name: &str,
    exclude: &[libc::pid_t],
    cpus: &[usize],
) -> io::Result<Vec<libc::pid_t>> {
    let mut pinned = Vec::new();
    for tid in thread_ids()? {
        if exclude.contains(&tid) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        if comm.trim_end() == name {
            set(tid, cpus)?;
            pinned.push(tid);
        }
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_thread_is_pinned_and_reads_back() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name("pin-me-test".into())
            .spawn(move || {
                // The name is set by the thread itself before this runs.
                ready_tx.send(()).unwrap();
                rx.recv()
            })
            .unwrap();
        ready_rx.recv().unwrap();
        let cpu = *allowed(0).unwrap().first().unwrap();
        assert!(pin_threads_named("pin-me-test", &thread_ids().unwrap(), &[cpu]).unwrap().is_empty());
        let tids = pin_threads_named("pin-me-test", &[], &[cpu]).unwrap();
        assert_eq!(tids.len(), 1);
        assert_eq!(allowed(tids[0]).unwrap(), vec![cpu]);
        assert!(pin_threads_named("pin-me-test", &[], &[usize::MAX]).is_err());
        tx.send(()).unwrap();
        h.join().unwrap().unwrap();
    }
}
