//! A pickle reader that cannot run code, for RST's `ti_500K_pseudo_labeled.pickle`.
//!
//! Python's pickle format is a small stack machine whose `GLOBAL` + `REDUCE` opcodes call any
//! importable function, which is why `pickle.load` on an untrusted file is arbitrary code
//! execution. This reader implements only the opcodes that a pickled `dict` of numpy arrays
//! uses (protocols 2 to 5), and "calls" only the handful of numpy / codec constructors such a
//! file names, by interpreting them itself:
//!
//! * `numpy.core.multiarray._reconstruct` (or `numpy._core.multiarray`) + `BUILD`: an `ndarray`;
//! * `numpy.dtype` + `BUILD`: its element type and byte order;
//! * `numpy.core.numeric._frombuffer` (or `numpy._core.numeric`): protocol 5's in-band arrays;
//! * `numpy.core.multiarray.scalar`: a numpy integer scalar;
//! * `_codecs.encode(str, 'latin1')`: how protocol 2 spells a `bytes` object.
//!
//! Any other global (`os.system`, `builtins.eval`, ...) or opcode is refused with an error naming
//! the file, the byte offset and what was found. Nothing is ever imported or executed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

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
    let bytes = match std::fs::read(path) {
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
    let root = Machine::new(&bytes, path).run()?;
    let fail = |message: String| Error::format(path, message);
    let Value::Dict(dict) = &root else {
        return Err(fail(format!(
            "top-level object is {}, expected a dict with `data` and `extrapolated_targets`",
            root.kind()
        )));
    };
    let dict = dict.borrow();
    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| k.as_key() == Some(key.as_bytes()))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| fail(format!("the dict has no `{key}` entry")))
    };
    let data = get("data")?;
    let targets = get("extrapolated_targets")?;

    let data = data
        .as_array()
        .ok_or_else(|| fail(format!("`data` is {}, expected a numpy array", data.kind())))?;
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

    let labels: Vec<i64> = match &targets {
        Value::List(items) => items
            .borrow()
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(*i),
                other => Err(fail(format!(
                    "`extrapolated_targets` holds {}, expected integers",
                    other.kind()
                ))),
            })
            .collect::<Result<_>>()?,
        other => {
            let a = other.as_array().ok_or_else(|| {
                fail(format!(
                    "`extrapolated_targets` is {}, expected an integer numpy array",
                    other.kind()
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
    let hwc = data.data.as_slice();
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

/// A byte string: a slice of the file, or bytes the reader built (protocol 2's latin-1 strings).
#[derive(Debug, Clone)]
enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Rc<Vec<u8>>),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Owned(v) => v,
        }
    }
}

/// The only callables a file may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    Reconstruct,
    NdArray,
    DtypeClass,
    FromBuffer,
    Scalar,
    CodecsEncode,
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        let numpy_core = |sub: &str| {
            module == format!("numpy.core.{sub}") || module == format!("numpy._core.{sub}")
        };
        Some(match (module, name) {
            (_, "_reconstruct") if numpy_core("multiarray") => Global::Reconstruct,
            (_, "scalar") if numpy_core("multiarray") => Global::Scalar,
            (_, "_frombuffer") if numpy_core("numeric") => Global::FromBuffer,
            ("numpy", "ndarray") => Global::NdArray,
            ("numpy", "dtype") => Global::DtypeClass,
            ("_codecs", "encode") => Global::CodecsEncode,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Dtype {
    /// numpy kind character: b'u', b'i', b'b' (bool) or b'f'.
    kind: u8,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        let b = descr.as_bytes();
        let kind = *b.first()?;
        let size: usize = descr.get(1..)?.parse().ok()?;
        let ok = match kind {
            b'u' | b'i' => matches!(size, 1 | 2 | 4 | 8),
            b'b' => size == 1,
            b'f' => matches!(size, 2 | 4 | 8),
            _ => false,
        };
        ok.then_some(Dtype {
            kind,
            size,
            big_endian: false,
        })
    }

    fn name(&self) -> String {
        let kind = match self.kind {
            b'u' => "uint",
            b'i' => "int",
            b'b' => return "bool".into(),
            _ => "float",
        };
        format!("{kind}{}", self.size * 8)
    }

    fn integer(&self, raw: &[u8]) -> i64 {
        let mut buf = [0u8; 8];
        let n = self.size;
        if self.big_endian {
            for (i, &b) in raw.iter().rev().enumerate() {
                buf[i] = b;
            }
        } else {
            buf[..n].copy_from_slice(raw);
        }
        let negative = self.kind == b'i' && buf[n - 1] & 0x80 != 0;
        if negative {
            for b in &mut buf[n..] {
                *b = 0xff;
            }
        }
        i64::from_le_bytes(buf)
    }
}

#[derive(Debug, Clone)]
struct Array<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    fortran: bool,
    data: Bytes<'a>,
}

impl Array<'_> {
    /// Elements as integers (the caller checked that the dtype is an integer type). A `uint64`
    /// above `i64::MAX` wraps negative and so fails the label range check.
    fn integers(&self) -> Vec<i64> {
        self.data
            .as_slice()
            .chunks_exact(self.dtype.size)
            .map(|c| self.dtype.integer(c))
            .collect()
    }
}

