//! `cargo xtask reproduce ID --slurm`: the pending cells of a reproduction as Slurm job arrays,
//! for a cluster whose nodes share the output directory.
//!
//! One submission is three jobs, written as sbatch scripts under `<out>/slurm/<n>/`:
//!
//! 1. `train.sbatch`, an array with one task per unfinished training cell;
//! 2. `measure.sbatch`, an array with one task per unfinished evaluation, α sweep or figure,
//!    started when the training array has ended (`afterany`: each task checks that its own
//!    training cell finished, so one failed training does not hold back the other measurements);
//! 3. `assemble.sbatch`, which writes results.md once both arrays succeeded (`afterok`; cancelled
//!    by Slurm if one failed, `--kill-on-invalid-dep=yes`, rather than left pending forever).
//!
//! A task's array index is its cell's number in `--dry-run`, and the task runs exactly that cell
//! (`cargo xtask reproduce ... --cell NAME`): a finished cell is skipped, a killed training run is
//! resumed from its run directory (also when Slurm requeues a preempted task: the scripts ask for
//! `--requeue`), and a cell held by another live runner is left to it (see [`crate::lock`]).
//! Re-submitting the same command submits only the unfinished cells. The `spat` and `xtask`
//! binaries are copied into `<out>/slurm/bin/` at submission, so a rebuild while jobs wait in the
//! queue does not change what they run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context as _, Result};
use serde::Serialize;

use crate::cell::{finished, Context};
use crate::matrix::{Cell, Job, Scale};
use crate::workspace::spat_binary;

/// The options of `cargo xtask reproduce --slurm`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SlurmArgs {
    /// Submit the unfinished cells to Slurm as job arrays (one task per cell; a last job writes
    /// results.md). The output directory must be on a file system the nodes share.
    #[arg(long, conflicts_with_all = ["devices", "dry_run"])]
    pub slurm: bool,
    /// With --slurm: write the sbatch scripts (and submit.sh, which submits them) and submit nothing.
    #[arg(long, requires = "slurm")]
    pub print: bool,
    /// sbatch --partition of every job.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// sbatch --account of every job.
    #[arg(long, requires = "slurm")]
    pub account: Option<String>,
    /// sbatch --gres of each cell's task (default: gpu:1 when the device is CUDA, none on a CPU).
    #[arg(long, requires = "slurm")]
    pub gres: Option<String>,
    /// sbatch --time of each cell's task, e.g. 08:00:00 or 1-00:00:00.
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// sbatch --cpus-per-task of each cell's task (spat then uses that many threads).
    #[arg(long, requires = "slurm", value_parser = workers)]
    pub cpus_per_task: Option<u32>,
    /// sbatch --mem of each cell's task, e.g. 32G.
    #[arg(long, requires = "slurm")]
    pub mem: Option<String>,
    /// Any other sbatch option for the cells' tasks, e.g. `--sbatch-arg=--qos=high` (repeatable).
    #[arg(long = "sbatch-arg", requires = "slurm", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// One job of a submission.
#[derive(Debug, Serialize)]
pub struct Stage {
    /// `train`, `measure` or `assemble`.
    pub name: &'static str,
    /// The sbatch script written for it.
    pub script: PathBuf,
    /// (number in --dry-run, cell name) of each array task; empty for the assemble job.
    pub cells: Vec<(usize, String)>,
    /// Stages (indices) that must have ended, successfully or not.
    pub after_any: Vec<usize>,
    /// Stages that must have succeeded.
    pub after_ok: Vec<usize>,
    /// Its Slurm job id once submitted.
    pub job_id: Option<String>,
}

/// What `<out>/slurm/<n>/submission.json` records.
#[derive(Debug, Serialize)]
struct Submission<'a> {
    command: String,
    out: &'a Path,
    printed_only: bool,
    stages: &'a [Stage],
}

/// A count of CPUs or processes: positive and within [`spat_spec::limits::WORKERS`].
pub fn workers(s: &str) -> Result<u32, String> {
    let n = spat_spec::limits::parse_count("", s, spat_spec::limits::WORKERS)
        .map_err(|e| e.to_string())?;
    Ok(u32::try_from(n).expect("WORKERS fits in u32"))
}

/// A value that goes into an `#SBATCH` line: one word, one line.
fn check_word(what: &str, v: &str) -> Result<()> {
    ensure!(
        !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{what} `{v}`: an sbatch option value must be one word without spaces"
    );
    Ok(())
}

