//! The pickle stack machine, interpreted over a flat arena of plain values.
//!
//! Containers live in arena vectors and refer to each other by index, so a value is a small
//! `Copy` handle: building a million nested tuples, or a list that contains itself, neither
//! recurses nor leaks, and dropping the arena is one flat deallocation per vector. Nesting
//! depth is still tracked as containers are built and refused past [`Limits::max_depth`],
//! because whatever consumes the values walks them.

use std::collections::HashMap;

use crate::numpy::{NpDtype, NumpyArray};
use crate::torch::DType;
use crate::{Error, Limits, Policy, Result};

/// Index of an entry in one of the arena's vectors.
pub type Id = u32;

/// A pickled value: a scalar, or a handle into the [`Pickle`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Python's `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer that fits in 8 bytes.
    Int(i64),
    /// An integer of more than 8 bytes (two's complement, little-endian bytes in the arena).
    BigInt(Id),
    /// A Python `float` (an IEEE double).
    Float(f64),
    /// A text string (UTF-8 in the arena).
    Str(Id),
    /// A byte string ([`Pickle::bytes`]).
    Bytes(Id),
    /// A tuple (its items: [`Pickle::items`]).
    Tuple(Id),
    /// A list (its items: [`Pickle::items`]).
    List(Id),
    /// A set or frozenset (its items, in file order).
    Set(Id),
    /// A dict or `OrderedDict` (its entries: [`Pickle::dict`]).
    Dict(Id),
    /// A callable or class the file names, not yet called.
    Global(Global),
    /// The result of a call the interpreter understands, or an inert record ([`Object`]).
    Object(Id),
}

