//! Integration tests of keel-bench, one binary (see STYLE.md §11): the harness modes, and the
//! production pipeline on the harness's scenario under faults and the safety switches.

mod faults;
mod harness;
mod safety;
