//! cuDNN convolutions for CUDA tensors: forward, backward-data and backward-filter.
//!
//! candle 0.11 runs only the forward pass through cuDNN (and re-plans it on every call); its
//! input gradient is a naive transposed-convolution kernel and its kernel gradient another
//! convolution. Here all three directions go to cuDNN, and everything that does not depend on
//! the data is made once per geometry and kept: the handle, the tensor/filter/convolution
//! descriptors and the algorithm of each direction. The workspace is one buffer per device,
//! grown to the largest request; every call is ordered on candle's stream, so one buffer serves
//! them all.
//!
//! Math: `bf16` convolutions accumulate in `f32` (cuDNN's pseudo-bf16 configuration) on tensor
//! cores; `f32` ones may use TF32 tensor cores when [`crate::tf32_enabled`] says so, as PyTorch's
//! `torch.backends.cudnn.allow_tf32` does, and strict FMA math otherwise.

// cuDNN's entry points are foreign calls; cudarc marks their launches `unsafe` because the
// descriptors must match the buffers. Every launch below passes buffers whose dtype and extent
// were checked against the very descriptors built from the same geometry.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, FilterDescriptor,
    TensorDescriptor,
};
use candle_core::cuda_backend::cudarc::cudnn::{sys, CudnnDataType};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType,
};

/// Dtypes this module convolves; others take candle's path.
pub(crate) fn supports(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::BF16)
}

/// Sizes of one convolution `(n, cin, h, w) ⊛ (cout, cin, k, k) → (n, cout, oh, ow)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Geometry {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn out_hw(&self) -> (usize, usize) {
        let o = |len: usize| (len + 2 * self.padding - self.k) / self.stride + 1;
        (o(self.h), o(self.w))
    }
    fn x_dims(&self) -> [usize; 4] {
        [self.n, self.cin, self.h, self.w]
    }
    fn w_dims(&self) -> [usize; 4] {
        [self.cout, self.cin, self.k, self.k]
    }
    fn y_dims(&self) -> [usize; 4] {
        let (oh, ow) = self.out_hw();
        [self.n, self.cout, oh, ow]
    }
}

fn c_int4(d: [usize; 4]) -> [std::ffi::c_int; 4] {
    d.map(|v| v as std::ffi::c_int)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PlanKey {
    device: DeviceId,
    dtype: DType,
    tf32: bool,
    geometry: Geometry,
}

/// Descriptors of one geometry and the algorithm picked for each direction (on first use).
struct Plan<T: CudnnDataType> {
    conv: ConvDescriptor<f32>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
    fwd: Option<(sys::cudnnConvolutionFwdAlgo_t, usize)>,
    bwd_data: Option<(sys::cudnnConvolutionBwdDataAlgo_t, usize)>,
    bwd_filter: Option<(sys::cudnnConvolutionBwdFilterAlgo_t, usize)>,
}

#[derive(Default)]
struct Cache {
    handles: HashMap<DeviceId, Arc<Cudnn>>,
    /// `Plan<T>` for the key's dtype.
    plans: HashMap<PlanKey, Box<dyn Any>>,
    workspaces: HashMap<DeviceId, CudaSlice<u8>>,
}

// cuDNN handles and descriptors are neither `Send` nor `Sync`: one cache per thread, as candle
// keeps its own cuDNN handles.
thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The three directions of a convolution.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// Element types cuDNN convolves here, with the math mode PyTorch would pick for them.
trait ConvElement: CudnnDataType + CudaDType + DeviceRepr + WithDType + 'static {
    fn math(tf32: bool) -> sys::cudnnMathType_t;
}

impl ConvElement for f32 {
    fn math(tf32: bool) -> sys::cudnnMathType_t {
        if tf32 {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        }
    }
}

impl ConvElement for half::bf16 {
    fn math(_: bool) -> sys::cudnnMathType_t {
        sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
    }
}

fn cudnn_err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN: {e}"))
}

