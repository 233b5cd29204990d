//! The `f32` data of CPU tensors as plain slices, for spat's CPU kernels (`conv::cpu`, `bn`, `linear`, `add_relu`, `silu`),
//! and the buffers their outputs are written into.
// `output_buffer` hands out a buffer whose elements are not initialised (see there).
#![allow(unsafe_code)]

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The contiguous `f32` elements `layout` selects from `storage`; `op` and `what` name the
/// kernel and the argument in the error.
pub(crate) fn slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
    what: &str,
) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: {what} is not contiguous"),
    }
}

/// Runs `f` on the contiguous `f32` data of the CPU tensor `t` (copying only if it is strided).
pub(crate) fn with_slice<R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[f32]) -> Result<R>,
) -> Result<R> {
    let t = if t.is_contiguous() {
        t.clone()
    } else {
        t.contiguous()?
    };
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!(
            "{op}: CPU kernel given a tensor on {:?}",
            t.device().location()
        );
    };
    f(slice(cpu, layout, op, "tensor")?)
}

/// A buffer of `len` elements for an output that its kernel writes in full before anything
/// reads it (every element by a store, none by an addition into it).
///
/// `vec![0.0; len]` would first write zeros over the whole output, which the kernel then
/// writes again: `perf` put that `memset` at 7.5–8.7 % of a one-thread WRN-16-2 PGD-20 step
/// (bench/NOTES.md, section 14), as the outputs come from the process's retained heap, not
/// from fresh zero pages. In this crate's unit tests the elements start as NaN instead, so that
/// an element a kernel leaves unwritten fails the tests' comparisons with the definitions.
///
/// A `Vec<f32>` of unwritten elements is what clippy's `uninit_vec` warns of: Rust has not
/// settled whether uninitialised `f32`s are sound before they are read. candle's CPU backend,
/// which spat's tensors live in, allocates every output this way (`alloc_uninit`, citing
/// rust-clippy#4483), and spat's kernels only store into these buffers before returning them.
#[allow(clippy::uninit_vec)]
pub(crate) fn output_buffer(len: usize) -> Vec<f32> {
    if cfg!(test) {
        return vec![f32::NAN; len];
    }
    let mut v = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; every bit pattern is a valid `f32`; and by this function's
    // contract the caller stores every element before the buffer is read or returned (candle's
    // own CPU backend allocates its outputs the same way).
    unsafe { v.set_len(len) };
    v
}
