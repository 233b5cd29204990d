//! Transformed kernels of constant convolution weights, kept while the weights are unchanged.
//!
//! An attack runs 10–20 forward and backward passes through weights that do not change, and
//! Winograd's path transforms every layer's kernels on every call (`U = G g Gᵀ`, for the forward
//! and, from the turned kernels, for the input gradient). This cache keeps each transform per
//! weight tensor and form, and serves it again only while it is certainly the transform of the
//! weights as they are now:
//!
//! * **Only constant kernels are cached**: a kernel that tracks a gradient (a training pass) is
//!   about to be changed by its optimiser, so its transform is computed and not kept.
//! * **Identity**: an entry is found by the address and length of the kernel's elements, the
//!   geometry and the form, and it holds a clone of the kernel tensor. While the entry lives,
//!   that storage cannot be freed, so no other tensor can come to have its address: a weight
//!   tensor dropped and another allocated in its place (a new model) is a different entry.
//! * **Unchanged elements**: every change to any tensor's elements takes a write lock on its
//!   storage, which the vendored candle-core counts ([`candle_core::storage_writes`],
//!   `vendor/candle-core/SPAT-PATCH.md`). The count is read while the kernel's storage is
//!   locked for reading (the caller holds it); an entry is served only if the count has not
//!   moved since the entry was made, so one optimiser step, `Var::set` or in-place op anywhere
//!   in the process retires every entry. That over-invalidates (any write retires all), which
//!   costs a recomputation and never a stale value.
//!
//! Entries past [`BUDGET_BYTES`] are dropped least recently used first. A transform is a pure
//! function of the kernel, so a hit gives the same bits as a recomputation: the cache never
//! changes a result, only when it is computed.

use std::sync::{Arc, Mutex};

use candle_core::Tensor;

/// Bytes of transformed kernels kept at most (ResNet-18's Winograd layers need about 150 MB
/// for both forms).
const BUDGET_BYTES: usize = 1 << 30;

/// Which transform of the kernel an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Winograd's `U` of the kernels as they are.
    Winograd,
    /// Winograd's `U` of the kernels turned by 180° with input and output channels swapped
    /// (the forward convolution that computes the layer's input gradient).
    WinogradTurned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    address: usize,
    len: usize,
    /// `(C_in, C_out)` of the convolution the transform is for.
    channels: (usize, usize),
    form: Form,
}

struct Entry {
    key: Key,
    /// Keeps the kernel's storage, and so its address, from being reused while the entry lives.
    _pinned: Tensor,
    /// [`candle_core::storage_writes`] when the transform was computed.
    writes: u64,
    value: Arc<Vec<f32>>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

/// A constant kernel as the cache sees it: its elements, which must be the contiguous
/// elements of `tensor`'s storage, read under a read lock the caller holds for as long as it
/// uses the result.
#[derive(Clone, Copy)]
pub(crate) struct Constant<'a> {
    pub tensor: &'a Tensor,
    pub data: &'a [f32],
}

/// The transform `form` of `kernel` for a convolution of `channels = (C_in, C_out)`: from the
/// cache if it holds it for these very elements, else `compute()` (kept when `kernel` is a
/// constant).
pub(crate) fn transformed(
    kernel: Option<Constant<'_>>,
    channels: (usize, usize),
    form: Form,
    compute: impl FnOnce() -> Vec<f32>,
) -> Arc<Vec<f32>> {
    let Some(kernel) = kernel else {
        return Arc::new(compute());
    };
    let key = Key {
        address: kernel.data.as_ptr() as usize,
        len: kernel.data.len(),
        channels,
        form,
    };
    // Under the caller's read lock on the kernel's storage (see the module's comment).
    let writes = candle_core::storage_writes();
    if let Some(hit) = lookup(key, writes) {
        #[cfg(test)]
        HITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return hit;
    }
    let value = Arc::new(compute());
    insert(key, kernel.tensor, writes, &value);
    value
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

fn lookup(key: Key, writes: u64) -> Option<Arc<Vec<f32>>> {
    let mut cache = lock();
    // A write since an entry was made retires it for good: the count only grows.
    cache.entries.retain(|e| e.writes == writes);
    cache.clock += 1;
    let now = cache.clock;
    let entry = cache.entries.iter_mut().find(|e| e.key == key)?;
    entry.last_used = now;
    Some(Arc::clone(&entry.value))
}

fn insert(key: Key, tensor: &Tensor, writes: u64, value: &Arc<Vec<f32>>) {
    let bytes = |v: &Vec<f32>| v.len() * std::mem::size_of::<f32>();
    if bytes(value) > BUDGET_BYTES {
        return;
    }
    let mut cache = lock();
    cache.entries.retain(|e| e.writes == writes && e.key != key);
    let mut total: usize = cache.entries.iter().map(|e| bytes(&e.value)).sum();
    while total + bytes(value) > BUDGET_BYTES {
        let Some(oldest) = (0..cache.entries.len()).min_by_key(|&i| cache.entries[i].last_used)
        else {
            break;
        };
        total -= bytes(&cache.entries.swap_remove(oldest).value);
    }
    cache.clock += 1;
    let last_used = cache.clock;
    cache.entries.push(Entry {
        key,
        _pinned: tensor.clone(),
        writes,
        value: Arc::clone(value),
        last_used,
    });
}

/// Transforms served from the cache so far (tests).
#[cfg(test)]
pub(crate) static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
