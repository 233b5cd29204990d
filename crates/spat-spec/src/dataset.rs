//! The labelled data sets spat reads, and their official binary layouts.
//!
//! * CIFAR-10 (`cifar-10-batches-bin`): `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`;
//!   records of 3,073 bytes: label (0..9), then 1,024 red, 1,024 green, 1,024 blue bytes, each
//!   plane 32x32 row-major.
//! * CIFAR-100 (`cifar-100-binary`): `train.bin`, `test.bin`; records of 3,074 bytes: coarse label
//!   (0..19), fine label (0..99), then the same 3,072 pixel bytes.
//! * STL-10 (`stl10_binary`): `{train,test}_X.bin` hold 96x96x3 images of 27,648 bytes, each channel
//!   a 96x96 plane stored column-major (MATLAB order); `{train,test}_y.bin` hold one byte per image,
//!   labels 1..10.
//! * RST's pseudo-labelled TinyImages: one pickle, [`PSEUDO_LABELED_FILE`].
//!
//! Record counts come from file sizes, never from constants: [`Dataset::official_count`] is what
//! the complete official files hold, for cost estimates and reports only.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Bytes of one CIFAR image (3 planes of 32x32).
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one CIFAR-10 record: the label, then the image.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR_IMAGE_BYTES;
/// Bytes of one CIFAR-100 record: coarse label, fine label, then the image.
pub const CIFAR100_RECORD_BYTES: usize = 2 + CIFAR_IMAGE_BYTES;
/// Side of an STL-10 image.
pub const STL10_SIDE: usize = 96;
/// Bytes of one STL-10 image in `*_X.bin`.
pub const STL10_IMAGE_BYTES: usize = 3 * STL10_SIDE * STL10_SIDE;
/// RST's 500k pseudo-labelled TinyImages (yaircarmon/semisup-adv), as its README names it.
pub const PSEUDO_LABELED_FILE: &str = "ti_500K_pseudo_labeled.pickle";

/// Per-channel `(mean, std)` of an input normalisation `(x − mean) / std`.
pub type ChannelStatistics = ([f32; 3], [f32; 3]);

/// The labelled image-classification data sets spat reads in their official binary layouts.
/// Serialised as `"cifar10"`, `"cifar100"`, `"stl10"` (the same names as `Display` / `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// CIFAR-10: 50,000 training and 10,000 test 32×32 colour images, 10 classes.
    Cifar10,
    /// CIFAR-100: 50,000 training and 10,000 test 32×32 colour images, 100 fine classes.
    Cifar100,
    /// STL-10: 5,000 labelled training and 8,000 test 96×96 colour images, 10 classes.
    Stl10,
}

impl Dataset {
    /// Every data set, in the order `--help` lists them.
    pub const ALL: [Dataset; 3] = [Dataset::Cifar10, Dataset::Cifar100, Dataset::Stl10];

