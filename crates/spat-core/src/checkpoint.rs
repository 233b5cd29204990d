//! Weights files of any origin: spat's safetensors, or a PyTorch `torch.save` file (zip, legacy
//! or tar container, read by `spat-pickle` without running its pickle), into a [`VarStore`].
//!
//! Names are fitted to the network the way published checkpoints need: a `module.` (from
//! `nn.DataParallel`) or `model.` prefix shared by every tensor is stripped; `sub_block1.*`, the
//! block TRADES' WideResNet builds and never uses, and GradAlign's `model_preact_hl1.*` aliases
//! are dropped when the network has no such variables; RobustBench-style `mu` / `sigma` (or
//! `mean` / `std`) input-normalisation buffers are taken out and returned as [`Normalization`];
//! a missing BN `num_batches_tracked` (files from PyTorch before 0.4.1) keeps the network's own
//! value. Everything else is strict.
//!
//! Every path that loads weights (safetensors or torch.save; `eval`, `convert`, `train --init`,
//! a resumed run) goes through the same validation: a tensor name present twice is refused
//! (the reader reports what the file holds, never a silent "last wins"); names and shapes are
//! checked against the network before any tensor's values are read, so a small file declaring
//! huge tensors allocates nothing; the values are then checked by [`crate::store::validate`]
//! (finite floats, batch-norm running variances >= 0) and the input normalisation by
//! [`Normalization::new`] (finite means, standard deviations > 0), the rules `--normalize` is
//! held to. Errors name the file and the tensor.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use spat_pickle::torch::{self, DType as RawDType, RawTensor};

use crate::error::{Error, Result};
use crate::normalize::Normalization;
use crate::store::{check_unique, VarStore};

/// What a weights file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// A safetensors file (spat's own format, and Hugging Face's).
    Safetensors,
    /// A `torch.save` file in one of its three containers.
    Torch(torch::Format),
}

impl CheckpointFormat {
    /// The format in words, for notes and errors (`safetensors`, `torch.save zip`, ...).
    pub fn describe(self) -> &'static str {
        match self {
            CheckpointFormat::Safetensors => "safetensors",
            CheckpointFormat::Torch(f) => f.describe(),
        }
    }
}

/// Named tensors read from a weights file, with notes on how they were found.
#[derive(Debug)]
pub struct Checkpoint {
    /// What the file was.
    pub format: CheckpointFormat,
    /// In file order (safetensors: sorted by name), on the CPU, dtypes as stored (int8 and
    /// bool, which candle lacks, widened to int64 and uint8).
    pub tensors: Vec<(String, Tensor)>,
    /// What a user should know about how the tensors were found (wrapper entry unwrapped, entries
    /// ignored).
    pub notes: Vec<String>,
}

/// What loading a checkpoint into a network did besides copying weights.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// What the file was.
    pub format: CheckpointFormat,
    /// One line each: wrapper used, prefix stripped, tensors dropped, defaults kept.
    pub notes: Vec<String>,
    /// Input normalisation the file carries and the network does not declare.
    pub normalization: Option<Normalization>,
}

/// A tensor as a weights file stores it: its shape is known, its values are read only on
/// [`Stored::load`].
enum Stored<'a> {
    Safetensors(safetensors::tensor::TensorView<'a>),
    Torch(RawTensor<'a>),
}

impl Stored<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Stored::Safetensors(v) => v.shape(),
            Stored::Torch(t) => &t.shape,
        }
    }

    fn numel(&self) -> usize {
        self.shape().iter().fold(1, |n, &d| n.saturating_mul(d))
    }

    /// The values, as a CPU tensor.
    fn load(&self) -> candle_core::Result<Tensor> {
        match self {
            Stored::Safetensors(v) => candle_core::safetensors::Load::load(v, &Device::Cpu),
            Stored::Torch(t) => to_candle(t),
        }
    }

    /// The values as `f32`s if the tensor is small enough to be an input normalisation.
    fn normalization_values(&self) -> Option<Vec<f32>> {
        if self.numel() > MAX_NORMALIZATION_VALUES {
            return None;
        }
        values(&self.load().ok()?)
    }
}

