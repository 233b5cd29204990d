//! The `f32` data of CPU tensors as plain slices, for spat's CPU kernels (`conv::cpu`, `bn`, `linear`, `add_relu`, `silu`).

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