/// `s` quoted for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Array indices as sbatch writes them: `1-5,7,9-10`.
pub fn array_spec(numbers: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            numbers[i].to_string()
        } else {
            format!("{}-{}", numbers[i], numbers[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// Copies `src` into `dir` as `<name>-<checksum>` (kept if already there); returns its path.
pub(crate) fn install(src: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let bytes = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let dst = dir.join(format!("{name}-{}", spat_spec::Fnv1a::hex_of(&bytes)));
    if !dst.is_file() {
        spat_spec::fs::write_atomic(&dst, &bytes)?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", dst.display()))?;
    }
    Ok(dst)
}

/// A fresh numbered directory `<out>/slurm/<n>/` for one submission.
pub(crate) fn submission_dir(out: &Path) -> Result<PathBuf> {
    let root = out.join("slurm");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    for n in 1.. {
        let dir = root.join(n.to_string());
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("some number is free")
}

/// What every task of a submission runs besides its cell (`--cell K`, or `--assemble`): `xtask
/// reproduce ID --scale S --out OUT --device D [--data-dir DIR] [--skip-missing-data]`.
#[derive(Debug, Clone, Copy)]
pub struct Tasks<'a> {
    /// The table or figure id.
    pub id: &'a str,
    /// The scale.
    pub scale: Scale,
    /// `--data-dir`, if given.
    pub data_dir: Option<&'a Path>,
    /// `--skip-missing-data`: cells whose data is missing are left out, not an error.
    pub skip_missing_data: bool,
}

/// Everything the scripts need that does not depend on the stage.
struct Scripts<'a> {
    options: &'a SlurmArgs,
    tasks: Tasks<'a>,
    ctx: &'a Context,
    out: PathBuf,
    dir: PathBuf,
    xtask: PathBuf,
    spat: PathBuf,
    data_dir: Option<PathBuf>,
    spat_data_dir: Option<PathBuf>,
}

impl<'a> Scripts<'a> {
    /// The scripts of one submission in `dir`, running copies of this xtask and of `spat`
    /// installed in `<out>/slurm/bin/`.
    fn new(options: &'a SlurmArgs, tasks: Tasks<'a>, ctx: &'a Context, dir: &Path) -> Result<Self> {
        let bin = ctx.out.join("slurm").join("bin");
        fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
        fs::create_dir_all(dir.join("logs"))?;
        let spat = spat_binary(ctx.device.starts_with("cuda"))?;
        let xtask = std::env::current_exe().context("finding the xtask binary")?;
        Ok(Scripts {
            options,
            tasks,
            ctx,
            out: ctx.out.clone(),
            dir: dir.to_path_buf(),
            xtask: install(&xtask, &bin, "xtask")?,
            spat: install(&spat, &bin, "spat")?,
            data_dir: tasks.data_dir.map(absolute).transpose()?,
            spat_data_dir: std::env::var_os("SPAT_DATA_DIR")
                .map(|d| absolute(Path::new(&d)))
                .transpose()?,
        })
    }

    /// Writes the training array of the `pending` training cells, the measurement array of the
    /// others, the assemble job and submit.sh; returns the stages in submission order.
    fn write(&self, pending: &[(usize, &Cell)]) -> Result<Vec<Stage>> {
        let named = |pred: fn(&Job) -> bool| -> Vec<(usize, String)> {
            pending
                .iter()
                .filter(|(_, c)| pred(&c.job))
                .map(|(n, c)| (*n, c.name.clone()))
                .collect()
        };
        let mut stages: Vec<Stage> = Vec::new();
        for (name, cells) in [
            ("train", named(|j| matches!(j, Job::Train(_)))),
            ("measure", named(|j| !matches!(j, Job::Train(_)))),
        ] {
            if cells.is_empty() {
                continue;
            }
            let script = self.dir.join(format!("{name}.sbatch"));
            spat_spec::fs::write_atomic(&script, self.array_script(name, &cells).as_bytes())?;
            let after_any = (0..stages.len()).collect();
            stages.push(Stage {
                name,
                script,
                cells,
                after_any,
                after_ok: Vec::new(),
                job_id: None,
            });
        }
        let script = self.dir.join("assemble.sbatch");
        spat_spec::fs::write_atomic(&script, self.assemble_script().as_bytes())?;
        stages.push(Stage {
            name: "assemble",
            script,
            cells: Vec::new(),
            after_any: Vec::new(),
            after_ok: (0..stages.len()).collect(),
            job_id: None,
        });
        let submit_sh = self.dir.join("submit.sh");
        spat_spec::fs::write_atomic(&submit_sh, submit_script(&stages).as_bytes())?;
        Ok(stages)
    }

    /// `cargo xtask reproduce` as a task runs it, without the cell selection.
    fn reproduce_command(&self) -> String {
        let a = self.tasks;
        let mut words = vec![
            sh_quote(&self.xtask.display().to_string()),
            "reproduce".into(),
            sh_quote(a.id),
            "--scale".into(),
            a.scale.to_string(),
            "--out".into(),
            sh_quote(&self.out.display().to_string()),
            "--device".into(),
            sh_quote(&self.ctx.device),
        ];
        if let Some(d) = &self.data_dir {
            words.extend(["--data-dir".into(), sh_quote(&d.display().to_string())]);
        }
        if a.skip_missing_data {
            words.push("--skip-missing-data".into());
        }
        words.join(" ")
    }

    fn header(&self, stage: &str, array: Option<&str>) -> String {
        let s = self.options;
        let mut lines = vec![
            "#!/bin/bash".to_string(),
            format!("#SBATCH --job-name=spat-{}-{stage}", self.tasks.id),
        ];
        let log = self.dir.join("logs");
        match array {
            Some(spec) => {
                lines.push(format!("#SBATCH --array={spec}"));
                lines.push(format!("#SBATCH --output={}/%x-%A_%a.out", log.display()));
                // A requeued task appends to its log instead of truncating it.
                lines.push("#SBATCH --open-mode=append".into());
                lines.push("#SBATCH --requeue".into());
            }
            None => lines.push(format!("#SBATCH --output={}/%x-%j.out", log.display())),
        }
        lines.extend(account_lines(s));
        if array.is_some() {
            lines.extend(task_lines(s, &self.ctx.device));
        } else {
            // Writing results.md reads a few JSON files.
            lines.push("#SBATCH --time=00:10:00".into());
        }
        lines.join("\n")
    }

    fn environment(&self) -> String {
        environment(&self.spat, self.spat_data_dir.as_deref())
    }

    fn array_script(&self, stage: &str, cells: &[(usize, String)]) -> String {
        let numbers: Vec<usize> = cells.iter().map(|(n, _)| *n).collect();
        let mut case = String::new();
        for (n, name) in cells {
            case.push_str(&format!("  {n}) cell={} ;;\n", sh_quote(name)));
        }
        format!(
            "{header}\n\
             #\n\
             # Written by `cargo xtask reproduce {id} --scale {scale} --slurm`. Array task K runs\n\
             # exactly cell K of `--dry-run`: it skips the cell if it is finished, resumes a killed\n\
             # training run (also after a requeue), and waits for another live runner that holds\n\
             # the cell's lock to finish it.\n\
             set -eu\n\
             case \"${{SLURM_ARRAY_TASK_ID:-}}\" in\n\
             {case}  *) echo \"no cell for array task ${{SLURM_ARRAY_TASK_ID:-?}}\" >&2; exit 2 ;;\n\
             esac\n\
             {env}\n\
             {THREADS}\
             exec {cmd} --cell \"$cell\"\n",
            header = self.header(stage, Some(&array_spec(&numbers))),
            id = self.tasks.id,
            scale = self.tasks.scale,
            env = self.environment(),
            cmd = self.reproduce_command(),
        )
    }

    fn assemble_script(&self) -> String {
        format!(
            "{header}\n\
             #\n\
             # Written by `cargo xtask reproduce {id} --scale {scale} --slurm`: writes results.md\n\
             # from the finished cells (and fails naming any that is not).\n\
             set -eu\n\
             {env}\n\
             exec {cmd} --assemble\n",
            header = self.header("assemble", None),
            id = self.tasks.id,
            scale = self.tasks.scale,
            env = self.environment(),
            cmd = self.reproduce_command(),
        )
    }
}

/// The `#SBATCH` lines of every job: --partition and --account.
pub(crate) fn account_lines(s: &SlurmArgs) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = &s.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(a) = &s.account {
        lines.push(format!("#SBATCH --account={a}"));
    }
    lines
}

/// The `#SBATCH` lines of a task that runs `spat` on `device`: its resources (--gres defaults to
/// gpu:1 on CUDA) and the user's other sbatch options.
pub(crate) fn task_lines(s: &SlurmArgs, device: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let gres = s
        .gres
        .clone()
        .or_else(|| device.starts_with("cuda").then(|| "gpu:1".to_string()));
    if let Some(g) = gres {
        lines.push(format!("#SBATCH --gres={g}"));
    }
    if let Some(t) = &s.time {
        lines.push(format!("#SBATCH --time={t}"));
    }
    if let Some(c) = s.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={c}"));
    }
    if let Some(m) = &s.mem {
        lines.push(format!("#SBATCH --mem={m}"));
    }
    lines.extend(s.sbatch_args.iter().map(|a| format!("#SBATCH {a}")));
    lines
}

