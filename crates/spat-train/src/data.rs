//! The data of a run, read as its [`RunConfig`] describes it.

use std::sync::Arc;

use spat_data::{Augmentation, BatchSource, ImageSet, Loader, MixedLoader, Split};
use spat_spec::RunConfig;

use crate::error::Result;

/// A run's training batches and test set.
pub struct RunData {
    pub train: Box<dyn BatchSource>,
    pub test: ImageSet,
    /// Images of the whole training split, before any `train_subset`.
    pub train_split_len: usize,
}

impl RunData {
    /// `config` as it runs on this data, for `config.json` to record what actually ran: a
    /// `train_subset` or `eval_examples` larger than its split is that split's size (the
    /// subset is then the whole split).
    pub fn fit(&self, config: &RunConfig) -> RunConfig {
        let mut c = config.clone();
        if let Some(n) = c.train_subset {
            c.train_subset = Some(n.min(self.train_split_len));
        }
        if c.eval_examples > self.test.len() {
            c.eval_examples = self.test.len();
        }
        c
    }
}

/// Reads the data of `config`: the training split (a seeded random `train_subset` of it if set),
/// shuffled and augmented with the data set's standard crop and flip, mixed with the pseudo-labelled
/// set in RST's proportions when there is one; and the whole test split (the trainer evaluates the
/// subset `eval_examples` of it).
pub fn load_data(config: &RunConfig) -> Result<RunData> {
    let train = spat_data::load(config.dataset, &config.data_dir, Split::Train)?;
    let train_split_len = train.len();
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
    Ok(RunData {
        train,
        test,
        train_split_len,
    })
}
