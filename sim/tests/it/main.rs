//! Integration tests of keel-sim, one binary (see STYLE.md §11): the simulated market against the
//! production feeds and router, and the chain tests against real anvil.

mod chain;
mod sim;