/// A task script's environment: the installed `spat`, and the data folder as the submitter had it.
pub(crate) fn environment(spat: &Path, spat_data_dir: Option<&Path>) -> String {
    let mut lines = vec![format!(
        "export SPAT_BIN={}",
        sh_quote(&spat.display().to_string())
    )];
    match spat_data_dir {
        Some(d) => lines.push(format!(
            "export SPAT_DATA_DIR={}",
            sh_quote(&d.display().to_string())
        )),
        None => lines.push("unset SPAT_DATA_DIR".into()),
    }
    lines.join("\n")
}

/// Script lines giving spat (candle) as many threads as the task has cores.
pub(crate) const THREADS: &str = "# spat (candle) uses as many threads as the task has cores.
if [ -z \"${RAYON_NUM_THREADS:-}\" ]; then
  n=\"${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-}}\"
  if [ -n \"$n\" ]; then export RAYON_NUM_THREADS=\"$n\"; fi
fi
";

/// The sbatch options that make `stage` wait for the stages it needs; `ids` are their job ids
/// (or shell variables, for submit.sh).
fn dependency_args(stage: &Stage, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut deps = Vec::new();
    if !stage.after_any.is_empty() {
        let list: Vec<&str> = stage.after_any.iter().map(|&i| ids[i].as_str()).collect();
        deps.push(format!("afterany:{}", list.join(":")));
    }
    if !stage.after_ok.is_empty() {
        let list: Vec<&str> = stage.after_ok.iter().map(|&i| ids[i].as_str()).collect();
        deps.push(format!("afterok:{}", list.join(":")));
    }
    if !deps.is_empty() {
        out.push(format!("--dependency={}", deps.join(",")));
    }
    if !stage.after_ok.is_empty() {
        out.push("--kill-on-invalid-dep=yes".into());
    }
    out
}

/// `submit.sh`: the sbatch calls `--slurm` makes, for a submission written with `--print`.
fn submit_script(stages: &[Stage]) -> String {
    let vars: Vec<String> = stages.iter().map(|s| format!("${}", s.name)).collect();
    let mut text = String::from(
        "#!/bin/bash\n# Submits the jobs of this directory in order, as `--slurm` without `--print` does.\nset -eu\n",
    );
    for s in stages {
        let mut words = vec!["sbatch".to_string(), "--parsable".into()];
        words.extend(dependency_args(s, &vars));
        words.push(sh_quote(&s.script.display().to_string()));
        text.push_str(&format!(
            "{n}=$({cmd}); {n}=${{{n}%%;*}}\n",
            n = s.name,
            cmd = words.join(" ")
        ));
    }
    let summary: Vec<String> = stages
        .iter()
        .map(|s| format!("{} ${}", s.name, s.name))
        .collect();
    text.push_str(&format!("echo \"submitted: {}\"\n", summary.join(", ")));
    text
}

pub(crate) fn sbatch(stage: &Stage, ids: &[String]) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .args(dependency_args(stage, ids))
        .arg(&stage.script);
    let out = cmd.output().context(
        "running sbatch: --slurm needs Slurm's client commands on PATH (or use --print)",
    )?;
    ensure!(
        out.status.success(),
        "sbatch {} failed ({}): {}",
        stage.script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch {} printed `{}`, not a job id",
        stage.script.display(),
        text.trim()
    );
    Ok(id)
}

/// Checks the sbatch options and returns `ctx` with its output directory created and absolute,
/// as the scripts name it to the nodes.
pub fn prepare(options: &SlurmArgs, ctx: &Context) -> Result<Context> {
    let s = options;
    for (what, v) in [
        ("--partition", &s.partition),
        ("--account", &s.account),
        ("--gres", &s.gres),
        ("--time", &s.time),
        ("--mem", &s.mem),
    ] {
        if let Some(v) = v {
            check_word(what, v)?;
        }
    }
    for a in &s.sbatch_args {
        check_word("--sbatch-arg", a)?;
        ensure!(
            a.starts_with('-'),
            "--sbatch-arg `{a}`: expected an sbatch option such as --qos=high"
        );
    }
    let out = absolute(&ctx.out)?;
    check_word("--out", &out.display().to_string())
        .context("the output directory's path goes into #SBATCH --output")?;
    fs::create_dir_all(&ctx.out).with_context(|| format!("creating {}", ctx.out.display()))?;
    Ok(Context { out, ..ctx.clone() })
}

/// Writes (and unless `--print`, submits) the jobs of every unfinished cell of `cells`, numbered
/// as in `--dry-run`; `ctx` is [`prepare`]'s.
pub fn submit(options: &SlurmArgs, tasks: Tasks<'_>, cells: &[Cell], ctx: &Context) -> Result<()> {
    let pending: Vec<(usize, &Cell)> = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| !finished(ctx, c))
        .map(|(i, c)| (i + 1, c))
        .collect();
    ensure!(!pending.is_empty(), "no unfinished cell to submit");
    let dir = submission_dir(&ctx.out)?;
    let scripts = Scripts::new(options, tasks, ctx, &dir)?;
    let mut stages = scripts.write(&pending)?;
    let record = Record {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        out: &ctx.out,
        printed_only: options.print,
        path: dir.join("submission.json"),
    };
    record.write(&stages)?;
    if options.print {
        println!(
            "Wrote the sbatch scripts of {} unfinished cells of {} under {}:",
            pending.len(),
            cells.len(),
            dir.display()
        );
        for st in &stages {
            println!("  {} ({})", st.script.display(), describe(st));
        }
        println!(
            "Submit them in order with:\n  bash {}",
            dir.join("submit.sh").display()
        );
        return Ok(());
    }
    let job_ids = sbatch_all(&mut stages, &record)?;
    for st in &stages {
        eprintln!(
            "xtask: submitted {} as Slurm job {} ({})",
            st.script.display(),
            st.job_id.as_deref().unwrap_or("?"),
            describe(st)
        );
    }
    let all = job_ids.join(",");
    eprintln!(
        "xtask: follow with `squeue -j {all}` and `sacct -j {all} --format=JobID,JobName%30,State,ExitCode,Elapsed`; \
         logs in {}; results in {} when job {} completes. Re-running this command submits what did not finish.",
        dir.join("logs").display(),
        ctx.out.join("results.md").display(),
        job_ids.last().expect("the assemble job")
    );
    // The job ids on stdout, for scripts.
    println!("{}", job_ids.join(" "));
    Ok(())
}

