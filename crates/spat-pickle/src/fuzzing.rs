//! Bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so that the committed corpora are
//! replayed through the same code by ordinary tests on stable (`tests/fuzz_corpus.rs`).

use crate::{torch, Limits, Pickle, Policy, Value};

/// Limits small enough that a fuzzer's inputs cannot make a run slow by sheer size.
fn limits() -> Limits {
    Limits {
        max_interpreter_bytes: 64 << 20,
        max_extra_tensor_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// One pickle under both policies, and every value it built visited through the accessors.
pub fn pickle(data: &[u8]) {
    for policy in [Policy::Refuse, Policy::Opaque] {
        if let Ok((p, used)) = Pickle::load(data, &limits(), policy) {
            assert!(used <= data.len());
            let mut budget = 10_000;
            visit(&p, p.root(), 0, &mut budget);
        }
    }
}

/// Walks `v` (a value graph may share and even contain itself: the walk is bounded in depth
/// and in nodes, as any consumer's must be).
fn visit(p: &Pickle<'_>, v: Value, depth: usize, budget: &mut usize) {
    if depth > 256 || *budget == 0 {
        return;
    }
    *budget -= 1;
    let _ = p.kind(v);
    let _ = (
        p.key(v),
        p.int(v),
        p.bytes(v),
        p.array(v).map(|a| a.integers().len()),
    );
    if let Some(items) = p.items(v) {
        for item in items {
            visit(p, *item, depth + 1, budget);
        }
    }
    if let Some(entries) = p.dict(v) {
        for (k, item) in entries {
            visit(p, *k, depth + 1, budget);
            visit(p, *item, depth + 1, budget);
        }
    }
}

/// A checkpoint of any container, every tensor packed in C order.
pub fn torch_checkpoint(data: &[u8]) {
    if let Ok(c) = torch::read(data, &limits()) {
        for (_, t) in &c.tensors {
            assert_eq!(t.contiguous_bytes().len(), t.numel() * t.dtype.size());
        }
    }
}
