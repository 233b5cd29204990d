//! `spat model-info`: parameter, buffer and FLOP counts of a named network (counted by a dry
//! build: no weight is drawn), what a RobustBench entry builds, and the RobustBench table.

use anyhow::Result;
use spat_spec::dataset::ChannelStatistics;
use spat_spec::robustbench::{entries, Entry, EntryNetwork};
use spat_spec::{Dataset, ModelName};

#[derive(clap::Args)]
pub struct Args {
    /// Network: wrn-D-W (TRADES layout; wrn-34-10 §6.1.1, wrn-28-10 §6.1.2),
    /// dm-wrn-D-W[-relu|-silu|-swish], dm-preact-resnet-18|34[-ACT], resnet-18 (§6.1.3),
    /// resnet-50 (§6.2), preact-resnet-18[-input-shortcut][-final-bn], tiny, or
    /// rb:[DATASET/][LEADERBOARD/]NAME for a RobustBench entry (e.g. rb:Wang2023Better_WRN-28-10).
    #[arg(required_unless_present = "list_robustbench")]
    pub model: Option<String>,
    /// Number of output classes (default: 100 for a CIFAR-100 RobustBench entry, else 10).
    #[arg(long, value_parser = super::common::count(spat_spec::limits::CLASSES))]
    pub classes: Option<usize>,
    /// Print one JSON object `{"parameters", "buffers", "flops"}` (with --list-robustbench, one
    /// array of `{"entry", "architecture", "normalization", "unsupported"}`).
    #[arg(long)]
    pub json: bool,
    /// List every RobustBench CIFAR-10/100 L∞ and L2 entry with the network spat builds for it,
    /// or why it builds none.
    #[arg(long, conflicts_with = "model")]
    pub list_robustbench: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Some(model) = &args.model else {
        return list_robustbench(args.json);
    };
    let name: ModelName = model.parse()?;
    let ModelName::RobustBench(reference) = &name else {
        return print_size(
            &name,
            None,
            args.classes.unwrap_or(10),
            args.json,
            |canonical| {
                if canonical.to_string() != *model {
                    println!("{model} is {canonical}");
                }
                if let Some((mean, std)) = canonical.input_normalization(Dataset::Cifar10)? {
                    println!(
                    "normalises its input inside the model with the data set's statistics \
                     (CIFAR-10: mean {mean:?}, std {std:?}) unless the weights file carries its own"
                );
                }
                Ok(())
            },
        );
    };
    // --classes picks the data set among entries of one name; the text lists every entry.
    let dataset = match args.classes {
        Some(100) => Some(Dataset::Cifar100),
        Some(_) => Some(Dataset::Cifar10),
        None => None,
    };
    if args.json {
        let entry = reference.resolve(dataset)?;
        return print_size(
            &name,
            Some(entry),
            entry.dataset.num_classes(),
            true,
            |_| Ok(()),
        );
    }
    let candidates = reference.candidates(dataset);
    for &entry in &candidates {
        if let EntryNetwork::Unsupported { reason } = entry.network {
            println!("rb:{}: not built by spat: {reason}", entry.key());
            continue;
        }
        let classes = entry.dataset.num_classes();
        print_size(&name, Some(entry), classes, false, |canonical| {
            println!(
                "rb:{} is {canonical}{}",
                entry.key(),
                normalization_text(entry)
            );
            Ok(())
        })?;
    }
    // Naming only entries spat cannot build is an error, after saying why.
    if !candidates.iter().any(|e| e.architecture().is_ok()) {
        reference.resolve(dataset)?.architecture()?;
    }
    Ok(())
}

/// Prints the size of `name` (an `entry`'s network if given), after `describe`'s lines.
fn print_size(
    name: &ModelName,
    entry: Option<&Entry>,
    classes: usize,
    json: bool,
    describe: impl FnOnce(&ModelName) -> Result<()>,
) -> Result<()> {
    let canonical = match entry {
        Some(e) => e.architecture()?,
        None => name.clone(),
    };
    let info = spat_models::Architecture::from_name(&canonical, None, classes)?.info()?;
    if json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    describe(&canonical)?;
    println!(
        "{canonical} ({classes} classes): {} parameters, {} buffer elements, {:.3} GFLOPs per \
         3x32x32 image",
        info.parameters,
        info.buffers,
        info.flops as f64 / 1e9
    );
    Ok(())
}

fn normalization_text(e: &Entry) -> String {
    match e.network {
        EntryNetwork::Supported {
            normalization: Some((mean, std)),
            ..
        } => format!(
            ", fed (x - mean) / std with mean {mean:?}, std {std:?} unless the file carries its own"
        ),
        _ => ", fed pixels as they are".to_string(),
    }
}

#[derive(serde::Serialize)]
struct Row {
    entry: String,
    architecture: Option<&'static str>,
    normalization: Option<ChannelStatistics>,
    unsupported: Option<&'static str>,
}

fn list_robustbench(json: bool) -> Result<()> {
    let rows: Vec<Row> = entries()
        .iter()
        .map(|e| match e.network {
            EntryNetwork::Supported {
                architecture,
                normalization,
            } => Row {
                entry: format!("rb:{}", e.key()),
                architecture: Some(architecture),
                normalization,
                unsupported: None,
            },
            EntryNetwork::Unsupported { reason } => Row {
                entry: format!("rb:{}", e.key()),
                architecture: None,
                normalization: None,
                unsupported: Some(reason),
            },
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    for r in &rows {
        match (r.architecture, r.unsupported) {
            (Some(a), _) => println!("{:<60} {a}", r.entry),
            (None, Some(why)) => println!("{:<60} not built: {why}", r.entry),
            (None, None) => {}
        }
    }
    Ok(())
}