/// A callable or class the file names, after resolution against the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: an empty dict, filled by later `SETITEMS`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor` (PyTorch < 0.4), `_v2` and `_v3`.
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` (PyTorch ≥ 0.4).
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3(storage, offset, size, stride, ..., dtype, ...)`.
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter(data, requires_grad, ...)`: the tensor `data`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, ..., state)`: the tensor `data`.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: a tensor with Python
    /// attributes; the tensor is `func(*args)`.
    RebuildFromTypeV2,
    /// `torch.FloatStorage` and friends (also `torch.cuda.*Storage`), and `torch.UntypedStorage`.
    Storage(DType),
    /// `torch.float32` and friends, as `_rebuild_tensor_v3` names a dtype.
    TorchDtype(DType),
    /// `torch.Size`: a tuple.
    TorchSize,
    /// `numpy.core.multiarray._reconstruct`: an empty array, given its data by `BUILD`.
    NumpyReconstruct,
    /// `numpy.ndarray`, the class `_reconstruct` is called with.
    NumpyNdarray,
    /// `numpy.dtype(descr, ...)`: an element type.
    NumpyDtype,
    /// `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5).
    NumpyFromBuffer,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`: a 0-dimensional array.
    NumpyScalar,
    /// `_codecs.encode(str, 'latin1')`: how protocol 2 spells a `bytes` object.
    CodecsEncode,
    /// Anything else, under [`Policy::Opaque`]: `module.name` in the string arena.
    Unknown(Id),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        let numpy_core = |sub: &str| {
            module.strip_prefix("numpy.core.") == Some(sub)
                || module.strip_prefix("numpy._core.") == Some(sub)
        };
        if let Some(storage) = name.strip_suffix("Storage") {
            if module == "torch" || module == "torch.cuda" || module == "torch.storage" {
                let dtype = match storage {
                    "Untyped" | "Byte" => DType::U8,
                    "Char" => DType::I8,
                    "Short" => DType::I16,
                    "Int" => DType::I32,
                    "Long" => DType::I64,
                    "Half" => DType::F16,
                    "BFloat16" => DType::BF16,
                    "Float" => DType::F32,
                    "Double" => DType::F64,
                    "Bool" => DType::Bool,
                    _ => return None,
                };
                return Some(Global::Storage(dtype));
            }
        }
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
            ("torch", "Size") => Global::TorchSize,
            ("torch", dtype) => Global::TorchDtype(DType::from_torch_name(dtype)?),
            (_, "_reconstruct") if numpy_core("multiarray") => Global::NumpyReconstruct,
            (_, "scalar") if numpy_core("multiarray") => Global::NumpyScalar,
            (_, "_frombuffer") if numpy_core("numeric") => Global::NumpyFromBuffer,
            ("numpy", "ndarray") => Global::NumpyNdarray,
            ("numpy", "dtype") => Global::NumpyDtype,
            ("_codecs", "encode") => Global::CodecsEncode,
            _ => return None,
        })
    }
}

/// Objects built by calls the interpreter understands, and inert records of the others.
#[derive(Debug, Clone)]
pub enum Object<'a> {
    /// `_reconstruct(ndarray, (0,), b'b')` before its `BUILD`.
    EmptyArray,
    /// A numpy array with its data.
    Array(NumpyArray<'a>),
    /// A numpy element type.
    NumpyDtype(NpDtype),
    /// What `BINPERSID` names (the persistent id; a checkpoint's storage reference).
    Persistent(Value),
    /// A tensor view of a storage, from `torch._utils._rebuild_tensor*`.
    Tensor(TensorRef),
    /// `class(*args)` for a class outside the allow-list ([`Policy::Opaque`]); `state` is what a
    /// later `BUILD` gave it. Never called.
    Opaque {
        /// `module.name` of the class, in the string arena.
        class: Id,
        /// The arguments it was called with (a tuple).
        args: Value,
        /// The state a later `BUILD` gave it.
        state: Option<Value>,
    },
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view (`offset`, `shape`, `stride`, in
/// elements) of the storage that the persistent id `storage` names.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The persistent id of the storage (resolved by the container reader).
    pub storage: Value,
    /// Offset of element 0 in the storage, in elements.
    pub offset: usize,
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// Stride of each dimension, in elements.
    pub stride: Vec<usize>,
    /// The dtype `_rebuild_tensor_v3` gives explicitly (else the storage's).
    pub dtype: Option<DType>,
}

/// A byte string: a slice of the input, or bytes the interpreter built (shared, not copied,
/// by the arrays made from them).
#[derive(Debug, Clone)]
pub enum Bytes<'a> {
    /// A slice of the input.
    Borrowed(&'a [u8]),
    /// Bytes the interpreter built (decoded from a latin-1 string, or joined).
    Owned(std::rc::Rc<[u8]>),
}

impl Bytes<'_> {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Owned(b) => b,
        }
    }
}

/// Approximate bytes of one stack, memo or container slot.
const SLOT: usize = std::mem::size_of::<Value>();

/// The values of one pickle stream and its root.
#[derive(Debug)]
pub struct Pickle<'a> {
    strs: Vec<Box<str>>,
    bytes: Vec<Bytes<'a>>,
    seqs: Vec<Vec<Value>>,
    dicts: Vec<Vec<(Value, Value)>>,
    objects: Vec<Object<'a>>,
    seq_depth: Vec<u32>,
    dict_depth: Vec<u32>,
    object_depth: Vec<u32>,
    root: Value,
}

impl<'a> Pickle<'a> {
    /// Interprets the pickle at the start of `input` up to its `STOP`. Returns the values and
    /// the number of bytes read (a legacy checkpoint is several pickles back to back).
    pub fn load(input: &'a [u8], limits: &Limits, policy: Policy) -> Result<(Pickle<'a>, usize)> {
        Machine::new(input, limits, policy).run()
    }

    /// The value the stream's `STOP` returned.
    pub fn root(&self) -> Value {
        self.root
    }

    /// A short description of what `v` is, for error messages.
    pub fn kind(&self, v: Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) | Value::BigInt(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Set(_) => "a set".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(_) => "a class or function".into(),
            Value::Object(id) => match &self.objects[id as usize] {
                Object::EmptyArray => "an unfinished numpy array".into(),
                Object::Array(_) => "a numpy array".into(),
                Object::NumpyDtype(_) => "a numpy dtype".into(),
                Object::Persistent(_) => "a storage reference".into(),
                Object::Tensor(_) => "a tensor".into(),
                Object::Opaque { class, .. } => {
                    format!(
                        "a `{}` object (recorded, never run)",
                        self.strs[*class as usize]
                    )
                }
            },
        }
    }

    /// The text of a `str` value; `None` for any other value.
    pub fn str(&self, v: Value) -> Option<&str> {
        match v {
            Value::Str(id) => Some(&self.strs[id as usize]),
            _ => None,
        }
    }

    /// The bytes of a `bytes` value; `None` for any other value.
    pub fn bytes(&self, v: Value) -> Option<&[u8]> {
        match v {
            Value::Bytes(id) | Value::BigInt(id) => Some(self.bytes[id as usize].as_slice()),
            _ => None,
        }
    }

    /// A dict key as text: a `str`, or a `bytes` key (Python 2 pickles) that is ASCII.
    pub fn key(&self, v: Value) -> Option<&str> {
        match v {
            Value::Str(_) => self.str(v),
            Value::Bytes(_) => std::str::from_utf8(self.bytes(v)?)
                .ok()
                .filter(|s| s.is_ascii()),
            _ => None,
        }
    }

    /// The integer of an `Int` (or a `Bool`, as Python counts it); `None` otherwise.
    pub fn int(&self, v: Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(i),
            Value::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    /// Items of a tuple, list or set.
    pub fn items(&self, v: Value) -> Option<&[Value]> {
        match v {
            Value::Tuple(id) | Value::List(id) | Value::Set(id) => Some(&self.seqs[id as usize]),
            _ => None,
        }
    }

    /// Entries of a dict (or `OrderedDict`), in insertion order (a repeated key appears twice;
    /// [`Pickle::get`] returns the last, as Python would keep).
    pub fn dict(&self, v: Value) -> Option<&[(Value, Value)]> {
        match v {
            Value::Dict(id) => Some(&self.dicts[id as usize]),
            _ => None,
        }
    }

    /// The value under text key `key` in dict `v`.
    pub fn get(&self, v: Value, key: &str) -> Option<Value> {
        self.dict(v)?
            .iter()
            .rev()
            .find(|(k, _)| self.key(*k) == Some(key))
            .map(|(_, v)| *v)
    }

    /// The object an `Object` value is; `None` for any other value.
    pub fn object(&self, v: Value) -> Option<&Object<'a>> {
        match v {
            Value::Object(id) => Some(&self.objects[id as usize]),
            _ => None,
        }
    }

    /// The numpy array an `Object` value is; `None` if it is none.
    pub fn array(&self, v: Value) -> Option<&NumpyArray<'a>> {
        match self.object(v)? {
            Object::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The `module.name` of an opaque object's class.
    pub fn class_name(&self, class: Id) -> &str {
        &self.strs[class as usize]
    }

    /// Every object the pickle built, in order.
    pub fn objects_iter(&self) -> impl Iterator<Item = &Object<'a>> {
        self.objects.iter()
    }

    /// Nesting depth of `v` as it was built (0 for scalars).
    pub fn depth(&self, v: Value) -> u32 {
        match v {
            Value::Tuple(id) | Value::List(id) | Value::Set(id) => self.seq_depth[id as usize],
            Value::Dict(id) => self.dict_depth[id as usize],
            Value::Object(id) => self.object_depth[id as usize],
            _ => 0,
        }
    }
}

struct Machine<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    op_start: usize,
    limits: &'l Limits,
    policy: Policy,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    heap: Pickle<'a>,
    /// Bytes charged against [`Limits::max_interpreter_bytes`].
    used: usize,
}

impl<'a, 'l> Machine<'a, 'l> {
    fn new(input: &'a [u8], limits: &'l Limits, policy: Policy) -> Self {
        Self {
            input,
            pos: 0,
            op_start: 0,
            limits,
            policy,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            heap: Pickle {
                strs: Vec::new(),
                bytes: Vec::new(),
                seqs: Vec::new(),
                dicts: Vec::new(),
                objects: Vec::new(),
                seq_depth: Vec::new(),
                dict_depth: Vec::new(),
                object_depth: Vec::new(),
                root: Value::None,
            },
            used: 0,
        }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Pickle {
            part: None,
            offset: self.op_start,
            message: message.into(),
        }
    }

    /// Accounts for `n` more bytes of interpreter memory, refusing past the limit.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.used = self.used.saturating_add(n);
        if self.used > self.limits.max_interpreter_bytes {
            return Err(self.err(format!(
                "interpreting this pickle needs more than {} MiB of memory (the reader's limit); \
                 a real checkpoint needs a small fraction of its file size",
                self.limits.max_interpreter_bytes >> 20
            )));
        }
        Ok(())
    }

    fn check_depth(&self, depth: u32) -> Result<u32> {
        if depth as usize > self.limits.max_depth {
            return Err(self.err(format!(
                "values nest deeper than {} levels (the reader's limit; real checkpoints nest \
                 fewer than ten)",
                self.limits.max_depth
            )));
        }
        Ok(depth)
    }

    fn id(&self, len: usize) -> Result<Id> {
        Id::try_from(len).map_err(|_| self.err("too many values"))
    }

    fn push(&mut self, v: Value) -> Result<()> {
        self.charge(SLOT)?;
        self.stack.push(v);
        Ok(())
    }

    fn new_str(&mut self, s: &str) -> Result<Value> {
        self.charge(s.len() + 2 * SLOT)?;
        let id = self.id(self.heap.strs.len())?;
        self.heap.strs.push(s.into());
        Ok(Value::Str(id))
    }

    fn new_bytes(&mut self, b: Bytes<'a>) -> Result<Id> {
        let owned = match &b {
            Bytes::Owned(v) => v.len(),
            Bytes::Borrowed(_) => 0,
        };
        self.charge(owned + 2 * SLOT)?;
        let id = self.id(self.heap.bytes.len())?;
        self.heap.bytes.push(b);
        Ok(id)
    }

    fn max_depth_of(&self, items: &[Value]) -> u32 {
        items.iter().map(|v| self.heap.depth(*v)).max().unwrap_or(0)
    }

    fn new_seq(&mut self, items: Vec<Value>, wrap: fn(Id) -> Value) -> Result<Value> {
        let depth = self.check_depth(self.max_depth_of(&items) + 1)?;
        self.charge(items.len() * SLOT + 3 * SLOT)?;
        let id = self.id(self.heap.seqs.len())?;
        self.heap.seqs.push(items);
        self.heap.seq_depth.push(depth);
        Ok(wrap(id))
    }

    fn new_dict(&mut self) -> Result<Value> {
        self.charge(3 * SLOT)?;
        let id = self.id(self.heap.dicts.len())?;
        self.heap.dicts.push(Vec::new());
        self.heap.dict_depth.push(1);
        Ok(Value::Dict(id))
    }

    fn new_object(&mut self, o: Object<'a>, children: &[Value]) -> Result<Value> {
        let depth = self.check_depth(self.max_depth_of(children) + 1)?;
        self.charge(std::mem::size_of::<Object<'_>>() + SLOT)?;
        let id = self.id(self.heap.objects.len())?;
        self.heap.objects.push(o);
        self.heap.object_depth.push(depth);
        Ok(Value::Object(id))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "unexpected end of data: needs {n} more bytes at byte {}, the stream has {} \
                 (truncated?)",
                self.pos,
                self.input.len()
            )));
        };
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn len32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn len64(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.err(format!("length {n} does not fit in memory")))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.input[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("unterminated text argument (truncated?)"));
        };
        let s =
            std::str::from_utf8(&rest[..nl]).map_err(|_| self.err("text argument is not UTF-8"))?;
        self.pos += nl + 1;
        Ok(s)
    }

    fn push_str(&mut self, n: usize) -> Result<()> {
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|_| self.err("string is not valid UTF-8"))?;
        let v = self.new_str(s)?;
        self.push(v)
    }

    fn push_bytes(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?;
        let id = self.new_bytes(Bytes::Borrowed(b))?;
        self.push(Value::Bytes(id))
    }

    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow (malformed pickle)"));
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("no MARK on the stack (malformed pickle)"));
        };
        Ok(self.stack.split_off(m))
    }

    fn top(&self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => Ok(*v),
            _ => Err(self.err("stack underflow (malformed pickle)")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let v = self.top()?;
        self.charge(4 * SLOT)?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .copied()
            .ok_or_else(|| self.err(format!("memo entry {key} used before it was stored")))?;
        self.push(v)
    }

    fn push_global(&mut self, module: &str, name: &str) -> Result<()> {
        let g = match (Global::resolve(module, name), self.policy) {
            (Some(g), _) => g,
            (None, Policy::Opaque) => {
                let Value::Str(id) = self.new_str(&format!("{module}.{name}"))? else {
                    unreachable!("new_str returns a Str")
                };
                Global::Unknown(id)
            }
            (None, Policy::Refuse) => {
                return Err(self.err(format!(
                    "refusing global `{module}.{name}`: this reader accepts only the numpy and \
                     tensor constructors such a file uses, and never imports or runs anything"
                )))
            }
        };
        self.push(Value::Global(g))
    }

    fn tuple_of(&mut self, n: usize) -> Result<()> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        let t = self.new_seq(items, Value::Tuple)?;
        self.push(t)
    }

    /// Appends `items` to the list or set `target`, updating its depth.
    fn extend_seq(&mut self, target: Value, items: Vec<Value>, op: &str) -> Result<()> {
        let (Value::List(id) | Value::Set(id)) = target else {
            return Err(self.err(format!(
                "{op} to {}, not a list or set",
                self.heap.kind(target)
            )));
        };
        let depth = self.check_depth(self.max_depth_of(&items) + 1)?;
        self.charge(items.len() * SLOT)?;
        let d = &mut self.heap.seq_depth[id as usize];
        *d = (*d).max(depth);
        self.heap.seqs[id as usize].extend(items);
        Ok(())
    }

    fn extend_dict(&mut self, target: Value, items: Vec<Value>, op: &str) -> Result<()> {
        let Value::Dict(id) = target else {
            return Err(self.err(format!("{op} on {}, not a dict", self.heap.kind(target))));
        };
        if !items.len().is_multiple_of(2) {
            return Err(self.err(format!("{op} with an odd number of items")));
        }
        let depth = self.check_depth(self.max_depth_of(&items) + 1)?;
        self.charge(items.len() * SLOT)?;
        let d = &mut self.heap.dict_depth[id as usize];
        *d = (*d).max(depth);
        let dict = &mut self.heap.dicts[id as usize];
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        Ok(())
    }

    fn run(mut self) -> Result<(Pickle<'a>, usize)> {
        loop {
            self.op_start = self.pos;
            if self.pos >= self.input.len() {
                return Err(self.err("unexpected end of data before STOP (truncated?)"));
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(self.err(format!(
                            "pickle protocol {proto} is not supported (2 to 5 are)"
                        )));
                    }
                }
                0x95 => {
                    // FRAME: a length hint for buffered readers; the opcodes simply follow.
                    self.take(8)?;
                }
                b'.' => {
                    let root = self.pop()?;
                    self.heap.root = root;
                    return Ok((self.heap, self.pos));
                }
                b'}' => {
                    let d = self.new_dict()?;
                    self.push(d)?;
                }
                b']' => {
                    let l = self.new_seq(Vec::new(), Value::List)?;
                    self.push(l)?;
                }
                0x8f => {
                    let s = self.new_seq(Vec::new(), Value::Set)?;
                    self.push(s)?;
                }
                b')' => {
                    let t = self.new_seq(Vec::new(), Value::Tuple)?;
                    self.push(t)?;
                }
                b'(' => {
                    self.charge(SLOT)?;
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?;
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v as i64))?;
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement of n bytes.
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len32()?
                    };
                    let raw = self.take(n)?;
                    let v = match long_to_i64(raw) {
                        Some(i) => Value::Int(i),
                        None => Value::BigInt(self.new_bytes(Bytes::Borrowed(raw))?),
                    };
                    self.push(v)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Value::Float(v))?;
                }
                b'X' => {
                    let n = self.len32()?;
                    self.push_str(n)?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.push_str(n)?;
                }
                0x8d => {
                    let n = self.len64()?;
                    self.push_str(n)?;
                }
                b'C' | b'U' => {
                    let n = self.u8()? as usize;
                    self.push_bytes(n)?;
                }
                b'B' => {
                    let n = self.len32()?;
                    self.push_bytes(n)?;
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.array()?);
                    if n < 0 {
                        return Err(self.err("negative BINSTRING length"));
                    }
                    self.push_bytes(n as usize)?;
                }
                0x8e | 0x96 => {
                    let n = self.len64()?;
                    self.push_bytes(n)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.len32()? as u64;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.len32()? as u64;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.heap.str(module), self.heap.str(name)) {
                        (Some(m), Some(n)) => {
                            let (m, n) = (m.to_string(), n.to_string());
                            self.push_global(&m, &n)?;
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.new_seq(items, Value::Tuple)?;
                    self.push(t)?;
                }
                0x85 => self.tuple_of(1)?,
                0x86 => self.tuple_of(2)?,
                0x87 => self.tuple_of(3)?,
                0x91 => {
                    let items = self.pop_mark()?;
                    let s = self.new_seq(items, Value::Set)?;
                    self.push(s)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?;
                    self.extend_seq(target, vec![v], "APPEND")?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.extend_seq(target, items, "APPENDS")?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.extend_seq(target, items, "ADDITEMS")?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?;
                    self.extend_dict(target, vec![k, v], "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.extend_dict(target, items, "SETITEMS")?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(func, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    // NEWOBJ: cls.__new__(cls, *args), interpreted as a call.
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                0x92 => {
                    // NEWOBJ_EX: keyword arguments are only ever given to opaque classes.
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.new_object(Object::Persistent(pid), &[pid])?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.build(obj, state)?;
                }
                other => {
                    let shown = if other.is_ascii_graphic() {
                        format!(" (`{}`)", other as char)
                    } else {
                        String::new()
                    };
                    return Err(self.err(format!(
                        "unsupported opcode 0x{other:02x}{shown}: this reader understands the \
                         opcodes of pickle protocols 2 to 5 that data files use"
                    )));
                }
            }
        }
    }

    fn non_negative(&self, v: Value, what: &str) -> Result<usize> {
        match v {
            Value::Int(n) if n >= 0 => usize::try_from(n)
                .map_err(|_| self.err(format!("{what} {n} does not fit in memory"))),
            _ => Err(self.err(format!(
                "{what} is {}, expected a non-negative integer",
                self.heap.kind(v)
            ))),
        }
    }

    /// Dimensions (or strides) from a tuple of non-negative integers.
    fn dims(&self, v: Value, what: &str) -> Result<Vec<usize>> {
        let items = match v {
            Value::Tuple(_) | Value::List(_) => self.heap.items(v).expect("a sequence"),
            _ => {
                return Err(self.err(format!(
                    "{what} is {}, expected a tuple of integers",
                    self.heap.kind(v)
                )))
            }
        };
        if items.len() > self.limits.max_dims {
            return Err(self.err(format!(
                "{what} has {} dimensions (the reader's limit is {})",
                items.len(),
                self.limits.max_dims
            )));
        }
        items.iter().map(|d| self.non_negative(*d, what)).collect()
    }

    /// Interprets `func(*args)` for the allowed globals; records it for opaque ones.
    fn call(&mut self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(g) = func else {
            return Err(self.err(format!(
                "REDUCE calls {}, which is not callable",
                self.heap.kind(func)
            )));
        };
        let Value::Tuple(args_id) = args else {
            return Err(self.err("call arguments are not a tuple"));
        };
        let argv: Vec<Value> = self.heap.seqs[args_id as usize].clone();
        let bad = |m: &Self, what: &str| m.err(format!("unexpected arguments to {what}"));
        match g {
            Global::Unknown(class) => self.new_object(
                Object::Opaque {
                    class,
                    args,
                    state: None,
                },
                &[args],
            ),
            Global::OrderedDict => match argv.as_slice() {
                [] => self.new_dict(),
                _ => Err(bad(self, "collections.OrderedDict")),
            },
            Global::TorchSize => match argv.as_slice() {
                [t @ Value::Tuple(_)] => Ok(*t),
                _ => Err(bad(self, "torch.Size")),
            },
            Global::RebuildTensor | Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let (fixed, name) = match g {
                    Global::RebuildTensor => (4, "torch._utils._rebuild_tensor"),
                    Global::RebuildTensorV2 => (4, "torch._utils._rebuild_tensor_v2"),
                    _ => (7, "torch._utils._rebuild_tensor_v3"),
                };
                if argv.len() < fixed {
                    return Err(bad(self, name));
                }
                let storage = argv[0];
                let offset = self.non_negative(argv[1], "tensor storage offset")?;
                let shape = self.dims(argv[2], "tensor shape")?;
                let stride = self.dims(argv[3], "tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(self.err(format!(
                        "tensor shape {shape:?} and stride {stride:?} differ in length"
                    )));
                }
                let dtype = match (g, argv.get(6)) {
                    (Global::RebuildTensorV3, Some(Value::Global(Global::TorchDtype(d)))) => {
                        Some(*d)
                    }
                    (Global::RebuildTensorV3, _) => return Err(bad(self, name)),
                    _ => None,
                };
                let t = TensorRef {
                    storage,
                    offset,
                    shape,
                    stride,
                    dtype,
                };
                self.new_object(Object::Tensor(t), &[storage])
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match argv.first() {
                Some(data) if self.is_tensor(*data) => Ok(*data),
                _ => Err(bad(self, "torch._utils._rebuild_parameter")),
            },
            Global::RebuildFromTypeV2 => match argv.as_slice() {
                [Value::Global(inner), _ty, inner_args, _state]
                    if matches!(
                        inner,
                        Global::RebuildTensor
                            | Global::RebuildTensorV2
                            | Global::RebuildTensorV3
                            | Global::RebuildParameter
                    ) =>
                {
                    self.call(Value::Global(*inner), *inner_args)
                }
                _ => Err(bad(self, "torch._tensor._rebuild_from_type_v2")),
            },
            Global::Storage(_) | Global::TorchDtype(_) | Global::NumpyNdarray => {
                Err(self.err(format!(
                    "{} may only appear as an argument, not be called",
                    global_name(g)
                )))
            }
            Global::NumpyReconstruct => match argv.as_slice() {
                [Value::Global(Global::NumpyNdarray), Value::Tuple(_), Value::Bytes(_)] => {
                    self.new_object(Object::EmptyArray, &[])
                }
                _ => Err(bad(self, "numpy _reconstruct")),
            },
            Global::NumpyDtype => match argv.first().and_then(|v| self.heap.str(*v)) {
                Some(descr) => match NpDtype::parse(descr) {
                    Some(d) => self.new_object(Object::NumpyDtype(d), &[]),
                    None => Err(self.err(format!(
                        "numpy dtype `{descr}` is not supported (only bool, integer and float \
                         arrays are)"
                    ))),
                },
                None => Err(bad(self, "numpy.dtype")),
            },
            Global::NumpyFromBuffer => match argv.as_slice() {
                [buf @ Value::Bytes(_), dtype, shape, order] => {
                    let dtype = self
                        .np_dtype(*dtype)
                        .ok_or_else(|| bad(self, "_frombuffer"))?;
                    let shape = self.dims(*shape, "array shape")?;
                    let fortran = self.heap.str(*order) == Some("F");
                    let array = self.np_array(dtype, shape, fortran, *buf)?;
                    self.new_object(Object::Array(array), &[])
                }
                _ => Err(bad(self, "numpy _frombuffer")),
            },
            Global::NumpyScalar => match argv.as_slice() {
                [dtype, raw @ Value::Bytes(_)] => {
                    let dtype = self
                        .np_dtype(*dtype)
                        .ok_or_else(|| bad(self, "numpy scalar"))?;
                    let raw = self.heap.bytes(*raw).expect("bytes");
                    if raw.len() != dtype.size {
                        return Err(bad(self, "numpy scalar"));
                    }
                    Ok(match dtype.kind {
                        b'f' => Value::Float(dtype.float(raw)),
                        b'b' => Value::Bool(raw[0] != 0),
                        _ => Value::Int(dtype.integer(raw)),
                    })
                }
                _ => Err(bad(self, "numpy scalar")),
            },
            Global::CodecsEncode => match argv.as_slice() {
                [s @ Value::Str(_), enc]
                    if matches!(self.heap.str(*enc), Some("latin1" | "latin-1")) =>
                {
                    let s = self.heap.str(*s).expect("str");
                    let mut out = Vec::with_capacity(s.len());
                    for ch in s.chars() {
                        let c = ch as u32;
                        if c > 0xff {
                            return Err(self.err("latin-1 string with a character above U+00FF"));
                        }
                        out.push(c as u8);
                    }
                    let id = self.new_bytes(Bytes::Owned(out.into()))?;
                    Ok(Value::Bytes(id))
                }
                _ => Err(bad(self, "_codecs.encode")),
            },
        }
    }

    fn is_tensor(&self, v: Value) -> bool {
        matches!(self.heap.object(v), Some(Object::Tensor(_)))
    }

    fn np_dtype(&self, v: Value) -> Option<NpDtype> {
        match self.heap.object(v)? {
            Object::NumpyDtype(d) => Some(*d),
            _ => None,
        }
    }

    fn np_array(
        &self,
        dtype: NpDtype,
        shape: Vec<usize>,
        fortran: bool,
        data: Value,
    ) -> Result<NumpyArray<'a>> {
        let raw = match data {
            Value::Bytes(id) => self.heap.bytes[id as usize].clone(),
            other => {
                return Err(self.err(format!(
                    "array data is {} (object arrays are not supported)",
                    self.heap.kind(other)
                )))
            }
        };
        NumpyArray::new(dtype, shape, fortran, raw).map_err(|m| self.err(m))
    }

    /// Interprets `BUILD`: completes a numpy array or dtype; records the state of an opaque
    /// object; ignores the attribute dict of an `OrderedDict` (a state dict's `_metadata`).
    fn build(&mut self, obj: Value, state: Value) -> Result<()> {
        if let Value::Dict(_) = obj {
            return Ok(());
        }
        let Value::Object(id) = obj else {
            return Err(self.err(format!(
                "BUILD on {}, which this reader cannot build",
                self.heap.kind(obj)
            )));
        };
        let fields: Vec<Value> = self
            .heap
            .items(state)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let new = match &self.heap.objects[id as usize] {
            Object::Opaque { class, args, .. } => {
                let depth = self.check_depth(self.heap.depth(state) + 1)?;
                let d = &mut self.heap.object_depth[id as usize];
                *d = (*d).max(depth);
                Object::Opaque {
                    class: *class,
                    args: *args,
                    state: Some(state),
                }
            }
            Object::NumpyDtype(d) => {
                let mut d = *d;
                match fields.get(1).and_then(|v| self.heap.str(*v)) {
                    Some("<" | "|" | "=") => d.big_endian = false,
                    Some(">") => d.big_endian = true,
                    Some(o) => return Err(self.err(format!("unknown dtype byte order `{o}`"))),
                    None => return Err(self.err("dtype state has no byte order")),
                }
                Object::NumpyDtype(d)
            }
            Object::EmptyArray => {
                // ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)); the
                // version is absent in very old pickles.
                let f = match fields.as_slice() {
                    [Value::Int(_), rest @ ..] if rest.len() == 4 => rest,
                    all if all.len() == 4 => all,
                    _ => {
                        return Err(
                            self.err("array state is not (version, shape, dtype, fortran, data)")
                        )
                    }
                };
                let dtype = self
                    .np_dtype(f[1])
                    .ok_or_else(|| self.err("array state has no dtype"))?;
                let Value::Bool(fortran) = f[2] else {
                    return Err(self.err("array state has unexpected field types"));
                };
                let shape = self.dims(f[0], "array shape")?;
                Object::Array(self.np_array(dtype, shape, fortran, f[3])?)
            }
            other => {
                return Err(self.err(format!(
                    "BUILD on {}, which this reader cannot build",
                    match other {
                        Object::Array(_) => "an array that is already built",
                        Object::Tensor(_) => "a tensor",
                        _ => "a storage reference",
                    }
                )))
            }
        };
        self.heap.objects[id as usize] = new;
        Ok(())
    }
}

fn global_name(g: Global) -> &'static str {
    match g {
        Global::Storage(_) => "a torch storage type",
        Global::TorchDtype(_) => "a torch dtype",
        _ => "numpy.ndarray",
    }
}

/// A `LONG1`/`LONG4` payload as an `i64`, or `None` when it needs more than 8 bytes.
fn long_to_i64(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() {
        return Some(0);
    }
    let negative = raw[raw.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    // Sign-extension bytes beyond the eighth carry no information.
    let (low, high) = raw.split_at(raw.len().min(8));
    if high.iter().any(|&b| b != fill) {
        return None;
    }
    let mut buf = [fill; 8];
    buf[..low.len()].copy_from_slice(low);
    let v = i64::from_le_bytes(buf);
    // The sign of the 8-byte value must match the sign of the whole.
    ((v < 0) == negative).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<String> {
        let (p, _) = Pickle::load(bytes, &Limits::default(), Policy::Refuse)?;
        Ok(p.kind(p.root()))
    }

    #[test]
    fn protocol_0_style_global_is_refused_before_anything_is_called() {
        // GLOBAL 'os system', then the argument tuple and REDUCE: refused at the GLOBAL.
        let m = run(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")
            .unwrap_err()
            .to_string();
        assert!(m.contains("byte 2") && m.contains("`os.system`"), "{m}");
        let m = run(b"\x80\x02cbuiltins\neval\n.").unwrap_err().to_string();
        assert!(m.contains("`builtins.eval`"), "{m}");
    }

    #[test]
    fn opaque_policy_records_unknown_calls_without_running_them() {
        let (p, _) = Pickle::load(
            b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.",
            &Limits::default(),
            Policy::Opaque,
        )
        .unwrap();
        assert_eq!(
            p.kind(p.root()),
            "a `os.system` object (recorded, never run)"
        );
    }

    #[test]
    fn structural_errors_are_reported() {
        let err = |b: &[u8]| run(b).unwrap_err().to_string();
        assert!(err(b"\x80\x02").contains("before STOP"));
        assert!(err(b"\x80\x09}.").contains("protocol 9"));
        assert!(err(b"\x80\x02h\x05.").contains("memo entry 5"));
        assert!(err(b"\x80\x02K\x01R.").contains("underflow"));
        assert!(err(b"\x80\x02(K\x01a.").contains("underflow"));
        assert_eq!(
            run(b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u.").unwrap(),
            "a dict"
        );
        // A length pointing past the end of the data.
        let m = err(b"\x80\x04\x8e\xff\xff\xff\xff\x00\x00\x00\x00");
        assert!(m.contains("truncated"), "{m}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 200,000 nested 1-tuples (issue 13's ~1 MB pickle, shortened).
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.push(b'.');
        let m = run(&p).unwrap_err().to_string();
        assert!(m.contains("nest deeper than 200"), "{m}");
        // 300,000 lists, each appended to the previous one.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', 300_000));
        p.extend(std::iter::repeat_n(b'a', 299_999));
        p.push(b'.');
        let m = run(&p).unwrap_err().to_string();
        assert!(m.contains("nest deeper than 200"), "{m}");
    }

    #[test]
    fn self_referencing_and_aliased_lists_are_inert() {
        // l = []; l.append(l): a cycle, which the arena holds without leaking or recursing.
        assert_eq!(run(b"\x80\x02]q\x00h\x00a.").unwrap(), "a list");
        // Nesting built through memo aliases after the outer list was stored: tracked depths
        // undercount, but nothing recurses, so a long chain is harmless.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..100_000 {
            // push a new list, memo it at 1, append it to the list at 0, make 1 the new 0.
            p.extend_from_slice(b"h\x00]q\x01a0h\x01q\x000");
        }
        p.extend_from_slice(b"h\x00.");
        assert_eq!(run(&p).unwrap(), "a list");
    }

    #[test]
    fn memory_is_bounded_before_allocation() {
        // 1,000,000 memo gets of one list (2 bytes each) would hold 16 MB of stack slots.
        let mut p = b"\x80\x02]q\x00(".to_vec();
        p.extend(std::iter::repeat_n(*b"h\x00", 1_000_000).flatten());
        p.extend_from_slice(b"e.");
        let tight = Limits {
            max_interpreter_bytes: 1 << 20,
            ..Limits::default()
        };
        let m = Pickle::load(&p, &tight, Policy::Refuse)
            .unwrap_err()
            .to_string();
        assert!(m.contains("needs more than 1 MiB"), "{m}");
        assert!(Pickle::load(&p, &Limits::default(), Policy::Refuse).is_ok());
    }

    #[test]
    fn long_integers() {
        assert_eq!(long_to_i64(&[]), Some(0));
        assert_eq!(long_to_i64(&[0xff]), Some(-1));
        assert_eq!(long_to_i64(&[0x80, 0x00]), Some(128));
        assert_eq!(long_to_i64(&7i64.to_le_bytes()), Some(7));
        assert_eq!(long_to_i64(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]), None);
        assert_eq!(long_to_i64(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(
            long_to_i64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Some(-1)
        );
    }
}
