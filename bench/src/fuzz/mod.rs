//! `keel-bench fuzz`: a coverage-free mutation fuzzer that runs on stable Rust (no cargo-fuzz, no
//! nightly, no sanitizer), for the parsers that read what other parties send: the relay answer
//! parser of the fast path, the Binance decoder, the node feed's log decoders and the mempool's
//! calldata decoder (see [`targets`]).
//!
//! Each input is a seed (a real frame, answer, log or call) with 1 to 6 stacked mutations
//! ([`mutate`]: bit flips, truncation, splices, number-edge substitutions, chunk-size edges) from a
//! seeded PRNG ([`rng`]), so a run is reproducible from `--seed`. Every input runs under
//! `catch_unwind`; a panic is a crash: counted, and the first input of each distinct panic site is
//! written to `--crash-dir` (`<target>-<n>.bin`, with the message beside it in `.txt`).
//!
//! Build with `--profile fuzz` (release with overflow checks on), so that a wrapped integer is a
//! crash rather than a silent wrong value.

pub mod mutate;
pub mod rng;
pub mod targets;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use targets::Target;

use self::mutate::mutate;
use self::rng::Rng;
use self::targets::Harness;

/// A fuzz run's settings.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// What to fuzz.
    pub target: Target,
    /// Inputs to run.
    pub iterations: u64,
    /// PRNG seed (the run is reproducible from it).
    pub seed: u64,
    /// Where crashing inputs are written.
    pub crash_dir: PathBuf,
    /// Directories of extra seeds (captures: one frame per line; other files: one input each).
    pub corpus: Vec<PathBuf>,
    /// Print progress to stderr every this many inputs (0: never).
    pub progress_every: u64,
}

/// One distinct crash site.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Crash {
    /// `file:line` of the panic.
    pub location: String,
    /// The panic message.
    pub message: String,
    /// Inputs that panicked here.
    pub count: u64,
    /// The first such input, written out.
    pub file: PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FuzzReport {
    /// The target.
    pub target: Target,
    /// Inputs run.
    pub iterations: u64,
    /// Seeds in the corpus.
    pub seeds: usize,
    /// PRNG seed.
    pub seed: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Inputs per second.
    pub inputs_per_s: f64,
    /// Inputs that panicked.
    pub crashes: u64,
    /// Distinct panic sites.
    pub unique: Vec<Crash>,
}

thread_local! {
    /// The last panic's (location, message), set by the hook installed for a run.
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Runs `opts.iterations` mutated inputs through `opts.target`.
pub fn run(opts: &FuzzOptions) -> std::io::Result<FuzzReport> {
    let mut extra = Vec::new();
    let mut symbols = Vec::new();
    for dir in &opts.corpus {
        let (s, syms) = targets::load_corpus(dir)?;
        // Captures are Binance frames: only that target takes them.
        if opts.target == Target::Binance {
            extra.extend(s);
        }
        symbols.extend(syms);
    }
    let corpus = targets::seeds(opts.target, &extra);
    if corpus.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no seeds for {}: give --corpus a directory of captures", opts.target.name()),
        ));
    }
    let harness = Harness::new(opts.target, &symbols);
    std::fs::create_dir_all(&opts.crash_dir)?;

    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map_or_else(|| "?".into(), |l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
    }));

    let mut rng = Rng::new(opts.seed);
    let mut buf = Vec::with_capacity(opts.target.max_len());
    let mut unique: Vec<Crash> = Vec::new();
    let mut crashes = 0u64;
    let t0 = Instant::now();
    let mut result = Ok(());
    for i in 0..opts.iterations {
        let seed = rng.pick(&corpus);
        mutate(&mut buf, seed, &corpus, opts.target.shape(), &mut rng, opts.target.max_len());
        if catch_unwind(AssertUnwindSafe(|| harness.run(&buf))).is_err() {
            crashes += 1;
            let (location, message) = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            if let Some(c) = unique.iter_mut().find(|c| c.location == location) {
                c.count += 1;
            } else {
                let file = opts.crash_dir.join(format!("{}-{}.bin", opts.target.name(), unique.len()));
                if let Err(e) = write_crash(&file, &buf, &location, &message) {
                    result = Err(e);
                    break;
                }
                eprintln!(
                    "fuzz {}: crash #{} at {location}: {message} (input {})",
                    opts.target.name(),
                    unique.len(),
                    file.display()
                );
                unique.push(Crash { location, message, count: 1, file });
            }
        }
        if opts.progress_every > 0 && (i + 1) % opts.progress_every == 0 {
            let s = t0.elapsed().as_secs_f64();
            eprintln!("fuzz {}: {} inputs, {s:.0} s, {crashes} crashes", opts.target.name(), i + 1);
        }
    }
    let elapsed = t0.elapsed();
    std::panic::set_hook(previous);
    result?;
    Ok(FuzzReport {
        target: opts.target,
        iterations: opts.iterations,
        seeds: corpus.len(),
        seed: opts.seed,
        seconds: elapsed.as_secs_f64(),
        inputs_per_s: opts.iterations as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64(),
        crashes,
        unique,
    })
}

fn write_crash(file: &Path, input: &[u8], location: &str, message: &str) -> std::io::Result<()> {
    std::fs::write(file, input)?;
    std::fs::write(file.with_extension("txt"), format!("{location}\n{message}\n"))
}

/// Runs one saved input through `target` (to reproduce a crash file): `Err` with the panic.
pub fn replay(target: Target, input: &[u8]) -> Result<(), String> {
    let harness = Harness::new(target, &[]);
    catch_unwind(AssertUnwindSafe(|| harness.run(input))).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_of_each_target_is_clean_and_reproducible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../feeds/tests/data");
        for target in Target::ALL {
            let opts = FuzzOptions {
                target,
                iterations: 20_000,
                seed: 11,
                crash_dir: dir.path().to_path_buf(),
                corpus: vec![data.clone()],
                progress_every: 0,
            };
            let a = run(&opts).expect("runs");
            assert_eq!(a.crashes, 0, "{target:?}: {:?}", a.unique);
            assert!(a.seeds > 0);
        }
    }
}
