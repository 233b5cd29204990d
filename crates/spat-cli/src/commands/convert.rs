//! `spat convert`: any weights file spat reads (a PyTorch torch.save checkpoint, or safetensors)
//! as spat's safetensors, names fitted as loading fits them.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The weights file: a torch.save checkpoint (.pt/.pth; zip, legacy or tar; a bare state dict
    /// or one under state_dict/model/net) or safetensors.
    pub input: PathBuf,
    /// The safetensors file to write; an existing file is never overwritten.
    pub output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let report = spat_core::convert_checkpoint(&a.input, &a.output)
        .with_context(|| format!("converting {}", a.input.display()))?;
    println!(
        "{} ({}): {} tensors written to {}",
        a.input.display(),
        report.format.describe(),
        report.tensors,
        a.output.display()
    );
    for note in &report.notes {
        println!("  note: {note}");
    }
    Ok(())
}