/// The most values an input normalisation tensor (`mu`, `sigma`) may hold: one per channel.
const MAX_NORMALIZATION_VALUES: usize = 1024;

/// A tensor's values as `f32`s.
fn values(t: &Tensor) -> Option<Vec<f32>> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .ok()
}

/// The tensors of a weights file as stored, in file order, not yet read.
struct StoredState<'a> {
    format: CheckpointFormat,
    tensors: Vec<(String, Stored<'a>)>,
    notes: Vec<String>,
}

fn checkpoint_error(path: &Path, message: String) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    }
}

/// Parses `bytes` (read from `path`) as safetensors or torch.save without reading any tensor's
/// values, and refuses a name present twice.
fn read_stored<'a>(bytes: &'a [u8], path: &Path) -> Result<StoredState<'a>> {
    let fail = |message: String| checkpoint_error(path, message);
    let state = if looks_like_safetensors(bytes) {
        let st = crate::store::deserialize_safetensors(bytes, path)?;
        let mut tensors: Vec<(String, Stored<'a>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, Stored::Safetensors(v)))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        StoredState {
            format: CheckpointFormat::Safetensors,
            tensors,
            notes: Vec::new(),
        }
    } else {
        let Some(format) = torch::Format::sniff(bytes) else {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Err(fail(format!(
                "not a weights file spat reads: expected safetensors or a PyTorch torch.save \
                 file (zip, legacy or tar); it starts with bytes {}",
                if head.is_empty() {
                    "(none: the file is empty)".to_string()
                } else {
                    head.join(" ")
                }
            )));
        };
        let raw = torch::read(bytes, &spat_pickle::Limits::default())
            .map_err(|e| fail(format!("{}: {e}", format.describe())))?;
        let tensors: Vec<(String, Stored<'a>)> = raw
            .tensors
            .into_iter()
            .map(|(n, t)| (n, Stored::Torch(t)))
            .collect();
        check_unique(tensors.iter().map(|(n, _)| n.as_str()), path)?;
        StoredState {
            format: CheckpointFormat::Torch(format),
            tensors,
            notes: raw.notes,
        }
    };
    Ok(state)
}

/// Reads a weights file of any supported format onto the CPU, names as in the file (after
/// unwrapping a PyTorch checkpoint dict).
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = spat_spec::fs::read_input(path).map_err(|e| Error::io(path, e))?;
    let stored = read_stored(&bytes, path)?;
    let mut tensors = Vec::with_capacity(stored.tensors.len());
    for (name, t) in &stored.tensors {
        tensors.push((name.clone(), load(name, t, path)?));
    }
    Ok(Checkpoint {
        format: stored.format,
        tensors,
        notes: stored.notes,
    })
}

/// The values of the stored tensor `name`.
fn load(name: &str, t: &Stored<'_>, path: &Path) -> Result<Tensor> {
    t.load()
        .map_err(|e| checkpoint_error(path, format!("tensor `{name}` cannot be read ({e})")))
}

/// safetensors: an 8-byte little-endian header length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9
        && bytes[8] == b'{'
        && u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) <= bytes.len() as u64 - 8
}

/// A CPU tensor with the raw tensor's values (C order).
fn to_candle(t: &RawTensor<'_>) -> candle_core::Result<Tensor> {
    let data = t.contiguous_bytes();
    let shape = t.shape.as_slice();
    let widen = |f: &dyn Fn(&[u8]) -> i64, size: usize| -> candle_core::Result<Tensor> {
        let v: Vec<i64> = data.chunks_exact(size).map(f).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    };
    let dtype = match t.dtype {
        RawDType::Bool => {
            let v: Vec<u8> = data.iter().map(|&b| (b != 0) as u8).collect();
            return Tensor::from_vec(v, shape, &Device::Cpu);
        }
        RawDType::I8 => return widen(&|b: &[u8]| b[0] as i8 as i64, 1),
        RawDType::U8 => DType::U8,
        RawDType::I16 => DType::I16,
        RawDType::I32 => DType::I32,
        RawDType::I64 => DType::I64,
        RawDType::F16 => DType::F16,
        RawDType::BF16 => DType::BF16,
        RawDType::F32 => DType::F32,
        RawDType::F64 => DType::F64,
    };
    Tensor::from_raw_buffer(&data, dtype, shape, &Device::Cpu)
}