fn make_plan<T: ConvElement>(handle: &Arc<Cudnn>, g: &Geometry, tf32: bool) -> Result<Plan<T>> {
    let (s, p) = (g.stride as std::ffi::c_int, g.padding as std::ffi::c_int);
    let mut conv = handle
        .create_conv2d::<f32>(
            [p, p],
            [s, s],
            [1, 1],
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(cudnn_err)?;
    conv.set_math_type(T::math(tf32)).map_err(cudnn_err)?;
    let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    Ok(Plan {
        x: handle
            .create_4d_tensor::<T>(nchw, c_int4(g.x_dims()))
            .map_err(cudnn_err)?,
        w: handle
            .create_4d_filter::<T>(nchw, c_int4(g.w_dims()))
            .map_err(cudnn_err)?,
        y: handle
            .create_4d_tensor::<T>(nchw, c_int4(g.y_dims()))
            .map_err(cudnn_err)?,
        conv,
        fwd: None,
        bwd_data: None,
        bwd_filter: None,
    })
}

/// Runs one direction of the convolution `g` on `device`: `a` and `b` are the two operands of
/// that direction (forward: x, w; backward-data: dy, w; backward-filter: x, dy), both contiguous
/// views starting at their layouts' offsets. Returns the freshly allocated result.
fn run<T: ConvElement>(
    device: &CudaDevice,
    g: Geometry,
    direction: Direction,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let tf32 = crate::tf32_enabled();
    let key = PlanKey {
        device: device.id(),
        dtype: T::DTYPE,
        tf32,
        geometry: g,
    };
    let out_dims = match direction {
        Direction::Forward => g.y_dims(),
        Direction::BackwardData => g.x_dims(),
        Direction::BackwardFilter => g.w_dims(),
    };
    let a_len = a.1.shape().elem_count();
    let b_len = b.1.shape().elem_count();
    let a_view =
        a.0.as_cuda_slice::<T>()?
            .slice(a.1.start_offset()..a.1.start_offset() + a_len);
    let b_view =
        b.0.as_cuda_slice::<T>()?
            .slice(b.1.start_offset()..b.1.start_offset() + b_len);
    // SAFETY: cuDNN overwrites every element of the output (beta = 0 below).
    let mut out = unsafe { device.alloc::<T>(out_dims.iter().product()) }?;
    CACHE.with(|cache| -> Result<()> {
        let mut cache = cache.borrow_mut();
        let cache = &mut *cache;
        let handle = match cache.handles.get(&key.device) {
            Some(h) => h.clone(),
            None => {
                let h = Cudnn::new(device.cuda_stream()).map_err(cudnn_err)?;
                cache.handles.insert(key.device, h.clone());
                h
            }
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.plans.entry(key) {
            slot.insert(Box::new(make_plan::<T>(&handle, &g, tf32)?));
        }
        let plan = cache
            .plans
            .get_mut(&key)
            .and_then(|p| p.downcast_mut::<Plan<T>>())
            .expect("plans are stored under their own dtype");
        let workspaces = &mut cache.workspaces;
        let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
        // Each direction: pick its algorithm on first use, then launch.
        // SAFETY (the three launches): the descriptors were built from `g` and `T`; the views hold
        // exactly the elements of `g`'s operands (checked by the callers' shape checks and the
        // lengths above), the output was allocated with the extent of its descriptor, and the
        // workspace is at least the size cuDNN asked for this algorithm.
        let launched = match direction {
            Direction::Forward => {
                let op = ConvForward {
                    conv: &plan.conv,
                    x: &plan.x,
                    w: &plan.w,
                    y: &plan.y,
                };
                let (algo, size) = match plan.fwd {
                    Some(picked) => picked,
                    None => {
                        let algo = op.pick_algorithm().map_err(cudnn_err)?;
                        *plan
                            .fwd
                            .insert((algo, op.get_workspace_size(algo).map_err(cudnn_err)?))
                    }
                };
                let ws = workspace(workspaces, device, key.device, size)?;
                unsafe { op.launch(algo, Some(ws), (one, zero), &a_view, &b_view, &mut out) }
            }
            Direction::BackwardData => {
                let op = ConvBackwardData {
                    conv: &plan.conv,
                    dx: &plan.x,
                    w: &plan.w,
                    dy: &plan.y,
                };
                let (algo, size) = match plan.bwd_data {
                    Some(picked) => picked,
                    None => {
                        let algo = op.pick_algorithm().map_err(cudnn_err)?;
                        *plan
                            .bwd_data
                            .insert((algo, op.get_workspace_size(algo).map_err(cudnn_err)?))
                    }
                };
                let ws = workspace(workspaces, device, key.device, size)?;
                unsafe { op.launch(algo, Some(ws), (one, zero), &mut out, &b_view, &a_view) }
            }
            Direction::BackwardFilter => {
                let op = ConvBackwardFilter {
                    conv: &plan.conv,
                    x: &plan.x,
                    dw: &plan.w,
                    dy: &plan.y,
                };
                let (algo, size) = match plan.bwd_filter {
                    Some(picked) => picked,
                    None => {
                        let algo = op.pick_algorithm().map_err(cudnn_err)?;
                        *plan
                            .bwd_filter
                            .insert((algo, op.get_workspace_size(algo).map_err(cudnn_err)?))
                    }
                };
                let ws = workspace(workspaces, device, key.device, size)?;
                unsafe { op.launch(algo, Some(ws), (one, zero), &a_view, &mut out, &b_view) }
            }
        };
        launched.map_err(cudnn_err)
    })?;
    Ok(CudaStorage::wrap_cuda_slice(out, device.clone()))
}

/// The device's workspace, grown to at least `needed` bytes.
fn workspace<'a>(
    workspaces: &'a mut HashMap<DeviceId, CudaSlice<u8>>,
    device: &CudaDevice,
    id: DeviceId,
    needed: usize,
) -> Result<&'a mut CudaSlice<u8>> {
    let needed = needed.max(1);
    if workspaces.get(&id).is_none_or(|w| w.len() < needed) {
        // SAFETY: a workspace is scratch memory; cuDNN never reads what it did not write.
        workspaces.insert(id, unsafe { device.alloc::<u8>(needed) }?);
    }
    Ok(workspaces.get_mut(&id).expect("inserted above"))
}

