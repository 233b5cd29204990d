//! RST's `ti_500K_pseudo_labeled.pickle`, read with `spat-pickle`'s interpreter, which never
//! runs code: it evaluates only the numpy constructors a pickled dict of arrays names
//! (`numpy.core.multiarray._reconstruct` + `BUILD`, `numpy.dtype`, protocol 5's `_frombuffer`,
//! numpy scalars, `_codecs.encode`) and, with [`Policy::Refuse`], refuses any other global
//! (`os.system`, `builtins.eval`, ...) with an error naming the file, the byte offset and the
//! global. Nesting depth and interpreter memory are bounded ([`Limits`]).

use std::path::Path;

use spat_pickle::{Limits, Pickle, Policy, Value};

use crate::error::{Error, Result};
use crate::image_set::ImageSet;

/// Number of classes of the pseudo-labels (RST's data are pseudo-labelled with CIFAR-10 classes).
const PSEUDO_LABEL_CLASSES: usize = 10;
const SIDE: usize = 32;
const CHANNELS: usize = 3;

/// Loads RST's pseudo-labelled TinyImages pickle: a dict whose `data` is a `uint8` array of shape
/// `(N, 32, 32, 3)` (HWC) and whose `extrapolated_targets` holds `N` integer labels in `0..10`.
/// Other keys (e.g. `ti_index`, `prediction_model`) are read and ignored. Images are returned
/// planar CHW like every other [`ImageSet`].
pub fn load_pseudo_labeled(path: &Path) -> Result<ImageSet> {
    let bytes = match spat_spec::fs::read_input(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Missing {
                path: path.to_path_buf(),
                hint: "download ti_500K_pseudo_labeled.pickle from the link in the README of \
                       yaircarmon/semisup-adv (`cargo xtask fetch-data ti500k` prints where \
                       to get it and where to put it)"
                    .into(),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    parse_pseudo_labeled(&bytes, path)
}

/// [`load_pseudo_labeled`] on the bytes of a file; `path` names it in errors.
pub fn parse_pseudo_labeled(bytes: &[u8], path: &Path) -> Result<ImageSet> {
    let (p, _) = Pickle::load(bytes, &Limits::default(), Policy::Refuse).map_err(|e| match e {
        spat_pickle::Error::Pickle {
            offset, message, ..
        } => Error::Pickle {
            path: path.to_path_buf(),
            offset,
            message,
        },
        spat_pickle::Error::Format(m) => Error::format(path, m),
    })?;
    let root = p.root();
    let fail = |message: String| Error::format(path, message);
    if p.dict(root).is_none() {
        return Err(fail(format!(
            "top-level object is {}, expected a dict with `data` and `extrapolated_targets`",
            p.kind(root)
        )));
    }
    let get = |key: &str| {
        p.get(root, key)
            .ok_or_else(|| fail(format!("the dict has no `{key}` entry")))
    };
    let data = get("data")?;
    let targets = get("extrapolated_targets")?;

    let data = p.array(data).ok_or_else(|| {
        fail(format!(
            "`data` is {}, expected a numpy array",
            p.kind(data)
        ))
    })?;
    let shape_ok = data.shape.len() == 4
        && data.shape[1..] == [SIDE, SIDE, CHANNELS]
        && data.dtype.kind == b'u'
        && data.dtype.size == 1;
    if !shape_ok {
        return Err(fail(format!(
            "`data` is a {} array of shape {:?}, expected uint8 of shape (N, 32, 32, 3)",
            data.dtype.name(),
            data.shape
        )));
    }
    if data.fortran {
        return Err(fail(
            "`data` is stored in Fortran order; expected C order".into(),
        ));
    }
    let n = data.shape[0];

    let labels: Vec<i64> = match targets {
        Value::List(_) => p
            .items(targets)
            .expect("a list")
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i),
                other => Err(fail(format!(
                    "`extrapolated_targets` holds {}, expected integers",
                    p.kind(*other)
                ))),
            })
            .collect::<Result<_>>()?,
        other => {
            let a = p.array(other).ok_or_else(|| {
                fail(format!(
                    "`extrapolated_targets` is {}, expected an integer numpy array",
                    p.kind(other)
                ))
            })?;
            if a.shape.len() != 1 || !matches!(a.dtype.kind, b'i' | b'u') {
                return Err(fail(format!(
                    "`extrapolated_targets` is a {} array of shape {:?}, expected integers of shape (N,)",
                    a.dtype.name(),
                    a.shape
                )));
            }
            a.integers()
        }
    };
    if labels.len() != n {
        return Err(fail(format!(
            "`data` holds {n} images but `extrapolated_targets` holds {} labels",
            labels.len()
        )));
    }
    let mut out_labels = Vec::with_capacity(n);
    for (record, &l) in labels.iter().enumerate() {
        if !(0..PSEUDO_LABEL_CLASSES as i64).contains(&l) {
            return Err(Error::Label {
                path: path.to_path_buf(),
                record,
                label: l,
                expected: format!("0..{PSEUDO_LABEL_CLASSES} (`extrapolated_targets`)"),
            });
        }
        out_labels.push(l as u32);
    }

    // HWC -> planar CHW.
    let hwc = data.data();
    let plane = SIDE * SIDE;
    let mut images = vec![0u8; hwc.len()];
    for (src, dst) in hwc
        .chunks_exact(plane * CHANNELS)
        .zip(images.chunks_exact_mut(plane * CHANNELS))
    {
        for (p, px) in src.chunks_exact(CHANNELS).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                dst[c * plane + p] = v;
            }
        }
    }
    ImageSet::new(
        images,
        out_labels,
        (CHANNELS, SIDE, SIDE),
        PSEUDO_LABEL_CLASSES,
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_file_and_offset() {
        let m = parse_pseudo_labeled(b"\x80\x02cos\nsystem\n.", Path::new("t.pickle"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("t.pickle") && m.contains("byte 2") && m.contains("`os.system`"),
            "{m}"
        );
        let m = parse_pseudo_labeled(b"\x80\x02]q\x00.", Path::new("t.pickle"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("top-level object is a list"), "{m}");
    }
}