/// Names that RobustBench-style wrappers give their input normalisation, (mean, std) pairs.
const NORMALIZATION_NAMES: &[(&str, &str)] = &[("mu", "sigma"), ("mean", "std")];
/// Prefixes a wrapped network's names carry (`nn.DataParallel`, wrapper modules).
const PREFIXES: &[&str] = &["module.", "model."];
/// Tensors some published checkpoints carry besides their network's, by prefix, with why they
/// may be dropped: the block TRADES' (and RobustBench's) WideResNet builds but never runs, and
/// GradAlign's `model_preact_hl1`, a second name for `conv1` and `layer1.0.bn1` (Andriushchenko
/// et al. 2020; RobustBench loads it leaving them out).
const UNUSED_BLOCKS: &[(&str, &str)] = &[
    (
        "sub_block1.",
        "a block TRADES' WideResNet builds but never uses in forward",
    ),
    (
        "model_preact_hl1.",
        "GradAlign's second name for conv1 and layer1.0.bn1",
    ),
];

/// What [`fit_names`] made of a file's tensors.
pub struct Fitted<T> {
    /// The tensors the network (if any) is to take, under its names.
    pub tensors: Vec<(String, T)>,
    /// One line per change made.
    pub notes: Vec<String>,
    /// The input normalisation taken out of the tensors, checked as [`Normalization::new`]
    /// checks `--normalize`.
    pub normalization: Option<Normalization>,
}

/// Fits checkpoint names to `store`'s (see the module documentation); `values` gives a
/// candidate normalisation tensor's values (`None`: too large to be one). `origin` names the
/// file in errors.
pub fn fit_names<T>(
    tensors: Vec<(String, T)>,
    store: Option<&VarStore>,
    origin: &Path,
    values: impl Fn(&T) -> Option<Vec<f32>>,
) -> Result<Fitted<T>> {
    let mut notes = Vec::new();
    let declared: HashSet<&str> = store.map_or_else(HashSet::new, |s| {
        s.iter().map(|(n, _, _)| n).collect::<HashSet<_>>()
    });
    let is_norm = |n: &str| NORMALIZATION_NAMES.iter().any(|(m, s)| n == *m || n == *s);
    let mut tensors = tensors;
    // Strip a prefix every (non-normalisation) name has, unless the network itself uses it.
    loop {
        let stripped = PREFIXES.iter().find(|p| {
            let mut names = tensors
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !is_norm(n));
            let mut any = false;
            let all = names.all(|n| {
                any = true;
                n.starts_with(**p)
            });
            any && all && !declared.iter().any(|d| d.starts_with(**p))
        });
        let Some(p) = stripped else { break };
        for (n, _) in &mut tensors {
            if !is_norm(n) {
                *n = n[p.len()..].to_string();
            }
        }
        notes.push(format!("stripped the `{p}` prefix from every tensor name"));
    }
    // Stripping cannot make two names equal unless the file held both forms of one.
    check_unique(tensors.iter().map(|(n, _)| n.as_str()), origin)?;
    let mut normalization = None;
    for (m, s) in NORMALIZATION_NAMES {
        if declared.contains(m) || declared.contains(s) {
            continue;
        }
        let find = |name: &str| tensors.iter().position(|(n, _)| n == name);
        let (Some(mi), Some(si)) = (find(m), find(s)) else {
            continue;
        };
        let bad = |message: String| {
            checkpoint_error(
                origin,
                format!("the input normalisation `{m}`/`{s}` {message}"),
            )
        };
        let (Some(mean), Some(std)) = (values(&tensors[mi].1), values(&tensors[si].1)) else {
            return Err(bad(format!(
                "cannot be read as at most {MAX_NORMALIZATION_VALUES} values (one per input \
                 channel)"
            )));
        };
        let n = Normalization::new(mean, std).map_err(|e| bad(format!("is refused: {e}")))?;
        notes.push(format!(
            "the checkpoint normalises its input: `{m}` = {:?}, `{s}` = {:?} (taken out of the \
             weights; an evaluation must apply it)",
            n.mean, n.std
        ));
        normalization = Some(n);
        let (hi, lo) = (mi.max(si), mi.min(si));
        tensors.remove(hi);
        tensors.remove(lo);
        break;
    }
    for (prefix, why) in UNUSED_BLOCKS {
        if declared.iter().any(|d| d.starts_with(prefix)) {
            continue;
        }
        let before = tensors.len();
        tensors.retain(|(n, _)| !n.starts_with(prefix));
        let dropped = before - tensors.len();
        if dropped > 0 {
            notes.push(format!("dropped {dropped} `{prefix}*` tensors ({why})"));
        }
    }
    Ok(Fitted {
        tensors,
        notes,
        normalization,
    })
}

