//! Bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so that the committed corpora are
//! replayed through the same code by ordinary tests on stable (`tests/fuzz_corpus.rs`).

use crate::{torch, Limits, Pickle, Policy, Value};

/// Limits small enough that a fuzzer's inputs cannot make a run slow by sheer size.
fn limits() -> Limits {
    Limits {
        max_interpreter_bytes: 64 << 20,
        max_extra_tensor_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// One pickle under both policies, and every value it built visited through the accessors.
pub fn pickle(data: &[u8]) {
    for policy in [Policy::Refuse, Policy::Opaque] {
        if let Ok((p, used)) = Pickle::load(data, &limits(), policy) {
            assert!(used <= data.len());
            let mut budget = 10_000;
            visit(&p, p.root(), 0, &mut budget);
        }
    }
}

/// Walks `v` (a value graph may share and even contain itself: the walk is bounded in depth
/// and in nodes, as any consumer's must be).
fn visit(p: &Pickle<'_>, v: Value, depth: usize, budget: &mut usize) {
    if depth > 256 || *budget == 0 {
        return;
    }
    *budget -= 1;
    let _ = p.kind(v);
    let _ = (
        p.key(v),
        p.int(v),
        p.bytes(v),
        p.array(v).map(|a| a.integers().len()),
    );
    if let Some(items) = p.items(v) {
        for item in items {
            visit(p, *item, depth + 1, budget);
        }
    }
    if let Some(entries) = p.dict(v) {
        for (k, item) in entries {
            visit(p, *k, depth + 1, budget);
            visit(p, *item, depth + 1, budget);
        }
    }
}

/// A checkpoint of any container, every tensor packed in C order.
pub fn torch_checkpoint(data: &[u8]) {
    if let Ok(c) = torch::read(data, &limits()) {
        for (_, t) in &c.tensors {
            assert_eq!(t.contiguous_bytes().len(), t.numel() * t.dtype.size());
        }
    }
}

/// A `torch.save` zip archive laid out byte for byte as PyTorch's writer (`caffe2::serialize::
/// PyTorchStreamWriter` over miniz) lays it out: `records` in order, each a stored local
/// header of `<archive>/<name>` with an `FB` extra field of `Z`s that aligns its data to 64
/// bytes, the data, and a data descriptor; the central directory; and, always, a ZIP64 end
/// record and locator before the end record. Records of 4 GiB or more (which get ZIP64 extra
/// fields) are not produced. `tests/torch_zip_names.rs` checks it against files `torch.save`
/// wrote (`scripts/golden/torch_zip_names.py`).
pub fn torch_zip(archive: &str, records: &[(&str, &[u8])]) -> Vec<u8> {
    const ALIGNMENT: usize = 64;
    const LOCAL_HEADER: usize = 30;
    let u16le = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u16).to_le_bytes());
    let u32le = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u32).to_le_bytes());
    let u64le = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u64).to_le_bytes());
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in records {
        let name = format!("{archive}/{name}");
        let offset = out.len();
        let crc = crc32fast::hash(data) as usize;
        let start = offset + LOCAL_HEADER + name.len() + 4;
        let padding = (ALIGNMENT - start % ALIGNMENT) % ALIGNMENT;
        out.extend_from_slice(b"PK\x03\x04");
        u16le(&mut out, 0); // version needed
        u16le(&mut out, 0x0808); // data descriptor follows; UTF-8 names
        u16le(&mut out, 0); // stored
        u32le(&mut out, 0); // time and date
        u32le(&mut out, 0); // CRC, sizes: in the data descriptor
        u32le(&mut out, 0);
        u32le(&mut out, 0);
        u16le(&mut out, name.len());
        u16le(&mut out, padding + 4);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"FB");
        u16le(&mut out, padding);
        out.extend(std::iter::repeat_n(b'Z', padding));
        out.extend_from_slice(data);
        out.extend_from_slice(b"PK\x07\x08");
        u32le(&mut out, crc);
        u32le(&mut out, data.len());
        u32le(&mut out, data.len());

        central.extend_from_slice(b"PK\x01\x02");
        u16le(&mut central, 0); // version made by
        u16le(&mut central, 0); // version needed
        u16le(&mut central, 0x0808);
        u16le(&mut central, 0);
        u32le(&mut central, 0);
        u32le(&mut central, crc);
        u32le(&mut central, data.len());
        u32le(&mut central, data.len());
        u16le(&mut central, name.len());
        u16le(&mut central, 0); // extra
        u16le(&mut central, 0); // comment
        u16le(&mut central, 0); // disk
        u16le(&mut central, 0); // internal attributes
        u32le(&mut central, 0); // external attributes
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size, n) = (out.len(), central.len(), records.len());
    out.extend_from_slice(&central);
    let eocd64 = out.len();
    out.extend_from_slice(b"PK\x06\x06");
    u64le(&mut out, 44); // size of the rest of the record
    u16le(&mut out, 0x031e); // made by: Unix, 3.0
    u16le(&mut out, 0x002d); // needed: 4.5 (ZIP64)
    u32le(&mut out, 0);
    u32le(&mut out, 0);
    u64le(&mut out, n);
    u64le(&mut out, n);
    u64le(&mut out, cd_size);
    u64le(&mut out, cd_offset);
    out.extend_from_slice(b"PK\x06\x07");
    u32le(&mut out, 0);
    u64le(&mut out, eocd64);
    u32le(&mut out, 1); // disks
    out.extend_from_slice(b"PK\x05\x06");
    u32le(&mut out, 0); // disk numbers
    u16le(&mut out, n);
    u16le(&mut out, n);
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0); // comment
    out
}