/// Objects that `BUILD` completes in place; shared through the memo like Python objects.
#[derive(Debug)]
enum Object<'a> {
    /// `_reconstruct(ndarray, (0,), b'b')` before its `BUILD`.
    EmptyArray,
    Array(Array<'a>),
    Dtype(Dtype),
}

#[derive(Debug, Clone)]
enum Value<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// A Python float (allowed as an ignored dict value; its value is never needed).
    Float,
    Str(Rc<str>),
    Bytes(Bytes<'a>),
    Tuple(Rc<Vec<Value<'a>>>),
    List(Rc<RefCell<Vec<Value<'a>>>>),
    Dict(Rc<RefCell<Vec<(Value<'a>, Value<'a>)>>>),
    Global(Global),
    Object(Rc<RefCell<Object<'a>>>),
}

impl<'a> Value<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Object(o) => match &*o.borrow() {
                Object::EmptyArray => "an unfinished array",
                Object::Array(_) => "a numpy array",
                Object::Dtype(_) => "a numpy dtype",
            },
        }
    }

    fn as_key(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b.as_slice()),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Array<'a>> {
        match self {
            Value::Object(o) => match &*o.borrow() {
                Object::Array(a) => Some(a.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    fn as_dtype(&self) -> Option<Dtype> {
        match self {
            Value::Object(o) => match &*o.borrow() {
                Object::Dtype(d) => Some(*d),
                _ => None,
            },
            _ => None,
        }
    }
}

struct Machine<'a, 'p> {
    input: &'a [u8],
    pos: usize,
    op_start: usize,
    stack: Vec<Value<'a>>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value<'a>>,
    path: &'p Path,
}

impl<'a, 'p> Machine<'a, 'p> {
    fn new(input: &'a [u8], path: &'p Path) -> Self {
        Self {
            input,
            pos: 0,
            op_start: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            path,
        }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Pickle {
            path: self.path.to_path_buf(),
            offset: self.op_start,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "unexpected end of file: needs {n} more bytes at byte {}, the file has {} \
                 (truncated?)",
                self.pos,
                self.input.len()
            )));
        };
        let s = &self.input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| self.err(format!("length {n} does not fit in memory")))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.input[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("unterminated GLOBAL name (truncated?)"));
        };
        let s =
            std::str::from_utf8(&rest[..nl]).map_err(|_| self.err("GLOBAL name is not UTF-8"))?;
        self.pos += nl + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value<'a>> {
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|_| self.err("string is not valid UTF-8"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn pop(&mut self) -> Result<Value<'a>> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow (malformed pickle)"));
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value<'a>>> {
        let Some(m) = self.marks.pop() else {
            return Err(self.err("no MARK on the stack (malformed pickle)"));
        };
        Ok(self.stack.split_off(m))
    }

    fn top(&self) -> Result<&Value<'a>> {
        self.stack
            .last()
            .ok_or_else(|| self.err("stack underflow (malformed pickle)"))
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {key} used before it was stored")))?;
        self.stack.push(v);
        Ok(())
    }

    fn push_global(&mut self, module: &str, name: &str) -> Result<()> {
        match Global::resolve(module, name) {
            Some(g) => {
                self.stack.push(Value::Global(g));
                Ok(())
            }
            None => Err(self.err(format!(
                "refusing global `{module}.{name}`: this reader only accepts the numpy array \
                 constructors a pickled dict of arrays uses, and never imports or runs anything"
            ))),
        }
    }

    fn tuple_of(&mut self, n: usize) -> Result<()> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        self.stack.push(Value::Tuple(Rc::new(items)));
        Ok(())
    }

    fn run(mut self) -> Result<Value<'a>> {
        loop {
            self.op_start = self.pos;
            if self.pos >= self.input.len() {
                return Err(self.err("unexpected end of file before STOP (truncated?)"));
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
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'}' => self
                    .stack
                    .push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b']' => self
                    .stack
                    .push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b')' => self.stack.push(Value::Tuple(Rc::new(Vec::new()))),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.u8()? as usize;
                    if n > 8 {
                        return Err(self.err(format!("integer of {n} bytes is too large")));
                    }
                    let raw = self.take(n)?;
                    let v = if n == 0 {
                        0
                    } else {
                        Dtype {
                            kind: b'i',
                            size: n,
                            big_endian: false,
                        }
                        .integer_any(raw)
                    };
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Float);
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.len64()?;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                b'C' | b'U' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(Bytes::Borrowed(b)));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(Bytes::Borrowed(b)));
                }
                b'T' => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(self.err("negative BINSTRING length"));
                    }
                    let b = self.take(n as usize)?;
                    self.stack.push(Value::Bytes(Bytes::Borrowed(b)));
                }
                0x8e | 0x96 => {
                    let n = self.len64()?;
                    let b = self.take(n)?;
                    self.stack.push(Value::Bytes(Bytes::Borrowed(b)));
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()? as u64;
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
                    let k = self.u32()? as u64;
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
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.push_global(&m, &n)?;
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85 => self.tuple_of(1)?,
                0x86 => self.tuple_of(2)?,
                0x87 => self.tuple_of(3)?,
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => {
                            return Err(self.err(format!("APPEND to {}, not a list", other.kind())))
                        }
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => {
                            return Err(self.err(format!("APPENDS to {}, not a list", other.kind())))
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().push((k, v)),
                        other => {
                            return Err(self.err(format!("SETITEM on {}, not a dict", other.kind())))
                        }
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd number of items"));
                    }
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().extend(pairs),
                        other => {
                            return Err(
                                self.err(format!("SETITEMS on {}, not a dict", other.kind()))
                            )
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.call(&func, &args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    self.build(&obj, &state)?;
                }
                other => {
                    let shown = if other.is_ascii_graphic() {
                        format!(" (`{}`)", other as char)
                    } else {
                        String::new()
                    };
                    return Err(self.err(format!(
                        "unsupported opcode 0x{other:02x}{shown}: this reader understands only \
                         the opcodes of a pickled dict of numpy arrays"
                    )));
                }
            }
        }
    }

    /// Interprets `func(*args)` for the allowed globals.
    fn call(&self, func: &Value<'a>, args: &Value<'a>) -> Result<Value<'a>> {
        let Value::Global(g) = func else {
            return Err(self.err(format!(
                "REDUCE calls {}, which is not callable",
                func.kind()
            )));
        };
        let Value::Tuple(args) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        let args = args.as_slice();
        let bad = |what: &str| self.err(format!("unexpected arguments to {what}"));
        let object = |o: Object<'a>| Value::Object(Rc::new(RefCell::new(o)));
        match g {
            Global::Reconstruct => match args {
                [Value::Global(Global::NdArray), Value::Tuple(_), Value::Bytes(_)] => {
                    Ok(object(Object::EmptyArray))
                }
                _ => Err(bad("numpy _reconstruct")),
            },
            Global::DtypeClass => match args {
                [Value::Str(descr), ..] => Dtype::parse(descr)
                    .map(|d| object(Object::Dtype(d)))
                    .ok_or_else(|| {
                        self.err(format!(
                            "numpy dtype `{descr}` is not supported (only bool, integer and \
                             float arrays are)"
                        ))
                    }),
                _ => Err(bad("numpy.dtype")),
            },
            Global::FromBuffer => match args {
                [Value::Bytes(buf), dtype, Value::Tuple(shape), Value::Str(order)] => {
                    let dtype = dtype.as_dtype().ok_or_else(|| bad("numpy _frombuffer"))?;
                    let shape = self.shape(shape)?;
                    let array = self.array(dtype, shape, &**order == "F", buf.clone())?;
                    Ok(object(Object::Array(array)))
                }
                _ => Err(bad("numpy _frombuffer")),
            },
            Global::Scalar => match args {
                [dtype, Value::Bytes(raw)] => {
                    let dtype = dtype.as_dtype().ok_or_else(|| bad("numpy scalar"))?;
                    let raw = raw.as_slice();
                    if !matches!(dtype.kind, b'i' | b'u') || raw.len() != dtype.size {
                        return Err(self.err(format!(
                            "numpy scalar of type {} is not supported",
                            dtype.name()
                        )));
                    }
                    Ok(Value::Int(dtype.integer(raw)))
                }
                _ => Err(bad("numpy scalar")),
            },
            Global::CodecsEncode => match args {
                [Value::Str(s), Value::Str(enc)] if matches!(&**enc, "latin1" | "latin-1") => {
                    let mut out = Vec::with_capacity(s.len());
                    for ch in s.chars() {
                        let c = ch as u32;
                        if c > 0xff {
                            return Err(self.err("latin-1 string with a character above U+00FF"));
                        }
                        out.push(c as u8);
                    }
                    Ok(Value::Bytes(Bytes::Owned(Rc::new(out))))
                }
                _ => Err(bad("_codecs.encode")),
            },
            Global::NdArray => Err(self.err("numpy.ndarray may only appear inside _reconstruct")),
        }
    }

    /// Interprets `BUILD`: completes an array from its `__setstate__` tuple or sets a dtype's byte
    /// order.
    fn build(&self, obj: &Value<'a>, state: &Value<'a>) -> Result<()> {
        let Value::Object(cell) = obj else {
            return Err(self.err(format!(
                "BUILD on {}, which this reader cannot build",
                obj.kind()
            )));
        };
        let Value::Tuple(state) = state else {
            return Err(self.err("BUILD state is not a tuple"));
        };
        let mut slot = cell.borrow_mut();
        match &mut *slot {
            Object::Dtype(d) => {
                match state.get(1) {
                    Some(Value::Str(order)) => match &**order {
                        "<" | "|" | "=" => d.big_endian = false,
                        ">" => d.big_endian = true,
                        o => return Err(self.err(format!("unknown dtype byte order `{o}`"))),
                    },
                    _ => return Err(self.err("dtype state has no byte order")),
                }
                Ok(())
            }
            Object::EmptyArray => {
                // ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)); the version
                // is absent in very old pickles.
                let fields = match state.as_slice() {
                    [Value::Int(_), rest @ ..] if rest.len() == 4 => rest,
                    all if all.len() == 4 => all,
                    _ => {
                        return Err(
                            self.err("array state is not (version, shape, dtype, fortran, data)")
                        )
                    }
                };
                let [Value::Tuple(shape), dtype, Value::Bool(fortran), raw] = fields else {
                    return Err(self.err("array state has unexpected field types"));
                };
                let dtype = dtype
                    .as_dtype()
                    .ok_or_else(|| self.err("array state has no dtype"))?;
                let Value::Bytes(raw) = raw else {
                    return Err(self.err(format!(
                        "array data is {} (object arrays are not supported)",
                        raw.kind()
                    )));
                };
                let shape = self.shape(shape)?;
                *slot = Object::Array(self.array(dtype, shape, *fortran, raw.clone())?);
                Ok(())
            }
            Object::Array(_) => Err(self.err("BUILD on an array that is already built")),
        }
    }

    fn shape(&self, dims: &[Value<'a>]) -> Result<Vec<usize>> {
        dims.iter()
            .map(|d| match d {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(self.err("array shape holds a non-integer or negative dimension")),
            })
            .collect()
    }

    fn array(
        &self,
        dtype: Dtype,
        shape: Vec<usize>,
        fortran: bool,
        data: Bytes<'a>,
    ) -> Result<Array<'a>> {
        let expected = shape
            .iter()
            .try_fold(dtype.size, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.as_slice().len()) {
            return Err(self.err(format!(
                "array of shape {shape:?} and type {} needs {} bytes but holds {}",
                dtype.name(),
                expected.map_or("too many".to_string(), |e| e.to_string()),
                data.as_slice().len()
            )));
        }
        Ok(Array {
            dtype,
            shape,
            fortran,
            data,
        })
    }
}