fn dispatch(
    g: Geometry,
    direction: Direction,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    for (s, l) in [a, b] {
        if !l.is_contiguous() {
            candle_core::bail!("cuDNN conv: operands must be contiguous");
        }
        if s.dtype() != a.0.dtype() {
            candle_core::bail!("cuDNN conv: operands differ in dtype");
        }
    }
    let device = a.0.device.clone();
    let out = match a.0.dtype() {
        DType::F32 => run::<f32>(&device, g, direction, a, b)?,
        DType::BF16 => run::<half::bf16>(&device, g, direction, a, b)?,
        other => candle_core::bail!("cuDNN conv: unsupported dtype {other:?}"),
    };
    let dims = match direction {
        Direction::Forward => g.y_dims(),
        Direction::BackwardData => g.x_dims(),
        Direction::BackwardFilter => g.w_dims(),
    };
    Ok((out, Shape::from(dims.to_vec())))
}

fn no_cpu(what: &str) -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("{what} runs on CUDA tensors only")
}

/// Forward convolution `(x, kernel) → y` through cuDNN; backward as [`crate::conv::conv2d_grads`].
pub(crate) struct CudnnConv2d {
    pub stride: usize,
    pub padding: usize,
}

impl CustomOp2 for CudnnConv2d {
    fn name(&self) -> &'static str {
        "cudnn-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        no_cpu("cudnn-conv2d")
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (&[n, cin, h, w], &[cout, _, k, _]) = (xl.dims(), wl.dims()) else {
            candle_core::bail!("cudnn-conv2d: expected 4-D input and kernel");
        };
        let g = Geometry {
            n,
            cin,
            h,
            w,
            cout,
            k,
            stride: self.stride,
            padding: self.padding,
        };
        dispatch(g, Direction::Forward, (xs, xl), (ws, wl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        crate::conv::conv2d_grads(x, kernel, grad, self.stride, self.padding)
    }
}

/// `(dy, kernel) → dx` through cuDNN (first-order only: it runs inside a backward pass).
pub(crate) struct CudnnBackwardData {
    x_hw: (usize, usize),
    stride: usize,
    padding: usize,
}

impl CudnnBackwardData {
    pub(crate) fn new(x_dims: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let &[_, _, h, w] = x_dims else {
            candle_core::bail!("cudnn backward-data: expected a 4-D input, got {x_dims:?}");
        };
        Ok(Self {
            x_hw: (h, w),
            stride,
            padding,
        })
    }
}

impl CustomOp2 for CudnnBackwardData {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-backward-data"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        no_cpu("cudnn-conv2d-backward-data")
    }

    fn cuda_fwd(
        &self,
        gs: &CudaStorage,
        gl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (&[n, cout, _, _], &[kout, cin, k, _]) = (gl.dims(), wl.dims()) else {
            candle_core::bail!("cudnn backward-data: expected 4-D gradient and kernel");
        };
        if cout != kout {
            candle_core::bail!(
                "cudnn backward-data: gradient {:?} vs kernel {:?}",
                gl.dims(),
                wl.dims()
            );
        }
        let g = Geometry {
            n,
            cin,
            h: self.x_hw.0,
            w: self.x_hw.1,
            cout,
            k,
            stride: self.stride,
            padding: self.padding,
        };
        if g.y_dims() != [n, cout, gl.dims()[2], gl.dims()[3]] {
            candle_core::bail!(
                "cudnn backward-data: gradient {:?} does not match {g:?}",
                gl.dims()
            );
        }
        dispatch(g, Direction::BackwardData, (gs, gl), (ws, wl))
    }
}

/// `(x, dy) → dkernel` through cuDNN (first-order only: it runs inside a backward pass).
pub(crate) struct CudnnBackwardFilter {
    k: usize,
    stride: usize,
    padding: usize,
}

impl CudnnBackwardFilter {
    pub(crate) fn new(kernel_dims: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let &[_, _, k, k2] = kernel_dims else {
            candle_core::bail!("cudnn backward-filter: expected a 4-D kernel, got {kernel_dims:?}");
        };
        if k != k2 {
            candle_core::bail!("cudnn backward-filter: kernel {kernel_dims:?} is not square");
        }
        Ok(Self { k, stride, padding })
    }
}

impl CustomOp2 for CudnnBackwardFilter {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-backward-filter"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        no_cpu("cudnn-conv2d-backward-filter")
    }

    fn cuda_fwd(
        &self,
        xs: &CudaStorage,
        xl: &Layout,
        gs: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (&[n, cin, h, w], &[gn, cout, _, _]) = (xl.dims(), gl.dims()) else {
            candle_core::bail!("cudnn backward-filter: expected 4-D input and gradient");
        };
        let g = Geometry {
            n,
            cin,
            h,
            w,
            cout,
            k: self.k,
            stride: self.stride,
            padding: self.padding,
        };
        if gn != n || g.y_dims() != [n, cout, gl.dims()[2], gl.dims()[3]] {
            candle_core::bail!(
                "cudnn backward-filter: gradient {:?} does not match {g:?}",
                gl.dims()
            );
        }
        dispatch(g, Direction::BackwardFilter, (xs, xl), (gs, gl))
    }
}
