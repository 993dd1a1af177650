//! Proof that the common metric path allocates nothing: a counting global
//! allocator (this test binary only) counts the heap allocations made on the
//! test's own thread while it transforms messages into a reused buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use monasca_persister::transform::{Target, Transformer};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // try_with: the allocator also runs while thread locals are torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations made on this thread by `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

const MESSAGES: u64 = 10_000;

fn metric(i: u64, value_meta: &str) -> String {
    format!(
        r#"{{"metric": {{"name": "cpu.idle_perc", "dimensions": {{"hostname": "host-{}", "service": "monitoring", "component": "collector", "device": "sda{}", "mount_point": "/var/lib"}}, "timestamp": {}, "value": {}.25, "value_meta": {value_meta}}}, "meta": {{"region": "RegionOne", "tenantId": "0123456789abcdef0123456789abcdef"}}, "creation_time": 1554725988}}"#,
        i % 50,
        i % 4,
        1_554_725_987_408 + i,
        i % 100
    )
}

fn transformer(db_per_tenant: bool) -> Transformer {
    Transformer::new("mon", db_per_tenant)
}

/// Runs every message once to size the buffer, then counts allocations of
/// a second pass that clears the buffer between flushes as a consumer would.
fn allocations_per_pass(t: &Transformer, messages: &[String]) -> u64 {
    let mut out = Vec::new();
    for m in messages {
        t.metric(m.as_bytes(), &mut out)
            .unwrap_or_else(|e| panic!("{m}: {e}"));
    }
    let capacity = out.len();
    out.clear();
    let count = allocations_in(|| {
        for m in messages {
            let target = t.metric(m.as_bytes(), &mut out);
            assert!(matches!(target, Ok(Target::Shared) | Ok(Target::Tenant(_))));
            if out.len() > capacity / 2 {
                out.clear();
            }
        }
    });
    assert!(!out.is_empty() || messages.is_empty());
    count
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_in(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);
}

#[test]
fn common_metrics_allocate_nothing() {
    let messages: Vec<String> = (0..MESSAGES).map(|i| metric(i, "null")).collect();
    let shared = allocations_per_pass(&transformer(false), &messages);
    let per_tenant = allocations_per_pass(&transformer(true), &messages);
    println!("allocations per common metric: shared {shared}/{MESSAGES}, db_per_tenant {per_tenant}/{MESSAGES}");
    assert_eq!(
        shared, 0,
        "{shared} allocations for {MESSAGES} common metric messages"
    );
    assert_eq!(
        per_tenant, 0,
        "{per_tenant} allocations for {MESSAGES} common metric messages (db_per_tenant)"
    );
}

#[test]
fn metrics_with_a_small_value_meta_allocate_nothing_either() {
    let messages: Vec<String> = (0..MESSAGES)
        .map(|i| {
            metric(
                i,
                r#"{"status": "ok", "detail": "disk \"sda\" at 93%", "code": 2}"#,
            )
        })
        .collect();
    let n = allocations_per_pass(&transformer(false), &messages);
    println!("allocations per metric with value_meta: {n}/{MESSAGES}");
    assert_eq!(
        n, 0,
        "{n} allocations for {MESSAGES} metric messages with a flat value_meta"
    );
}
