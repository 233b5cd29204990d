use candle_core::{Device, Tensor};

/// One mini-batch: `images` are `f32` in `[0, 1]`, shape `(N, C, H, W)`; `labels` are `u32`, shape `(N,)`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, `f32` in `[0, 1]`, shape `(N, C, H, W)`.
    pub images: Tensor,
    /// Class labels, `u32`, shape `(N,)`.
    pub labels: Tensor,
}

impl Batch {
    /// A batch of `images` and their `labels`; an error unless `labels` has shape `(N,)` for `N`
    /// images.
    pub fn new(images: Tensor, labels: Tensor) -> candle_core::Result<Self> {
        let n = images.dim(0)?;
        if labels.dims() != [n] {
            candle_core::bail!(
                "batch has {n} images but labels of shape {:?}",
                labels.dims()
            );
        }
        Ok(Self { images, labels })
    }

    /// Number of images `N`.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// True if the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the images are on.
    pub fn device(&self) -> &Device {
        self.images.device()
    }

    /// The same batch copied to `device` (a no-op copy of handles when it is already there).
    pub fn to_device(&self, device: &Device) -> candle_core::Result<Self> {
        Ok(Self {
            images: self.images.to_device(device)?,
            labels: self.labels.to_device(device)?,
        })
    }
}
