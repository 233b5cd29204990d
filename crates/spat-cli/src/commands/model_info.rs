//! `spat model-info`: parameter, buffer and FLOP counts of a model preset.

#[derive(clap::Args)]
pub struct Args {
    /// Model preset: wrn-34-10 (§6.1.1), wrn-28-10 (§6.1.2), resnet-18 (§6.1.3), resnet-50 (§6.2),
    /// preact-resnet-18, wrn-16-2, tiny (CPU smoke runs).
    pub preset: String,
    /// Number of output classes (10 for CIFAR-10 / STL-10, 100 for CIFAR-100).
    #[arg(long, default_value_t = 10, value_parser = super::common::count(spat_spec::limits::CLASSES))]
    pub classes: usize,
    /// Print one JSON object `{"parameters", "buffers", "flops"}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let info = spat_models::model_info(&args.preset, args.classes)?;
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!(
            "{} ({} classes): {} parameters, {} buffer elements, {:.3} GFLOPs per 3x32x32 image",
            args.preset,
            args.classes,
            info.parameters,
            info.buffers,
            info.flops as f64 / 1e9
        );
    }
    Ok(())
}
