#[derive(clap::Args)]
pub struct Args {
    /// cifar10 | cifar100 | stl10 | ti500k
    pub dataset: String,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("fetch-data: not written yet")
}
