//! keel-engine's integration tests, one binary (`no_alloc` is separate: it needs its own global
//! allocator).

mod index;
