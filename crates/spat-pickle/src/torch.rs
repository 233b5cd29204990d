//! `torch.save` files read as named raw tensors, without PyTorch and without running code.
//!
//! Three containers exist:
//!
//! * **zip** (PyTorch ≥ 1.6): `<dir>/data.pkl` is the pickle, each storage is an uncompressed
//!   member `<dir>/data/<key>`, and `<dir>/byteorder` says `little` or `big`. The pickle names a
//!   storage by the persistent id `('storage', torch.FloatStorage, key, location, numel)`.
//! * **legacy** (PyTorch 0.4–1.5, and `_use_new_zipfile_serialization=False` since): pickles back
//!   to back — a magic number, the protocol version 1001, a `sys_info` dict (byte order), the
//!   object with persistent ids `('storage', type, key, location, numel, view)`, the list of
//!   storage keys — then each storage as a little-endian `i64` element count and its bytes.
//! * **tar** (PyTorch before 0.1.10): members `storages` (a count, then per storage a pickled
//!   `(key, location, type)` and the same count-prefixed bytes, then a list of views),
//!   `tensors` (a count, then per tensor a pickled `(key, storage key, type)` and the raw
//!   `ndim`, sizes, strides and offset) and `pickle`, whose persistent ids are tensor keys.
//!
//! The object is then searched for a state dict: the dict itself when its values are tensors,
//! else the dict under `state_dict`, `model`, `net`, `model_state_dict` or `last` (checkpoint wrappers
//! of TRADES, MART, RST and RobustBench), recursively.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;