impl VarStore {
    /// Loads any supported weights file (see the module documentation) strictly into the store,
    /// after fitting its names; nothing is assigned unless every tensor passes, and no tensor's
    /// values are read unless every name and shape fits.
    pub fn load_checkpoint(&self, path: &Path) -> Result<LoadReport> {
        let bytes = spat_spec::fs::read_input(path).map_err(|e| Error::io(path, e))?;
        let stored = read_stored(&bytes, path)?;
        let fitted = fit_names(
            stored.tensors,
            Some(self),
            path,
            Stored::normalization_values,
        )?;
        let mut notes = stored.notes;
        notes.extend(fitted.notes);
        let given: HashSet<&str> = fitted.tensors.iter().map(|(n, _)| n.as_str()).collect();
        // Counters absent from a file that has their BN layer's statistics.
        let missing_counters: Vec<String> = self
            .iter()
            .filter_map(|(n, _, _)| {
                let layer = n.strip_suffix(".num_batches_tracked")?;
                let stats = format!("{layer}.running_mean");
                (!given.contains(n) && given.contains(stats.as_str())).then(|| n.to_string())
            })
            .collect();
        let mut shapes: Vec<(&str, &[usize])> = fitted
            .tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.shape()))
            .collect();
        for n in &missing_counters {
            let dims = self.get(n).expect("declared").dims();
            shapes.push((n, dims));
        }
        if let Some(m) = self.mismatch(&shapes, path) {
            return Err(Error::Mismatch(Box::new(m)));
        }
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (n, t) in &fitted.tensors {
            map.insert(n.clone(), load(n, t, path)?);
        }
        if !missing_counters.is_empty() {
            notes.push(format!(
                "{} BN `num_batches_tracked` counters are not in the file (PyTorch < 0.4.1); \
                 kept at the network's values",
                missing_counters.len()
            ));
            for n in missing_counters {
                // A copy: a variable cannot be set from its own storage.
                let v = self.get(&n).expect("declared").as_tensor().copy()?;
                map.insert(n, v);
            }
        }
        self.assign(map, path)?;
        Ok(LoadReport {
            format: stored.format,
            notes,
            normalization: fitted.normalization,
        })
    }
}

/// What [`convert_checkpoint`] wrote.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// What the input file was.
    pub format: CheckpointFormat,
    /// Number of tensors written.
    pub tensors: usize,
    /// One line each: wrapper used, prefix stripped, tensors dropped.
    pub notes: Vec<String>,
}

