//! The layer keeps nothing per caller: a storm of 1,000 concurrent callers leaves it holding
//! exactly the bytes a storm of one leaves, with no token (one flow for all of them), with a
//! valid token, and with an expired one (one refresh). Counted with stats_alloc's counting
//! allocator, so this file holds one test (the count is process-wide); everything runs on a
//! current-thread runtime, so the counts are the same from run to run. The `allocations` bench
//! prints the same figures.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "../benches/support/storm.rs"]
mod storm;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes held now, net of everything freed (a reallocation's growth and shrinking are in these
/// two already; `bytes_reallocated` would count them twice).
fn held() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

#[test]
fn a_storm_of_a_thousand_callers_leaves_what_a_storm_of_one_leaves() {
    let (one, many) = storm::held_after_storms_of(1, 1000, held);
    assert_eq!(one, many, "bytes held after a storm grew with its callers");
    // The flow's storm leaves the session it made; the comparison above says nothing if the
    // count saw nothing at all.
    assert!(one.no_token > 0, "{one:?}");
}