use crate::machine::{Object, TensorRef};
use crate::{Error, Limits, Pickle, Policy, Result, Value};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.bool`, one byte per element.
    Bool,
    /// `torch.uint8`.
    U8,
    /// `torch.int8`.
    I8,
    /// `torch.int16`.
    I16,
    /// `torch.int32`.
    I32,
    /// `torch.int64` (`torch.long`).
    I64,
    /// `torch.float16` (IEEE half).
    F16,
    /// `torch.bfloat16`.
    BF16,
    /// `torch.float32`.
    F32,
    /// `torch.float64`.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// PyTorch's name (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// The dtype `torch.<name>` denotes (`torch.float32`, `torch.float`, `torch.long`, ...).
    pub fn from_torch_name(name: &str) -> Option<DType> {
        Some(match name {
            "bool" => DType::Bool,
            "uint8" => DType::U8,
            "int8" => DType::I8,
            "int16" | "short" => DType::I16,
            "int32" | "int" => DType::I32,
            "int64" | "long" => DType::I64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            _ => return None,
        })
    }
}

/// A tensor as stored: a strided view of a storage of little-endian elements.
#[derive(Debug, Clone)]
pub struct RawTensor<'a> {
    /// Element type.
    pub dtype: DType,
    /// Size of each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub strides: Vec<usize>,
    /// Offset of element 0 in the storage, in elements.
    pub offset: usize,
    /// The whole storage (shared by every view of it), little-endian.
    pub storage: Cow<'a, [u8]>,
}

impl RawTensor<'_> {
    /// Number of elements (the product of the shape; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the view is the C-order (row-major) packing of its elements.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
        true
    }

    /// The elements in C order, as little-endian bytes (borrowed when already contiguous).
    pub fn contiguous_bytes(&self) -> Cow<'_, [u8]> {
        let es = self.dtype.size();
        let n = self.numel();
        if n == 0 {
            // An empty view's offset is never checked against its storage.
            return Cow::Borrowed(&[]);
        }
        if self.is_contiguous() {
            let start = self.offset * es;
            return Cow::Borrowed(&self.storage[start..start + n * es]);
        }
        let mut out = Vec::with_capacity(n * es);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..n {
            let at: usize = self.offset
                + index
                    .iter()
                    .zip(&self.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.extend_from_slice(&self.storage[at * es..(at + 1) * es]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Cow::Owned(out)
    }
}

/// Which `torch.save` container a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A zip archive (`torch.save` since PyTorch 1.6).
    Zip,
    /// Back-to-back pickles with the storages after them (PyTorch 0.4–1.5).
    Legacy,
    /// A tar archive (PyTorch before 0.1.10).
    Tar,
}

impl Format {
    /// The container `bytes` start like, if any.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else if bytes.starts_with(&LEGACY_HEAD) {
            Some(Format::Legacy)
        } else if bytes.len() >= 263 && &bytes[257..262] == b"ustar" {
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// The container in words, with the PyTorch versions that write it.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Zip => "PyTorch zip checkpoint (torch.save, PyTorch >= 1.6)",
            Format::Legacy => "legacy PyTorch checkpoint (torch.save, PyTorch 0.4-1.5)",
            Format::Tar => "tar PyTorch checkpoint (torch.save, PyTorch < 0.1.10)",
        }
    }
}

/// The first pickle of a legacy file: protocol 2, `LONG1` of 10 bytes.
const LEGACY_HEAD: [u8; 4] = [0x80, 0x02, 0x8a, 0x0a];
/// `0x1950a86a20f9469cfc6c`, torch's `MAGIC_NUMBER`, as `LONG1` bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// The named tensors of a checkpoint, in file order, and what reading it involved. A name the
/// file holds twice (a pickled dict whose key is set twice) is listed twice.
#[derive(Debug)]
pub struct Checkpoint<'a> {
    /// The container the file is.
    pub format: Format,
    /// Name and tensor, in file order.
    pub tensors: Vec<(String, RawTensor<'a>)>,
    /// What a user should know: the wrapper entry used, entries ignored.
    pub notes: Vec<String>,
}

/// Reads a `torch.save` file of any of the three containers.
pub fn read<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Checkpoint<'a>> {
    match Format::sniff(bytes) {
        Some(Format::Zip) => read_zip(bytes, limits),
        Some(Format::Legacy) => read_legacy(bytes, limits),
        Some(Format::Tar) => read_tar(bytes, limits),
        None => Err(Error::format(
            "not a PyTorch checkpoint (neither a torch.save zip, a legacy torch.save stream nor \
             a torch.save tar)",
        )),
    }
}

/// Storage bytes by key, and the budget of bytes tensors may add beyond them.
struct Storages<'a> {
    by_key: HashMap<String, (DType, Cow<'a, [u8]>)>,
    extra_budget: usize,
}

impl<'a> Storages<'a> {
    fn new(limits: &Limits) -> Self {
        Self {
            by_key: HashMap::new(),
            extra_budget: limits.max_extra_tensor_bytes,
        }
    }

    fn spend(&mut self, n: usize, what: &str) -> Result<()> {
        self.extra_budget = self.extra_budget.checked_sub(n).ok_or_else(|| {
            Error::format(format!(
                "{what} would need more memory than the file holds by over the reader's limit \
                 (a view that repeats elements, or a byte-swapped storage); refusing"
            ))
        })?;
        Ok(())
    }

    /// Little-endian bytes of `raw` (swapping each element of a big-endian file, within budget).
    fn add(&mut self, key: String, dtype: DType, raw: &'a [u8], big_endian: bool) -> Result<()> {
        let bytes = if big_endian && dtype.size() > 1 {
            self.spend(raw.len(), &format!("storage `{key}`"))?;
            let mut v = raw.to_vec();
            for e in v.chunks_exact_mut(dtype.size()) {
                e.reverse();
            }
            Cow::Owned(v)
        } else {
            Cow::Borrowed(raw)
        };
        self.by_key.insert(key, (dtype, bytes));
        Ok(())
    }
}

/// A storage reference (`('storage', type, key, location, numel[, view])`) decoded.
struct StorageRef {
    dtype: DType,
    key: String,
    numel: usize,
    /// Legacy views: (root key, element offset into the root).
    view_of: Option<(String, usize)>,
}

fn storage_ref(p: &Pickle<'_>, pid: Value) -> Result<StorageRef> {
    let bad = || {
        Error::format(format!(
            "a tensor's storage reference is {}, not ('storage', type, key, location, numel)",
            p.kind(pid)
        ))
    };
    let items = p.items(pid).ok_or_else(bad)?;
    let text = |v: Value| p.key(v).map(str::to_string);
    let [tag, ty, key, _location, numel, rest @ ..] = items else {
        return Err(bad());
    };
    if text(*tag).as_deref() != Some("storage") {
        let what = text(*tag).unwrap_or_else(|| p.kind(*tag));
        return Err(Error::format(format!(
            "the checkpoint references a `{what}` object (a pickled module with source?), not a \
             storage; save the model's state_dict() instead"
        )));
    }
    let Value::Global(crate::Global::Storage(dtype)) = ty else {
        return Err(Error::format(format!(
            "storage type is {}, expected torch.FloatStorage or another tensor storage",
            p.kind(*ty)
        )));
    };
    let key = storage_key(p, *key).ok_or_else(bad)?;
    let numel = p
        .int(*numel)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)?;
    let view_of = match rest.first() {
        None | Some(Value::None) => None,
        Some(view) => match p.items(*view) {
            Some([view_key, offset, size]) => {
                let offset = p.int(*offset).and_then(|n| usize::try_from(n).ok());
                let size = p.int(*size).and_then(|n| usize::try_from(n).ok());
                let view_key = storage_key(p, *view_key);
                match (view_key, offset, size) {
                    (Some(vk), Some(offset), Some(size)) => {
                        return Ok(StorageRef {
                            dtype: *dtype,
                            key: vk,
                            numel: size,
                            view_of: Some((key, offset)),
                        })
                    }
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        },
    };
    Ok(StorageRef {
        dtype: *dtype,
        key,
        numel,
        view_of,
    })
}

/// A storage key: a string, or an integer (tar files).
fn storage_key(p: &Pickle<'_>, v: Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        _ => p.key(v).map(str::to_string),
    }
}

/// Resolves one tensor value of the pickle against the storages.
struct Resolver<'p, 'a> {
    p: &'p Pickle<'a>,
    storages: &'p mut Storages<'a>,
    /// Tar files: persistent ids name whole tensors.
    tar_tensors: Option<&'p HashMap<String, RawTensor<'a>>>,
    max_dims: usize,
}

impl<'a> Resolver<'_, 'a> {
    fn tensor(&mut self, v: Value, name: &str) -> Result<Option<RawTensor<'a>>> {
        let Some(obj) = self.p.object(v) else {
            return Ok(None);
        };
        match obj {
            Object::Tensor(t) => self.view(t, name).map(Some),
            Object::Persistent(pid) => match self.tar_tensors {
                Some(tensors) => {
                    let key = storage_key(self.p, *pid).ok_or_else(|| {
                        Error::format(format!("`{name}`: a tensor reference is not a key"))
                    })?;
                    let t = tensors.get(&key).ok_or_else(|| {
                        Error::format(format!(
                            "`{name}` references tensor {key}, which the `tensors` member lacks"
                        ))
                    })?;
                    Ok(Some(t.clone()))
                }
                None => Err(Error::format(format!(
                    "`{name}` is a bare storage, not a tensor"
                ))),
            },
            _ => Ok(None),
        }
    }

    fn view(&mut self, t: &TensorRef, name: &str) -> Result<RawTensor<'a>> {
        let pid = match self.p.object(t.storage) {
            Some(Object::Persistent(pid)) => *pid,
            _ => {
                return Err(Error::format(format!(
                    "`{name}`: the tensor's storage is {}, not a storage reference",
                    self.p.kind(t.storage)
                )))
            }
        };
        let r = storage_ref(self.p, pid).map_err(|e| Error::format(format!("`{name}`: {e}")))?;
        let (root_key, elem_offset) = match &r.view_of {
            Some((root, off)) => (root.as_str(), *off),
            None => (r.key.as_str(), 0),
        };
        let (stored_dtype, owned, stored_len) = match self.storages.by_key.get(root_key) {
            Some((d, b)) => (*d, matches!(b, Cow::Owned(_)), b.len()),
            None => {
                return Err(Error::format(format!(
                    "`{name}` uses storage `{root_key}`, which the checkpoint does not contain \
                     (truncated or damaged?)"
                )))
            }
        };
        let dtype = t.dtype.unwrap_or(r.dtype);
        if stored_dtype != r.dtype && stored_dtype != DType::U8 {
            return Err(Error::format(format!(
                "`{name}`: storage `{root_key}` is {} in one place and {} in another",
                stored_dtype.name(),
                r.dtype.name()
            )));
        }
        let start = elem_offset.checked_mul(r.dtype.size());
        let len = r.numel.checked_mul(r.dtype.size());
        let range = match (start, len) {
            (Some(s), Some(l)) => s.checked_add(l).filter(|&e| e <= stored_len).map(|e| s..e),
            _ => None,
        };
        let Some(range) = range else {
            return Err(Error::format(format!(
                "`{name}`: storage `{root_key}` holds {stored_len} bytes, fewer than the {} {} \
                 elements (from element {elem_offset}) the pickle declares (truncated or \
                 damaged?)",
                r.numel,
                r.dtype.name()
            )));
        };
        if owned {
            // Byte-swapped storages are owned; each view of one is a copy within budget.
            self.storages.spend(range.len(), &format!("`{name}`"))?;
        }
        let storage: Cow<'a, [u8]> = match &self.storages.by_key[root_key].1 {
            Cow::Borrowed(b) => Cow::Borrowed(&b[range]),
            Cow::Owned(v) => Cow::Owned(v[range].to_vec()),
        };
        raw_tensor(
            name,
            dtype,
            t.shape.clone(),
            t.stride.clone(),
            t.offset,
            storage,
            self.storages,
            self.max_dims,
        )
    }
}

/// Checks a view against its storage and the budget, before anything is materialised.
#[allow(clippy::too_many_arguments)]
fn raw_tensor<'a>(
    name: &str,
    dtype: DType,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    storage: Cow<'a, [u8]>,
    storages: &mut Storages<'a>,
    max_dims: usize,
) -> Result<RawTensor<'a>> {
    let bad = |m: String| Error::format(format!("`{name}`: {m}"));
    if shape.len() != strides.len() || shape.len() > max_dims {
        return Err(bad(format!(
            "shape {shape:?} and strides {strides:?} do not describe a tensor"
        )));
    }
    let es = dtype.size();
    if !storage.len().is_multiple_of(es) {
        return Err(bad(format!(
            "storage of {} bytes is not a whole number of {} elements",
            storage.len(),
            dtype.name()
        )));
    }
    let storage_numel = storage.len() / es;
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(numel) = numel else {
        return Err(bad(format!("shape {shape:?} has too many elements")));
    };
    if numel > 0 {
        // Highest element the view touches, in checked arithmetic.
        let last = shape
            .iter()
            .zip(&strides)
            .try_fold(offset, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            });
        if last.is_none_or(|l| l >= storage_numel) {
            return Err(bad(format!(
                "a view of shape {shape:?}, strides {strides:?} and offset {offset} reaches \
                 past its storage of {storage_numel} {} elements",
                dtype.name()
            )));
        }
    }
    let t = RawTensor {
        dtype,
        shape,
        strides,
        offset,
        storage,
    };
    // A view that repeats elements (stride 0) can be far larger than its storage.
    if !t.is_contiguous() {
        let bytes = numel.saturating_mul(es);
        if bytes > storage_numel.saturating_mul(es) {
            storages.spend(bytes - storage_numel * es, &format!("`{name}`"))?;
        }
    }
    Ok(t)
}

fn load_pickle<'a>(input: &'a [u8], limits: &Limits, part: &str) -> Result<(Pickle<'a>, usize)> {
    Pickle::load(input, limits, Policy::Opaque).map_err(|e| e.in_part(part))
}

fn read_zip<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Checkpoint<'a>> {
    let zerr = |e: zip::result::ZipError| Error::format(format!("unreadable zip archive ({e})"));
    // The archive starts at the file's first byte (`Format::sniff` saw its first signature
    // there), and saying so keeps the zip crate from guessing. Its guess prefers a central
    // directory that ends right at the end record, but PyTorch's writer always puts a ZIP64 end
    // record and locator (76 bytes) in between: when the first central header happens to be 76
    // bytes long (an archive name of 21 characters: `<name>/data.pkl` is 30 bytes after a
    // 46-byte header), a header signature sits exactly there, the guess shifts the directory
    // by 76 bytes, and a valid file was refused.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, Cursor::new(bytes)).map_err(zerr)?;
    // Members by name, as slices of the input (torch writes them uncompressed).
    let mut members: HashMap<String, &'a [u8]> = HashMap::new();
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(zerr)?;
        let name = f.name().map_err(zerr)?.into_owned();
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(Error::format(format!(
                "zip member `{name}` is compressed ({}); torch.save writes members uncompressed \
                 (was the file re-zipped?)",
                f.compression()
            )));
        }
        let start = f.data_start().and_then(|s| usize::try_from(s).ok());
        let len = usize::try_from(f.compressed_size()).ok();
        let range = match (start, len) {
            (Some(s), Some(l)) => s.checked_add(l).filter(|&e| e <= bytes.len()).map(|e| s..e),
            _ => None,
        };
        let Some(range) = range else {
            return Err(Error::format(format!(
                "zip member `{name}` extends past the end of the file (truncated?)"
            )));
        };
        let data = &bytes[range];
        if crc32fast::hash(data) != f.crc32() {
            return Err(Error::format(format!(
                "zip member `{name}` fails its CRC-32 check (damaged file)"
            )));
        }
        members.insert(name, data);
    }
    let pkl: Vec<&String> = members
        .keys()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .collect();
    let [pkl_name] = pkl.as_slice() else {
        return Err(Error::format(format!(
            "zip archive has {} `<dir>/data.pkl` members, expected one (not a torch.save file?)",
            pkl.len()
        )));
    };
    let pkl_name = (*pkl_name).clone();
    let dir = pkl_name.trim_end_matches("data.pkl").to_string();
    let big_endian = match members.get(&format!("{dir}byteorder")).copied() {
        None => false,
        Some(b) if b == b"little" => false,
        Some(b) if b == b"big" => true,
        Some(other) => {
            return Err(Error::format(format!(
                "`{dir}byteorder` says `{}`, expected little or big",
                String::from_utf8_lossy(&other[..other.len().min(16)])
            )))
        }
    };
    let (p, _) = load_pickle(members[&pkl_name], limits, &pkl_name)?;
    // The storages the pickle references, by key, typed by their first reference.
    let mut storages = Storages::new(limits);
    let data_dir = format!("{dir}data/");
    for (key, dtype) in storage_refs(&p) {
        if storages.by_key.contains_key(&key) {
            continue;
        }
        if let Some(data) = members.get(&format!("{data_dir}{key}")) {
            storages.add(key, dtype, data, big_endian)?;
        }
    }
    finish(Format::Zip, &p, &mut storages, None, limits)
}

/// Every storage the pickle references (root keys and dtypes), valid references only; an
/// invalid one is reported when a tensor that uses it is resolved.
fn storage_refs(p: &Pickle<'_>) -> Vec<(String, DType)> {
    p.objects_iter()
        .filter_map(|o| match o {
            Object::Persistent(pid) => storage_ref(p, *pid).ok(),
            _ => None,
        })
        .map(|r| (r.view_of.map_or(r.key, |(k, _)| k), r.dtype))
        .collect()
}

fn read_legacy<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Checkpoint<'a>> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Pickle<'a>> {
        let (p, used) = load_pickle(&bytes[pos..], limits, what).map_err(|e| match e {
            Error::Pickle {
                part,
                offset,
                message,
            } => Error::Pickle {
                part,
                offset: offset + pos,
                message,
            },
            other => other,
        })?;
        pos += used;
        Ok(p)
    };
    let magic = next("magic number")?;
    if magic.bytes(magic.root()) != Some(&LEGACY_MAGIC[..]) {
        return Err(Error::format(
            "starts like a legacy torch.save file but its magic number is wrong",
        ));
    }
    let proto = next("protocol version")?;
    if proto.int(proto.root()) != Some(LEGACY_PROTOCOL) {
        return Err(Error::format(format!(
            "legacy torch.save protocol version is {}, expected 1001",
            proto
                .int(proto.root())
                .map_or_else(|| proto.kind(proto.root()), |v| v.to_string())
        )));
    }
    let sys = next("sys_info")?;
    let big_endian = match sys.get(sys.root(), "little_endian") {
        Some(Value::Bool(false)) => true,
        Some(Value::Bool(true)) | None => false,
        Some(other) => {
            return Err(Error::format(format!(
                "sys_info's little_endian is {}, expected a bool",
                sys.kind(other)
            )))
        }
    };
    let p = next("object")?;
    let keys_pickle = next("storage keys")?;
    let keys: Vec<String> = match keys_pickle.items(keys_pickle.root()) {
        Some(items) => items
            .iter()
            .map(|k| storage_key(&keys_pickle, *k))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::format("the storage key list holds a non-string"))?,
        None => return Err(Error::format("the storage key list is not a list")),
    };
    // Storage dtypes come from the object's references to them.
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    for (key, dtype) in storage_refs(&p) {
        dtypes.entry(key).or_insert(dtype);
    }
    let mut storages = Storages::new(limits);
    for key in keys {
        let Some(dtype) = dtypes.get(&key).copied() else {
            return Err(Error::format(format!(
                "storage `{key}` is listed but never referenced, so its element size is unknown                  (damaged file?)"
            )));
        };
        let raw = count_prefixed(bytes, &mut pos, dtype, &key)?;
        storages.add(key, dtype, raw, big_endian)?;
    }
    finish(Format::Legacy, &p, &mut storages, None, limits)
}

/// A storage as `_write_file` writes it: `i64` element count, then the elements.
fn count_prefixed<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    dtype: DType,
    key: &str,
) -> Result<&'a [u8]> {
    let truncated = || {
        Error::format(format!(
            "storage `{key}` at byte {pos} runs past the end of the file (truncated?)",
            pos = *pos
        ))
    };
    let head = bytes.get(*pos..*pos + 8).ok_or_else(truncated)?;
    let count = i64::from_le_bytes(head.try_into().expect("8 bytes"));
    let len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(dtype.size()));
    let start = *pos + 8;
    let end = len.and_then(|l| start.checked_add(l));
    let raw = end
        .and_then(|e| bytes.get(start..e))
        .ok_or_else(truncated)?;
    *pos = start + raw.len();
    Ok(raw)
}

fn read_tar<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Checkpoint<'a>> {
    let mut members: HashMap<String, &'a [u8]> = HashMap::new();
    let terr = |e: std::io::Error| Error::format(format!("unreadable tar archive ({e})"));
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(terr)? {
        let entry = entry.map_err(terr)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let start = usize::try_from(entry.raw_file_position()).ok();
        let len = usize::try_from(entry.size()).ok();
        let data = match (start, len) {
            (Some(s), Some(l)) => s.checked_add(l).and_then(|e| bytes.get(s..e)),
            _ => None,
        };
        let data = data.ok_or_else(|| {
            Error::format(format!(
                "tar member `{name}` extends past the end of the file (truncated?)"
            ))
        })?;
        members.insert(name, data);
    }
    let member = |name: &str| {
        members.get(name).copied().ok_or_else(|| {
            Error::format(format!(
                "tar archive has no `{name}` member (not a torch.save tar file?)"
            ))
        })
    };

    // storages: count, then (key, location, type) + count-prefixed bytes each, then views.
    let data = member("storages")?;
    let mut pos = 0usize;
    let next = |data: &'a [u8], pos: &mut usize, part: &str| -> Result<Pickle<'a>> {
        let rest = data.get(*pos..).unwrap_or_default();
        let (p, used) = load_pickle(rest, limits, part)?;
        *pos += used;
        Ok(p)
    };
    let count_of = |p: &Pickle<'_>, what: &str| {
        p.int(p.root())
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Error::format(format!("the {what} count is not a count")))
    };
    let n = count_of(&next(data, &mut pos, "storages")?, "storage")?;
    let mut storages = Storages::new(limits);
    for _ in 0..n {
        let p = next(data, &mut pos, "storages")?;
        let (key, dtype) = match p.items(p.root()) {
            Some([key, _location, Value::Global(crate::Global::Storage(d))]) => (
                storage_key(&p, *key).ok_or_else(|| Error::format("a storage key is not a key"))?,
                *d,
            ),
            _ => {
                return Err(Error::format(
                    "a storage record is not (key, location, type)",
                ))
            }
        };
        let raw = count_prefixed(data, &mut pos, dtype, &key)?;
        storages.add(key, dtype, raw, false)?;
    }
    let views = next(data, &mut pos, "storages")?;
    for v in views.items(views.root()).unwrap_or_default() {
        let Some([target, root, offset, numel]) = views.items(*v) else {
            return Err(Error::format(
                "a storage view is not (target, root, offset, numel)",
            ));
        };
        let (Some(target), Some(root)) = (storage_key(&views, *target), storage_key(&views, *root))
        else {
            return Err(Error::format("a storage view names a non-key"));
        };
        let (dtype, root_bytes) = storages
            .by_key
            .get(&root)
            .cloned()
            .ok_or_else(|| Error::format(format!("a view of missing storage `{root}`")))?;
        let es = dtype.size();
        let range = match (views.int(*offset), views.int(*numel)) {
            (Some(o), Some(n)) if o >= 0 && n >= 0 => (o as usize)
                .checked_mul(es)
                .zip((n as usize).checked_mul(es))
                .and_then(|(s, l)| Some(s..s.checked_add(l)?))
                .filter(|r| r.end <= root_bytes.len()),
            _ => None,
        };
        let range = range.ok_or_else(|| {
            Error::format(format!("view `{target}` reaches past storage `{root}`"))
        })?;
        let view: Cow<'a, [u8]> = match root_bytes {
            Cow::Borrowed(b) => Cow::Borrowed(&b[range]),
            Cow::Owned(v) => Cow::Owned(v[range].to_vec()),
        };
        storages.by_key.insert(target, (dtype, view));
    }

    // tensors: count, then (key, storage key, type) + ndim, sizes, strides, offset each.
    let data = member("tensors")?;
    let mut pos = 0usize;
    let n = count_of(&next(data, &mut pos, "tensors")?, "tensor")?;
    let mut tensors: HashMap<String, RawTensor<'a>> = HashMap::new();
    for _ in 0..n {
        let p = next(data, &mut pos, "tensors")?;
        let (key, storage_key_) = match p.items(p.root()) {
            Some([key, storage, _ty]) => (storage_key(&p, *key), storage_key(&p, *storage)),
            _ => (None, None),
        };
        let (Some(key), Some(skey)) = (key, storage_key_) else {
            return Err(Error::format(
                "a tensor record is not (key, storage key, type)",
            ));
        };
        let mut word = |n: usize| -> Result<&'a [u8]> {
            let s = data.get(pos..pos.saturating_add(n));
            let s = s.ok_or_else(|| {
                Error::format(format!("tensor `{key}` runs past the end of `tensors`"))
            })?;
            pos += n;
            Ok(s)
        };
        let ndim = i32::from_le_bytes(word(4)?.try_into().expect("4 bytes"));
        word(4)?;
        let ndim = usize::try_from(ndim)
            .ok()
            .filter(|&d| d <= limits.max_dims)
            .ok_or_else(|| Error::format(format!("tensor `{key}` has {ndim} dimensions")))?;
        let mut ints = |count: usize| -> Result<Vec<usize>> {
            (0..count)
                .map(|_| {
                    let v = i64::from_le_bytes(word(8)?.try_into().expect("8 bytes"));
                    usize::try_from(v).map_err(|_| {
                        Error::format(format!("tensor `{key}` has a negative size or stride"))
                    })
                })
                .collect()
        };
        let shape = ints(ndim)?;
        let strides = ints(ndim)?;
        let offset = ints(1)?[0];
        let (dtype, storage) = storages.by_key.get(&skey).cloned().ok_or_else(|| {
            Error::format(format!("tensor `{key}` uses missing storage `{skey}`"))
        })?;
        let t = raw_tensor(
            &key,
            dtype,
            shape,
            strides,
            offset,
            storage,
            &mut storages,
            limits.max_dims,
        )?;
        tensors.insert(key, t);
    }
    let (p, _) = load_pickle(member("pickle")?, limits, "pickle")?;
    finish(Format::Tar, &p, &mut storages, Some(&tensors), limits)
}

/// Keys of a dict that wrap a state dict, in the order they are tried (`last`: the final
/// weights of GradAlign's checkpoints, which also hold `best`; RobustBench reads `last`).
const WRAPPERS: &[&str] = &["state_dict", "model_state_dict", "model", "net", "last"];
/// How many wrappers deep a state dict is looked for.
const MAX_WRAPPING: usize = 4;

fn finish<'a>(
    format: Format,
    p: &Pickle<'a>,
    storages: &mut Storages<'a>,
    tar_tensors: Option<&HashMap<String, RawTensor<'a>>>,
    limits: &Limits,
) -> Result<Checkpoint<'a>> {
    let mut r = Resolver {
        p,
        storages,
        tar_tensors,
        max_dims: limits.max_dims,
    };
    let mut notes = Vec::new();
    let mut at = p.root();
    let mut path = String::new();
    for _ in 0..=MAX_WRAPPING {
        let Some(entries) = p.dict(at) else {
            return Err(Error::format(format!(
                "the checkpoint{} is {}, not a state dict (a dict of tensors){}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!("'s {path}")
                },
                p.kind(at),
                if matches!(p.object(at), Some(Object::Opaque { .. })) {
                    "; if this is a whole pickled model (torch.save(model)), it cannot be read without \
                     running its code: save model.state_dict() instead"
                } else {
                    ""
                }
            )));
        };
        let mut tensors = Vec::new();
        let mut others = Vec::new();
        for (k, v) in entries {
            let Some(key) = p.key(*k) else {
                others.push(p.kind(*k));
                continue;
            };
            match r.tensor(*v, key)? {
                Some(t) => tensors.push((key.to_string(), t)),
                None => others.push(format!("`{key}`")),
            }
        }
        if !tensors.is_empty() {
            if !others.is_empty() {
                notes.push(format!(
                    "ignored {} non-tensor entries of the state dict: {}",
                    others.len(),
                    list_few(&others)
                ));
            }
            // Every entry as the file holds it, a key given twice included: a Python dict
            // would keep the last silently, and the caller refuses the file instead.
            return Ok(Checkpoint {
                format,
                tensors,
                notes,
            });
        }
        let wrapper = WRAPPERS.iter().find(|w| p.get(at, w).is_some());
        let Some(w) = wrapper else {
            return Err(Error::format(format!(
                "the checkpoint{} is a dict without tensors (keys: {}), and has none of the \
                 entries {} that hold a state dict",
                if path.is_empty() {
                    String::new()
                } else {
                    format!("'s {path}")
                },
                list_few(&others),
                WRAPPERS
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let rest: Vec<&String> = others.iter().filter(|o| **o != format!("`{w}`")).collect();
        notes.push(format!(
            "read the state dict under {path}`{w}`{}",
            if rest.is_empty() {
                String::new()
            } else {
                format!(
                    " (other entries ignored: {})",
                    list_few(&rest.into_iter().cloned().collect::<Vec<_>>())
                )
            }
        ));
        path = format!("{path}`{w}` → ");
        at = p.get(at, w).expect("found");
    }
    Err(Error::format(format!(
        "no state dict within {MAX_WRAPPING} levels of wrapping"
    )))
}

/// At most four items, and how many more there are.
fn list_few(items: &[String]) -> String {
    let mut s = items.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 4 {
        s += &format!(" and {} more", items.len() - 4);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(
        shape: &[usize],
        strides: &[usize],
        offset: usize,
        data: &[f32],
    ) -> RawTensor<'static> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        RawTensor {
            dtype: DType::F32,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: Cow::Owned(bytes),
        }
    }

    fn floats(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn transposed_and_offset_views_are_packed_in_c_order() {
        let t = tensor(&[3, 2], &[1, 3], 0, &[0., 1., 2., 3., 4., 5.]);
        assert!(!t.is_contiguous());
        assert_eq!(floats(&t.contiguous_bytes()), vec![0., 3., 1., 4., 2., 5.]);
        let t = tensor(&[2], &[1], 3, &[0., 1., 2., 3., 4., 5.]);
        assert!(t.is_contiguous());
        assert_eq!(floats(&t.contiguous_bytes()), vec![3., 4.]);
        let t = tensor(&[1, 2], &[7, 1], 0, &[0., 1.]);
        assert!(
            t.is_contiguous(),
            "a size-1 dimension's stride is irrelevant"
        );
    }

    #[test]
    fn views_past_their_storage_and_huge_broadcasts_are_refused() {
        let limits = Limits {
            max_extra_tensor_bytes: 1000,
            ..Limits::default()
        };
        let mut s = Storages::new(&limits);
        let st = || Cow::Owned(vec![0u8; 16]);
        let m = raw_tensor("w", DType::F32, vec![2, 2], vec![2, 1], 1, st(), &mut s, 8)
            .unwrap_err()
            .to_string();
        assert!(m.contains("`w`") && m.contains("reaches past"), "{m}");
        let m = raw_tensor(
            "w",
            DType::F32,
            vec![usize::MAX, 2],
            vec![0, 0],
            0,
            st(),
            &mut s,
            8,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("too many elements"), "{m}");
        // 1e6 repeats of one element: 4 MB from 16 bytes, beyond the 1000-byte budget.
        let m = raw_tensor(
            "w",
            DType::F32,
            vec![1_000_000],
            vec![0],
            0,
            st(),
            &mut s,
            8,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("reader's limit"), "{m}");
        assert!(raw_tensor("w", DType::F32, vec![100], vec![0], 0, st(), &mut s, 8).is_ok());
    }

    #[test]
    fn sniffing() {
        assert_eq!(Format::sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(
            Format::sniff(b"\x80\x02\x8a\x0al\xfc"),
            Some(Format::Legacy)
        );
        assert_eq!(Format::sniff(b"\x80\x02}q\x00."), None);
        let m = read(b"hello", &Limits::default()).unwrap_err().to_string();
        assert!(m.contains("not a PyTorch checkpoint"), "{m}");
    }
}
