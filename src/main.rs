//! `keel`: the command-line binary that wires feeds, engine and router.
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {}
