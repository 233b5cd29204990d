//! The data of a run, read as its [`RunConfig`] describes it.

use std::sync::Arc;

use spat_data::{Augmentation, BatchSource, ImageSet, Loader, MixedLoader, Split};
use spat_spec::RunConfig;

use crate::error::{Error, Result};

/// A run's training batches, its held-out validation split (if any) and its test set.
pub struct RunData {
    /// Training batches: shuffled and augmented per the configuration, mixed with pseudo-labelled
    /// images for RST, without the validation hold-out.
    pub train: Box<dyn BatchSource>,
    /// `val_subset` training images held out of `train` (evaluated after each epoch, and the
    /// set `best.safetensors` is chosen on).
    pub validation: Option<ImageSet>,
    /// The test split (its first `test_subset` images when one is configured).
    pub test: ImageSet,
    /// Images of the training split less the validation hold-out, before any `train_subset`.
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

/// The labelled training images of a run, divided as the run divides them.
pub struct TrainingSplit {
    /// The seeded validation split of `val_subset` images, never trained on (`None` without
    /// `val_subset`).
    pub validation: Option<ImageSet>,
    /// The labelled images trained on: the rest of the split, or its seeded `train_subset`.
    pub train: ImageSet,
    /// Images of the training split less the validation hold-out, before any `train_subset`.
    pub train_split_len: usize,
    /// Images of the whole training split.
    pub whole: usize,
}

/// The training split of `config`'s data divided as the run divides it: a seeded validation
/// split of `val_subset` images if set, then a seeded random `train_subset` of what remains if
/// set. Both [`load_data`] and `spat eval --validation-of RUN` call it, so that evaluating a
/// run's checkpoints on its validation split sees exactly the images its per-epoch evaluation
/// saw.
pub fn training_split(config: &RunConfig) -> Result<TrainingSplit> {
    let train = spat_data::load(config.dataset, &config.data_dir, Split::Train)?;
    let whole = train.len();
    let (validation, rest) = match config.val_subset {
        Some(n) if n >= whole => {
            return Err(Error::Config(format!(
                "--val-subset {n} (val_subset): a validation split of {n} images leaves none of \
                 the {whole} training images of {} to train on; hold out fewer",
                train.source().display()
            )))
        }
        Some(n) => {
            let (val, rest) = train.hold_out(n, config.seed);
            (Some(val), rest)
        }
        None => (None, train),
    };
    let train_split_len = rest.len();
    let train = match config.train_subset {
        Some(n) => rest.sample(n, config.seed),
        None => rest,
    };
    Ok(TrainingSplit {
        validation,
        train,
        train_split_len,
        whole,
    })
}

/// Reads the data of `config`: its [`training_split`], the images to train on shuffled and
/// augmented with the data set's standard crop and flip, mixed with the pseudo-labelled set in
/// RST's proportions when there is one; and the whole test split (the trainer evaluates the
/// subset `eval_examples` of it).
///
/// With pseudo-labelled data an epoch is as many batches as the whole training set before the
/// hold-out fills (semisup-adv `robust_self_training.py` lines 234-240 fix an epoch at 50,000
/// images whatever the data), or the `train_subset` if one is asked for.
pub fn load_data(config: &RunConfig) -> Result<RunData> {
    let TrainingSplit {
        validation,
        train,
        train_split_len,
        whole,
    } = training_split(config)?;
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
        train_split_len,
    })
}
