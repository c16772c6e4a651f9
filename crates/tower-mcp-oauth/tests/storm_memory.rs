//! The layer keeps nothing per caller: a storm of 1,000 concurrent callers leaves it holding
//! exactly the bytes a storm of one leaves, with no token (one flow for all of them), with a
//! valid token, and with an expired one (one refresh). Counted with stats_alloc's counting
//! allocator, which counts the whole process, so this is a test binary of its own with no test
//! harness (`harness = false`: the harness's threads allocate too); everything runs on a
//! current-thread runtime, so the counts are the same from run to run. The `allocations` bench
//! prints the same figures.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "../benches/support/storm.rs"]
mod storm;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Callers in the large storm.
const STORM: usize = 1000;

fn main() {
    let (one, many, in_flight) = storm::held_after_storms_of(1, STORM, GLOBAL);
    // A storm whose callers ran one after another would prove nothing.
    assert_eq!(
        in_flight, STORM,
        "the storm's requests were not all in flight at once"
    );
    assert_eq!(one, many, "bytes held after a storm grew with its callers");
    // The flow's storm leaves the session it made: a count that saw nothing would pass the
    // comparison above.
    assert!(one.no_token > 0, "{one:?}");
    println!("storm_memory: storms of 1 and of {STORM} callers each left {one:?} ({in_flight} requests in flight at once): ok");
}
