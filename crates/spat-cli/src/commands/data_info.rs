use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Data set: cifar10 | cifar100 | stl10.
    #[arg(long)]
    pub dataset: String,
    /// Directory holding the data set's official files.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("data-info: not wired yet")
}
