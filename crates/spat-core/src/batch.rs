use candle_core::{Device, Tensor};

/// One mini-batch: `images` are `f32` in `[0, 1]`, shape `(N, C, H, W)`; `labels` are `u32`, shape `(N,)`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Batch {
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

    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> &Device {
        self.images.device()
    }

    pub fn to_device(&self, device: &Device) -> candle_core::Result<Self> {
        Ok(Self {
            images: self.images.to_device(device)?,
            labels: self.labels.to_device(device)?,
        })
    }
}