/// `<dir>/submission.json`, rewritten as the jobs are submitted.
struct Record<'a> {
    command: String,
    out: &'a Path,
    printed_only: bool,
    path: PathBuf,
}

impl Record<'_> {
    fn write(&self, stages: &[Stage]) -> Result<()> {
        spat_spec::fs::write_json(
            &self.path,
            &Submission {
                command: self.command.clone(),
                out: self.out,
                printed_only: self.printed_only,
                stages,
            },
        )?;
        Ok(())
    }
}

/// What a stage's jobs do, in words.
fn describe(st: &Stage) -> String {
    match st.name {
        "assemble" => "writes results.md once every cell succeeded".to_string(),
        _ => format!(
            "{} tasks, cells {}",
            st.cells.len(),
            array_spec(&st.cells.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        ),
    }
}

/// Submits the stages in order, each after those it depends on, recording each job id as it
/// comes; returns the job ids.
fn sbatch_all(stages: &mut [Stage], record: &Record<'_>) -> Result<Vec<String>> {
    let mut job_ids: Vec<String> = Vec::new();
    for i in 0..stages.len() {
        let id = sbatch(&stages[i], &job_ids).map_err(|e| {
            if job_ids.is_empty() {
                e
            } else {
                e.context(format!(
                    "jobs {} were submitted already (cancel them with scancel, or let them run)",
                    job_ids.join(", ")
                ))
            }
        })?;
        stages[i].job_id = Some(id.clone());
        job_ids.push(id);
        record.write(stages)?;
    }
    Ok(job_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_and_quoting() {
        assert_eq!(array_spec(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(sh_quote("/a/b-c_1.x"), "/a/b-c_1.x");
        assert_eq!(sh_quote("it's here"), r"'it'\''s here'");
        assert_eq!(sh_quote(""), "''");
        assert!(check_word("--time", "1-00:00:00").is_ok());
        assert!(check_word("--time", "1 day").is_err());
        assert!(check_word("--gres", "gpu:1\n#SBATCH --x").is_err());
    }
}