/// `data.pkl` of `{"w": arange(6.).reshape(2, 3), "b": tensor([-1, 7])}` as `torch.save`
/// pickles it (protocol 2; storages `0` float32, `1` int64): the state dict of
/// `scripts/golden/torch_zip_names.py`.
pub const NAMES_STATE_PKL: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01ctorch._utils\x0a\
_rebuild_tensor_v2\x0aq\x02((X\x07\x00\x00\x00storageq\x03ctorch\x0aFloatStorage\x0aq\x04X\x01\
\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x06tq\x07QK\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\
\x09\x89ccollections\x0aOrderedDict\x0aq\x0a)Rq\x0btq\x0cRq\x0dX\x01\x00\x00\x00bq\x0eh\x02((h\
\x03ctorch\x0aLongStorage\x0aq\x0fX\x01\x00\x00\x001q\x10h\x06K\x02tq\x11QK\x00K\x02\x85q\x12K\
\x01\x85q\x13\x89h\x0a)Rq\x14tq\x15Rq\x16u.";

/// The records `torch.save` (PyTorch 2.x) writes for [`NAMES_STATE_PKL`]'s state dict, in its
/// order, with `serialization_id` as the random id; `legacy_records` leaves out what PyTorch
/// before 2.1 did not write (`.format_version`, `.storage_alignment`, `byteorder`, the id).
pub fn names_state_records(serialization_id: &[u8], legacy_records: bool) -> Vec<(&str, Vec<u8>)> {
    let w: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let b: Vec<u8> = [-1i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut records = vec![("data.pkl", NAMES_STATE_PKL.to_vec())];
    if !legacy_records {
        records.push((".format_version", b"1".to_vec()));
        records.push((".storage_alignment", b"64".to_vec()));
        records.push(("byteorder", b"little".to_vec()));
    }
    records.push(("data/0", w));
    records.push(("data/1", b));
    records.push(("version", b"3\n".to_vec()));
    if !legacy_records {
        records.push((".data/serialization_id", serialization_id.to_vec()));
    }
    records
}

/// A valid `torch.save` zip of [`NAMES_STATE_PKL`] under an archive name drawn from `data`
/// (1 to 255 characters: the layout depends on its length) must read back as its two tensors.
pub fn torch_zip_names(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = (len as usize).max(1);
    // Characters a file name can hold, some of them several UTF-8 bytes long.
    const CHARS: [char; 8] = ['a', 'Z', '0', '_', '-', '.', 'é', '漢'];
    let name: String = (0..len)
        .map(|i| CHARS[rest.get(i).copied().unwrap_or(0) as usize % CHARS.len()])
        .collect();
    let legacy = rest.get(len).is_some_and(|b| b & 1 == 1);
    let id: Vec<u8> = (0..40).map(|i| b'0' + (i * 7 + len) as u8 % 10).collect();
    let records = names_state_records(&id, legacy);
    let borrowed: Vec<(&str, &[u8])> = records.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    names_state_reads_back(&torch_zip(&name, &borrowed), &format!("archive `{name}`"));
}

/// Reads `bytes`, a torch.save file of [`NAMES_STATE_PKL`]'s state dict, and checks its two
/// tensors; `label` names the file in the panic.
pub fn names_state_reads_back(bytes: &[u8], label: &str) {
    let c = torch::read(bytes, &limits())
        .unwrap_or_else(|e| panic!("{label}: a valid torch.save file refused: {e}"));
    let got: Vec<(&str, Vec<usize>, Vec<u8>)> = c
        .tensors
        .iter()
        .map(|(n, t)| {
            (
                n.as_str(),
                t.shape.clone(),
                t.contiguous_bytes().into_owned(),
            )
        })
        .collect();
    let w: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
    let b: Vec<u8> = [-1i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        got,
        vec![("w", vec![2, 3], w), ("b", vec![2], b)],
        "{label}"
    );
}