    /// The name on the command line and in files (`cifar10`, `cifar100`, `stl10`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
            Dataset::Stl10 => "stl10",
        }
    }

    /// Number of classes (CIFAR-100: the 100 fine labels).
    /// Per-channel mean and standard deviation of the training images, as RobustBench's models
    /// use them (`dm_wide_resnet.py`'s `CIFAR10_MEAN`/`STD` and `CIFAR100_MEAN`/`STD`); STL-10
    /// takes CIFAR-10's, the default of RobustBench's DeepMind networks.
    pub fn channel_statistics(self) -> ChannelStatistics {
        match self {
            Dataset::Cifar10 | Dataset::Stl10 => {
                ([0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616])
            }
            Dataset::Cifar100 => ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
        }
    }

    /// Number of classes (10, 100 or 10).
    pub fn num_classes(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Stl10 => 10,
            Dataset::Cifar100 => 100,
        }
    }

    /// Class names in label order (CIFAR-100: fine labels; see [`cifar100_coarse_class_names`]).
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            Dataset::Cifar10 => &CIFAR10_CLASSES,
            Dataset::Cifar100 => &CIFAR100_FINE_CLASSES,
            Dataset::Stl10 => &STL10_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Name of the folder the official archive unpacks to.
    pub const fn dir_name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar-10-batches-bin",
            Dataset::Cifar100 => "cifar-100-binary",
            Dataset::Stl10 => "stl10_binary",
        }
    }

    /// The files of `split` inside [`Dataset::dir_name`], in reading order. CIFAR-10's training
    /// split may also be `data_batch_1.bin` alone (the embedded sample); STL-10's are the images,
    /// then the labels.
    pub fn files(self, split: Split) -> &'static [&'static str] {
        match (self, split) {
            (Dataset::Cifar10, Split::Train) => &[
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            (Dataset::Cifar10, Split::Test) => &["test_batch.bin"],
            (Dataset::Cifar100, Split::Train) => &["train.bin"],
            (Dataset::Cifar100, Split::Test) => &["test.bin"],
            (Dataset::Stl10, Split::Train) => &["train_X.bin", "train_y.bin"],
            (Dataset::Stl10, Split::Test) => &["test_X.bin", "test_y.bin"],
        }
    }

    /// `(C, H, W)` of one image.
    pub fn image_shape(self) -> (usize, usize, usize) {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => (3, 32, 32),
            Dataset::Stl10 => (3, STL10_SIDE, STL10_SIDE),
        }
    }

    /// Images in the complete official files of `split` (STL-10: the labelled splits).
    pub fn official_count(self, split: Split) -> usize {
        match (self, split) {
            (Dataset::Stl10, Split::Train) => 5_000,
            (Dataset::Stl10, Split::Test) => 8_000,
            (_, Split::Train) => 50_000,
            (_, Split::Test) => 10_000,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cifar10" => Ok(Dataset::Cifar10),
            "cifar100" => Ok(Dataset::Cifar100),
            "stl10" => Ok(Dataset::Stl10),
            _ => Err(Error::Invalid(format!(
                "unknown data set `{s}` (expected one of: cifar10, cifar100, stl10)"
            ))),
        }
    }
}

/// Which half of a data set (serialised as `"train"` / `"test"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

impl FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(Error::Invalid(format!(
                "unknown split `{s}` (expected train or test)"
            ))),
        }
    }
}

/// The 20 CIFAR-100 superclass names, in coarse-label order.
pub fn cifar100_coarse_class_names() -> Vec<String> {
    CIFAR100_COARSE_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const STL10_CLASSES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];

const CIFAR100_COARSE_CLASSES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

// Fine labels are numbered in alphabetical order of their names (as in `fine_label_names.txt`).
const CIFAR100_FINE_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_counts_match() {
        for d in Dataset::ALL {
            assert_eq!(d.to_string().parse::<Dataset>().unwrap(), d);
            assert_eq!(d.class_names().len(), d.num_classes());
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
        }
        let mut sorted = Dataset::Cifar100.class_names();
        sorted.sort();
        assert_eq!(
            sorted,
            Dataset::Cifar100.class_names(),
            "fine names are alphabetical"
        );
        assert_eq!(cifar100_coarse_class_names().len(), 20);
        let err = "mnist".parse::<Dataset>().unwrap_err().to_string();
        assert!(err.contains("mnist") && err.contains("cifar100"), "{err}");
        assert_eq!("TEST".parse::<Split>().unwrap(), Split::Test);
    }

    #[test]
    fn record_sizes_are_the_published_layouts() {
        // 30,730,000-byte CIFAR-10 batches of 10,000 records; 27,648-byte STL-10 images.
        assert_eq!(CIFAR10_RECORD_BYTES * 10_000, 30_730_000);
        assert_eq!(CIFAR100_RECORD_BYTES, 3_074);
        assert_eq!(STL10_IMAGE_BYTES, 27_648);
    }
}