/// Writes any supported weights file as spat's safetensors: names fitted without a network
/// (prefixes stripped, `sub_block1.*` dropped; `mu`/`sigma` kept, so loading the output finds
/// them again), floats as f32 and integers as i64, every tensor validated as loading validates
/// it. Refuses to overwrite an existing `output`.
pub fn convert_checkpoint(input: &Path, output: &Path) -> Result<ConvertReport> {
    let outputs = spat_spec::fs::Outputs::new("output").file(output, spat_spec::fs::Own::Never);
    outputs.check()?;
    let ckpt = read_checkpoint(input)?;
    let fitted = fit_names(ckpt.tensors, None, input, values)?;
    let mut notes = ckpt.notes;
    notes.extend(fitted.notes);
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (n, t) in fitted.tensors {
        let t = if t.dtype().is_float() {
            t.to_dtype(DType::F32)?
        } else {
            t.to_dtype(DType::I64)?
        };
        crate::store::validate(&n, &t, input)?;
        out.insert(n, t);
    }
    if let Some(norm) = fitted.normalization {
        // Kept under the names the loader looks for.
        let k = norm.mean.len();
        out.insert(
            "mu".into(),
            Tensor::from_vec(norm.mean, (1, k, 1, 1), &Device::Cpu)?,
        );
        let k = norm.std.len();
        out.insert(
            "sigma".into(),
            Tensor::from_vec(norm.std, (1, k, 1, 1), &Device::Cpu)?,
        );
    }
    let n = out.len();
    crate::store::save_tensors(&out, output)?;
    Ok(ConvertReport {
        format: ckpt.format,
        tensors: n,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    fn store() -> VarStore {
        let mut s = VarStore::new(&Device::Cpu);
        s.add_parameter("bn.weight", t(&[1., 1.])).unwrap();
        s.add_buffer("bn.running_mean", t(&[0., 0.])).unwrap();
        s.add_buffer(
            "bn.num_batches_tracked",
            Tensor::new(0i64, &Device::Cpu).unwrap(),
        )
        .unwrap();
        s
    }

    #[test]
    fn old_files_without_counters_load_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.safetensors");
        let tensors: HashMap<String, Tensor> = [
            ("module.bn.weight".to_string(), t(&[2., 3.])),
            ("module.bn.running_mean".to_string(), t(&[0.5, 0.25])),
        ]
        .into();
        crate::store::save_tensors(&tensors, &p).unwrap();
        let s = store();
        let r = s.load_checkpoint(&p).unwrap();
        let notes = r.notes.join(" | ");
        assert!(notes.contains("`module.` prefix"), "{notes}");
        assert!(notes.contains("1 BN `num_batches_tracked`"), "{notes}");
        let w = s
            .get("bn.weight")
            .unwrap()
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(w, vec![2., 3.]);
    }

    #[test]
    fn a_prefix_the_network_itself_uses_is_kept() {
        let mut s = VarStore::new(&Device::Cpu);
        s.add_parameter("model.w", t(&[1.])).unwrap();
        let f = fit_names(
            vec![("model.w".into(), t(&[2.]))],
            Some(&s),
            Path::new("x"),
            values,
        )
        .unwrap();
        assert_eq!(f.tensors[0].0, "model.w");
        assert!(f.notes.is_empty(), "{:?}", f.notes);
    }

    #[test]
    fn unreadable_files_say_what_they_start_with() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pt");
        std::fs::write(&p, b"GIF89a....").unwrap();
        let m = read_checkpoint(&p).unwrap_err().to_string();
        assert!(m.contains("x.pt") && m.contains("47 49 46 38"), "{m}");
        std::fs::write(&p, b"").unwrap();
        let m = read_checkpoint(&p).unwrap_err().to_string();
        assert!(m.contains("the file is empty"), "{m}");
        // A legacy head with a truncated body names the part and the problem.
        std::fs::write(&p, b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46").unwrap();
        let m = read_checkpoint(&p).unwrap_err().to_string();
        assert!(
            m.contains("legacy PyTorch checkpoint") && m.contains("truncated"),
            "{m}"
        );
    }
}
