//! Integration tests of keel-bench (one binary, see STYLE.md §11).

mod sim;
