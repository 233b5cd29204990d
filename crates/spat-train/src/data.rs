//! The data of a run, read as its [`RunConfig`] describes it.

use std::sync::Arc;

use spat_data::{Augmentation, BatchSource, ImageSet, Loader, MixedLoader, Split};
use spat_spec::RunConfig;

use crate::error::Result;

/// A run's training batches, its held-out validation split (if any) and its test set.
pub struct RunData {
    pub train: Box<dyn BatchSource>,
    /// `val_subset` training images held out of `train` (evaluated after each epoch, and the
    /// set `best.safetensors` is chosen on).
    pub validation: Option<ImageSet>,
    pub test: ImageSet,
}

/// Reads the data of `config`: the training split less a seeded validation split of
/// `val_subset` images if set, then a seeded random `train_subset` of what remains if set,
/// shuffled and augmented with the data set's standard crop and flip, mixed with the
/// pseudo-labelled set in RST's proportions when there is one; and the whole test split (the
/// trainer evaluates the subset `eval_examples` of it).
///
/// With pseudo-labelled data an epoch is as many batches as the whole training set before the
/// hold-out fills (semisup-adv `robust_self_training.py` lines 234-240 fix an epoch at 50,000
/// images whatever the data), or the `train_subset` if one is asked for.
pub fn load_data(config: &RunConfig) -> Result<RunData> {
    let train = spat_data::load(config.dataset, &config.data_dir, Split::Train)?;
    let whole = train.len();
    let (validation, train) = match config.val_subset {
        Some(n) => {
            let (val, rest) = train.hold_out(n, config.seed);
            (Some(val), rest)
        }
        None => (None, train),
    };
    let train = match config.train_subset {
        Some(n) => train.sample(n, config.seed),
        None => train,
    };
    let epoch_images = config.train_subset.map_or(whole, |_| train.len());
    let test = spat_data::load(config.dataset, &config.data_dir, Split::Test)?;
    let aug = Augmentation::for_dataset(config.dataset);
    let train: Box<dyn BatchSource> = match &config.pseudo_labeled {
        Some(p) => Box::new(
            MixedLoader::new(
                Arc::new(train),
                Arc::new(spat_data::load_pseudo_labeled(&p.path)?),
                config.batch_size,
                p.fraction,
                config.seed,
                aug,
            )?
            .with_num_batches(epoch_images.div_ceil(config.batch_size)),
        ),
        None => Box::new(
            Loader::new(Arc::new(train), config.batch_size)
                .shuffled(config.seed)
                .augmented(aug),
        ),
    };
    Ok(RunData {
        train,
        validation,
        test,
    })
}
