//! The data of a run, read as its [`RunConfig`] describes it.

use std::sync::Arc;

use spat_data::{Augmentation, BatchSource, ImageSet, Loader, MixedLoader, Split};
use spat_spec::RunConfig;

use crate::error::Result;

/// A run's training batches and test set.
pub struct RunData {
    pub train: Box<dyn BatchSource>,
    pub test: ImageSet,
}

/// Reads the data of `config`: the training split (a seeded random `train_subset` of it if set),
/// shuffled and augmented with the data set's standard crop and flip, mixed with the pseudo-labelled
/// set in RST's proportions when there is one; and the whole test split (the trainer evaluates the
/// subset `eval_examples` of it).
pub fn load_data(config: &RunConfig) -> Result<RunData> {
    let train = spat_data::load(config.dataset, &config.data_dir, Split::Train)?;
    let train = match config.train_subset {
        Some(n) => train.sample(n, config.seed),
        None => train,
    };
    let test = spat_data::load(config.dataset, &config.data_dir, Split::Test)?;
    let aug = Augmentation::for_dataset(config.dataset);
    let train: Box<dyn BatchSource> = match &config.pseudo_labeled {
        Some(p) => Box::new(MixedLoader::new(
            Arc::new(train),
            Arc::new(spat_data::load_pseudo_labeled(&p.path)?),
            config.batch_size,
            p.fraction,
            config.seed,
            aug,
        )?),
        None => Box::new(
            Loader::new(Arc::new(train), config.batch_size)
                .shuffled(config.seed)
                .augmented(aug),
        ),
    };
    Ok(RunData { train, test })
}