impl Dtype {
    /// Two's-complement integer of `raw.len()` bytes (1..=8), for `LONG1`.
    fn integer_any(&self, raw: &[u8]) -> i64 {
        Dtype {
            size: raw.len(),
            ..*self
        }
        .integer(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<String> {
        Machine::new(bytes, Path::new("t.pickle"))
            .run()
            .map(|v| v.kind().to_string())
    }

    #[test]
    fn protocol_0_style_global_is_refused_before_anything_is_called() {
        // GLOBAL 'os system', then the argument tuple and REDUCE: refused at the GLOBAL.
        let m = run(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("t.pickle") && m.contains("byte 2") && m.contains("`os.system`"),
            "{m}"
        );
        let m = run(b"\x80\x02cbuiltins\neval\n.").unwrap_err().to_string();
        assert!(m.contains("`builtins.eval`"), "{m}");
    }

    #[test]
    fn structural_errors_are_reported() {
        assert!(run(b"\x80\x02")
            .unwrap_err()
            .to_string()
            .contains("before STOP"));
        assert!(run(b"\x80\x09}.")
            .unwrap_err()
            .to_string()
            .contains("protocol 9"));
        assert!(run(b"\x80\x02h\x05.")
            .unwrap_err()
            .to_string()
            .contains("memo entry 5"));
        assert!(run(b"\x80\x02K\x01R.")
            .unwrap_err()
            .to_string()
            .contains("underflow"));
        assert_eq!(
            run(b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u.").unwrap(),
            "a dict"
        );
        // A length pointing past the end of the file.
        let m = run(b"\x80\x04\x8e\xff\xff\xff\xff\x00\x00\x00\x00")
            .unwrap_err()
            .to_string();
        assert!(m.contains("truncated"), "{m}");
    }

    #[test]
    fn integers_of_every_width_and_byte_order() {
        let d = |kind, size, big_endian| Dtype {
            kind,
            size,
            big_endian,
        };
        assert_eq!(d(b'i', 1, false).integer(&[0xff]), -1);
        assert_eq!(d(b'u', 1, false).integer(&[0xff]), 255);
        assert_eq!(d(b'i', 2, true).integer(&[0x01, 0x02]), 0x0102);
        assert_eq!(d(b'i', 4, false).integer(&[0xfe, 0xff, 0xff, 0xff]), -2);
        assert_eq!(d(b'i', 8, false).integer(&7i64.to_le_bytes()), 7);
        assert_eq!(Dtype::parse("u1").unwrap().name(), "uint8");
        assert!(Dtype::parse("O8").is_none() && Dtype::parse("U5").is_none());
    }
}
