//! `spat visualize`: PNG grid of test images and their adversarial examples (Figures 5.1 / 5.2),
//! true class under each original, the model's prediction under each adversarial image.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use spat_attacks::AttackSpec;
use spat_report::{Canvas, ImageGrid};
use spat_spec::Norm;

use super::common::{
    check_radius, original_rows, output_file, parse_device, parse_radius, pick_rows, save_grid,
    CheckpointArgs,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: CheckpointArgs,
    /// Comma-separated attacks, one group of columns each (Figure 5.1: cw30; Figure 5.2:
    /// pgd20,pgd-ls:0.2,pgd-ls:0.8).
    #[arg(long, default_value = "cw30")]
    pub attacks: String,
    /// The norm of every attack's radius: linf (the thesis's figures) or l2 (FGM, PGD-L2 and
    /// the L2 AutoAttack, as for `eval --norm l2`).
    #[arg(long, default_value = "linf")]
    pub norm: Norm,
    /// Comma-separated radii in --norm, one column per attack and radius (default: Figure 5.1's
    /// 32/255,16/255,8/255 for linf; 2,1,0.5 for l2, RobustBench's CIFAR-10 radius and two
    /// larger ones; Figure 5.2: 32/255).
    #[arg(long, value_parser = parse_radius, allow_hyphen_values = true, value_delimiter = ',')]
    pub eps: Option<Vec<f64>>,
    /// Rows: the first unused test image of each named class (Figure 5.1's rows:
    /// ship,horse,bird,horse,automobile).
    #[arg(
        long,
        default_value = "ship,horse,bird,horse,automobile",
        conflicts_with = "indices"
    )]
    pub classes: String,
    /// Rows: these test-set indices instead of --classes.
    #[arg(long, value_delimiter = ',')]
    pub indices: Option<Vec<usize>>,
    /// Nearest-neighbour magnification, 1 to 32 (default: 4 for 32×32 images, 1 for 96×96).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=32), allow_negative_numbers = true)]
    pub scale: Option<u16>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output PNG file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also print one JSON object describing the grid (indices, labels, predictions).
    #[arg(long)]
    pub json: bool,
}

/// A column's radius as its header shows it: `8/255` where it is a whole number of grey levels
/// in L∞, else the number, with `L2` named so that a figure says which ball it shows.
fn eps_label(e: f64, norm: Norm) -> String {
    let k = e * 255.0;
    match norm {
        Norm::Linf if (k - k.round()).abs() < 1e-6 => format!("{}/255", k.round()),
        Norm::Linf => format!("{e:.4}"),
        Norm::L2 => format!("L2 {e}"),
    }
}

/// `--eps`, or the norm's default radii; each checked against the norm and the images' size.
fn radii(a: &Args) -> Result<Vec<f64>> {
    let radii = a.eps.clone().unwrap_or_else(|| match a.norm {
        Norm::Linf => vec![32.0 / 255.0, 16.0 / 255.0, 8.0 / 255.0],
        Norm::L2 => vec![2.0, 1.0, 0.5],
    });
    for &r in &radii {
        check_radius("--eps", r, a.norm, a.target.dataset)?;
    }
    Ok(radii)
}

pub fn run(a: Args) -> Result<()> {
    let specs: Vec<AttackSpec> = AttackSpec::parse_list(&a.attacks)?
        .into_iter()
        .filter(|s| *s != AttackSpec::Clean)
        .collect();
    if specs.is_empty() {
        bail!("--attacks names no attack (clean alone shows nothing adversarial)");
    }
    let radii = radii(&a)?;
    let device = parse_device(&a.device)?;
    let outputs = output_file("--out", &a.out, spat_report::is_spat_png)?;
    let names = a.target.dataset.class_names();
    let test = a.target.load_test(None)?;
    let rows_ix = pick_rows(a.indices.as_deref(), &a.classes, test.labels(), &names)?;
    let model = a.target.load_model(&device)?;
    let (c, h, w) = test.shape();
    let scale = a.scale.map_or(if w <= 32 { 4 } else { 1 }, usize::from);
    // The grid's size is known before any attack runs: refuse one too large to draw now.
    let blank = Canvas::from_planar(&vec![0; c * h * w], c, h, w).map_err(|e| anyhow!("{e}"))?;
    let columns = 1 + specs.len() * radii.len();
    ImageGrid {
        column_headers: vec!["original".into(); columns],
        rows: vec![vec![(blank, String::new()); columns]; rows_ix.len()],
        scale,
    }
    .size()
    .map_err(|e| anyhow!("--scale {scale}: {e}"))?;
    let batch = test.to_batch(&rows_ix, &device)?;

    let mut headers = vec!["original".to_string()];
    let mut grid = original_rows(&test, &rows_ix, &names)?;
    let mut predictions: Vec<Vec<String>> = vec![Vec::new(); rows_ix.len()];
    let columns =
        spat_attacks::adversarial_columns(&*model, &batch, &specs, &radii, a.norm, a.seed)?;
    for column in &columns {
        let bytes = spat_data::to_u8_images(&column.images)?;
        headers.push(format!("{} {}", column.spec, eps_label(column.eps, a.norm)));
        for (r, row) in grid.iter_mut().enumerate() {
            let img = Canvas::from_planar(&bytes[r * c * h * w..(r + 1) * c * h * w], c, h, w)
                .map_err(|e| anyhow!("{e}"))?;
            let name = names[column.predictions[r] as usize].clone();
            predictions[r].push(name.clone());
            row.push((img, name));
        }
    }
    let labels: Vec<String> = rows_ix
        .iter()
        .map(|&i| names[test.labels()[i] as usize].clone())
        .collect();
    let rows = rows_ix.iter().copied().zip(labels).zip(predictions);
    save_grid(&outputs, &a.out, a.json, headers, grid, scale, rows)
}
