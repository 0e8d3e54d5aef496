//! safetensors files (the Hugging Face format): save named arrays, load them
//! memory-mapped.
//!
//! Metadata (the header's `"__metadata__"`, string keys and values) is written by
//! [`save_safetensors_with_metadata`] and read by [`read_safetensors_metadata`].
//!
//! Header parsing, validation and writing are the `safetensors` crate's — the same
//! code the `safetensors` Python package runs — so files go both ways between
//! tensorbridge and that package (and everything built on it).
//!
//! [`load_safetensors`] maps the file once into one shared [`Storage`]; every tensor
//! whose data offset is aligned for its dtype is a zero-copy view into that mapping
//! (files written by the `safetensors` crate always are: it pads the header to 8
//! bytes and orders tensors by falling alignment). A misaligned member is copied.
//! The mapping stays alive as long as any of the tensors does.
//!
//! dtypes: bool, the eight integer types, float16, bfloat16, float32, float64 and
//! complex64 (`C64`). safetensors has no complex128, so saving one is an error, as is
//! loading a member whose dtype tensorbridge lacks (the float8/float4/float6 types).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensorError, SafeTensors, View};

use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::location::{Location, RemoteObject, Sink};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::view::{contiguous_strides, TensorView};

/// The safetensors dtype for a tensorbridge dtype; complex128 has none.
pub fn safetensors_dtype(d: DType) -> Result<StDtype> {
    Ok(match d {
        DType::Bool => StDtype::BOOL,
        DType::Int8 => StDtype::I8,
        DType::Int16 => StDtype::I16,
        DType::Int32 => StDtype::I32,
        DType::Int64 => StDtype::I64,
        DType::UInt8 => StDtype::U8,
        DType::UInt16 => StDtype::U16,
        DType::UInt32 => StDtype::U32,
        DType::UInt64 => StDtype::U64,
        DType::Float16 => StDtype::F16,
        DType::BFloat16 => StDtype::BF16,
        DType::Float32 => StDtype::F32,
        DType::Float64 => StDtype::F64,
        DType::Complex64 => StDtype::C64,
        DType::Complex128 => {
            return Err(Error::UnknownDType(
                "complex128 (safetensors has no complex128 dtype; complex64 is C64)".into(),
            ))
        }
    })
}

/// The tensorbridge dtype for a safetensors dtype, if there is one.
pub fn dtype_from_safetensors(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::BOOL => DType::Bool,
        StDtype::I8 => DType::Int8,
        StDtype::I16 => DType::Int16,
        StDtype::I32 => DType::Int32,
        StDtype::I64 => DType::Int64,
        StDtype::U8 => DType::UInt8,
        StDtype::U16 => DType::UInt16,
        StDtype::U32 => DType::UInt32,
        StDtype::U64 => DType::UInt64,
        StDtype::F16 => DType::Float16,
        StDtype::BF16 => DType::BFloat16,
        StDtype::F32 => DType::Float32,
        StDtype::F64 => DType::Float64,
        StDtype::C64 => DType::Complex64,
        _ => return None,
    })
}

fn st_error(path: &str, e: SafeTensorError) -> Error {
    match e {
        SafeTensorError::IoError(source) => Error::Io {
            path: path.to_string(),
            source,
        },
        other => Error::Format {
            path: path.to_string(),
            reason: format!("invalid safetensors file: {other}"),
        },
    }
}

/// One array to write: its bytes borrowed when contiguous, else copied once.
struct Entry<'a> {
    dtype: StDtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for Entry<'_> {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Write `tensors` (name → array, any layout; names unique) to a safetensors file,
/// with no metadata (see [`save_safetensors_with_metadata`]).
///
/// The `safetensors` crate writes the file to a temporary name beside `path` and
/// renames it into place, so `path` is never left half-written (and a file being
/// replaced stays valid for anyone who has it mapped).
pub fn save_safetensors(path: impl AsRef<Path>, tensors: &[(&str, TensorView<'_>)]) -> Result<()> {
    save_safetensors_with_metadata(path, tensors, None)
}

/// [`save_safetensors`] with the header's `"__metadata__"`: free-form string keys
/// and values, as `safetensors.numpy.save_file(..., metadata=...)` writes them and
/// `safe_open(...).metadata()` reads them back (see [`read_safetensors_metadata`]).
pub fn save_safetensors_with_metadata(
    path: impl AsRef<Path>,
    tensors: &[(&str, TensorView<'_>)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let entries = entries(tensors)?;
    let metadata: Option<HashMap<String, String>> =
        metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    ::safetensors::serialize_to_file(entries, metadata, path).map_err(|e| st_error(&name, e))
}

/// Check `tensors` (unique names, none reserved, dtypes safetensors has) and take
/// their little-endian bytes.
fn entries<'a>(tensors: &[(&'a str, TensorView<'a>)]) -> Result<Vec<(&'a str, Entry<'a>)>> {
    let mut entries = Vec::with_capacity(tensors.len());
    for (i, (key, view)) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::InvalidArgument(format!(
                "tensor name {key:?} appears twice"
            )));
        }
        if *key == "__metadata__" {
            return Err(Error::InvalidArgument(
                "\"__metadata__\" is reserved in safetensors files".into(),
            ));
        }
        let dtype = safetensors_dtype(view.dtype())
            .map_err(|e| Error::InvalidArgument(format!("tensor {key:?}: cannot be saved: {e}")))?;
        entries.push((
            *key,
            Entry {
                dtype,
                shape: view.shape().to_vec(),
                data: super::contiguous_le_bytes(view)?,
            },
        ));
    }
    Ok(entries)
}

/// The header's `"__metadata__"` of a safetensors file (`None` when it has none), as
/// `safe_open(path, ...).metadata()` gives it. The header is validated as by
/// [`load_safetensors`]; no tensor is loaded.
pub fn read_safetensors_metadata(
    path: impl AsRef<Path>,
) -> Result<Option<BTreeMap<String, String>>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let storage = map_checked(path, &name)?;
    let (_, metadata) =
        SafeTensors::read_metadata(storage.as_slice()).map_err(|e| st_error(&name, e))?;
    Ok(metadata
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
}

/// Map the safetensors file at `path`, refusing one too short for its header length.
fn map_checked(path: &Path, name: &str) -> Result<Storage> {
    let io = |source| Error::Io {
        path: name.to_string(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 8 {
        return Err(Error::Format {
            path: name.to_string(),
            reason: format!(
                "invalid safetensors file: {len} bytes, too short for the 8-byte header length"
            ),
        });
    }
    Storage::map_file(&file).map_err(io)
}

/// Load every tensor of a safetensors file, in the order of their data in the file.
///
/// The file is memory-mapped; tensors whose data is aligned for their dtype are
/// zero-copy views of the mapping (`is_view()`), others are copies.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let storage = Arc::new(map_checked(path, &name)?);
    load_storage(storage, &name)
}

/// [`load_safetensors`] of a location: a local file as there; an object of a store
/// by its 8-byte header length and header first (checked before anything else is
/// read), then its tensors' bytes with concurrent ranged reads into one aligned
/// buffer that the tensors share.
pub fn load_safetensors_location(loc: &Location) -> Result<Vec<(String, Tensor)>> {
    let r = match loc {
        Location::Local(p) => return load_safetensors(p),
        Location::Remote(r) => r,
    };
    let obj = RemoteObject::open(r)?;
    let name = obj.url().to_string();
    let header = remote_header(&obj)?;
    let mut storage = Storage::zeroed(obj.size() as usize)?;
    let buf = storage
        .as_mut_slice()
        .ok_or_else(|| Error::Layout("fresh storage is not writable".into()))?;
    buf[..header.len()].copy_from_slice(&header);
    let start = header.len();
    obj.read_into(start as u64, &mut buf[start..])?;
    load_storage(Arc::new(storage), &name)
}

/// The 8-byte length and the header of a safetensors object (two small reads, or
/// one when the header is short), validated for size against the object.
fn remote_header(obj: &RemoteObject) -> Result<bytes::Bytes> {
    let name = obj.url();
    if obj.size() < 8 {
        return Err(Error::Format {
            path: name.to_string(),
            reason: format!(
                "invalid safetensors file: {} bytes, too short for the 8-byte header length",
                obj.size()
            ),
        });
    }
    let head = obj.get_upto(0, 64 << 10)?;
    let n = u64::from_le_bytes(head[..8].try_into().unwrap_or([0; 8]));
    let end = n
        .checked_add(8)
        .filter(|&e| e <= obj.size())
        .ok_or_else(|| Error::Format {
            path: name.to_string(),
            reason: format!(
                "invalid safetensors file: a header of {n} bytes does not fit in the file"
            ),
        })?;
    if end as usize <= head.len() {
        return Ok(head.slice(..end as usize));
    }
    obj.get_range(0..end)
}

/// [`read_safetensors_metadata`] of a location: for an object of a store, only its
/// header is read.
pub fn read_safetensors_metadata_location(
    loc: &Location,
) -> Result<Option<BTreeMap<String, String>>> {
    let r = match loc {
        Location::Local(p) => return read_safetensors_metadata(p),
        Location::Remote(r) => r,
    };
    let obj = RemoteObject::open(r)?;
    let header = remote_header(&obj)?;
    let bad = |why: String| Error::Format {
        path: obj.url().to_string(),
        reason: format!("invalid safetensors file: {why}"),
    };
    // Only the header is read: parsed as JSON here (the whole-file checks of
    // `SafeTensors::read_metadata` need every byte).
    let json: serde_json::Value =
        serde_json::from_slice(&header[8..]).map_err(|e| bad(format!("bad header: {e}")))?;
    let obj_map = json
        .as_object()
        .ok_or_else(|| bad("the header is not a JSON object".into()))?;
    match obj_map.get("__metadata__") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(bad(format!("metadata value of {k:?} is not a string"))),
            })
            .collect::<Result<BTreeMap<_, _>>>()
            .map(Some),
        Some(_) => Err(bad("\"__metadata__\" is not an object".into())),
    }
}

/// [`save_safetensors_with_metadata`] to a location: an object of a store is
/// serialized in memory and sent with a multipart upload completed at the end
/// (aborted on error).
pub fn save_safetensors_location(
    loc: &Location,
    tensors: &[(&str, TensorView<'_>)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    if let Location::Local(p) = loc {
        return save_safetensors_with_metadata(p, tensors, metadata);
    }
    let name = loc.display();
    let entries = entries(tensors)?;
    let metadata: Option<HashMap<String, String>> =
        metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let bytes = ::safetensors::serialize(entries, metadata).map_err(|e| st_error(&name, e))?;
    let mut sink = Sink::create(loc, false)?;
    sink.write_all(&bytes)
        .map_err(|e| crate::format::io::core_or_io(e, &name))?;
    sink.commit()
}

/// Load every tensor of a safetensors image held in `storage` (named `name`).
fn load_storage(storage: Arc<Storage>, name: &str) -> Result<Vec<(String, Tensor)>> {
    let name = name.to_string();
    let map = storage.as_slice();

    // Parse and validate the header (offsets cover the data exactly, sizes match
    // shapes); gather what each tensor needs before the mapping moves into storage.
    struct Member {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        start: usize,
    }
    let members = {
        let (header_len, metadata) =
            SafeTensors::read_metadata(map).map_err(|e| st_error(&name, e))?;
        let data_start = 8 + header_len;
        let mut members = Vec::new();
        for key in metadata.offset_keys() {
            let info = metadata.info(&key).ok_or_else(|| Error::Format {
                path: name.clone(),
                reason: format!("tensor {key:?} is missing from the header"),
            })?;
            let dtype = dtype_from_safetensors(info.dtype).ok_or_else(|| Error::Format {
                path: name.clone(),
                reason: format!(
                    "tensor {key:?} has dtype {:?}, which tensorbridge does not support",
                    info.dtype
                ),
            })?;
            members.push(Member {
                name: key,
                dtype,
                shape: info.shape.clone(),
                start: data_start + info.data_offsets.0,
            });
        }
        members
    };

    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let strides = contiguous_strides(&m.shape, m.dtype.size());
        let view = TensorView::new(
            storage.as_slice(),
            m.dtype,
            m.shape.clone(),
            strides.clone(),
            m.start,
            ByteOrder::Little,
        )
        .map_err(|e| Error::Format {
            path: name.clone(),
            reason: format!("tensor {:?}: {e}", m.name),
        })?;
        // The core's one rule for using bytes as they lie (little-endian host, aligned).
        let as_is = view.obstacle(m.dtype, false).is_none();
        // A bool byte other than 0/1 would break the dtype's invariant: copy and fix.
        let odd_bools = m.dtype == DType::Bool
            && view
                .contiguous_bytes()
                .is_some_and(|b| b.iter().any(|&x| x > 1));
        let tensor = if as_is && !odd_bools {
            Tensor::from_storage(storage.clone(), m.dtype, m.shape, strides, m.start, true)?
        } else if odd_bools {
            let fixed: Vec<u8> = view
                .contiguous_bytes()
                .unwrap_or(&[])
                .iter()
                .map(|&x| u8::from(x != 0))
                .collect();
            Tensor::copy_of(&TensorView::contiguous(&fixed, DType::Bool, &m.shape)?)?
        } else {
            Tensor::copy_of(&view)?
        };
        out.push((m.name, tensor));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bf16, f16, Complex};

    #[test]
    fn round_trip_every_dtype_zero_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let b = [1u8, 0, 1];
        let i8s = [-1i8, 2, -3];
        let i64s = [i64::MIN, 0, i64::MAX];
        let u16s = [1u16, 65535, 7];
        let f16s = [f16::from_f32(0.5), f16::NAN, f16::INFINITY];
        let bf = [bf16::from_f32(-2.0), bf16::ONE, bf16::ZERO];
        let f64s = [1.5f64, -0.0, f64::MAX];
        let c64 = [Complex::new(1f32, -2.0), Complex::new(0.0, 3.0)];
        let views = vec![
            ("b", TensorView::contiguous(&b, DType::Bool, &[3]).unwrap()),
            ("i8", TensorView::from_slice(&i8s, &[3]).unwrap()),
            ("i64", TensorView::from_slice(&i64s, &[1, 3]).unwrap()),
            ("u16", TensorView::from_slice(&u16s, &[3]).unwrap()),
            ("f16", TensorView::from_slice(&f16s, &[3]).unwrap()),
            ("bf", TensorView::from_slice(&bf, &[3, 1]).unwrap()),
            ("f64", TensorView::from_slice(&f64s, &[3]).unwrap()),
            ("c64", TensorView::from_slice(&c64, &[2]).unwrap()),
            (
                "empty",
                TensorView::from_slice::<f32>(&[], &[0, 4]).unwrap(),
            ),
            ("scalar", TensorView::from_slice(&[7u32], &[]).unwrap()),
        ];
        save_safetensors(&path, &views).unwrap();
        let loaded = load_safetensors(&path).unwrap();
        assert_eq!(loaded.len(), views.len());
        for (name, view) in &views {
            let (_, t) = loaded.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(t.dtype(), view.dtype(), "{name}");
            assert_eq!(t.shape(), view.shape(), "{name}");
            assert_eq!(
                t.as_bytes().unwrap(),
                view.contiguous_bytes().unwrap(),
                "{name}"
            );
            assert!(t.is_view() && t.storage().is_mapped_file(), "{name}");
        }
        // The tensors outlive the file's removal (the mapping stays).
        drop(dir);
        let (_, b) = loaded.iter().find(|(n, _)| n == "b").unwrap();
        assert_eq!(b.as_bytes().unwrap(), &[1, 0, 1]);
    }

    #[test]
    fn refusals_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let c = [Complex::new(1f64, 2.0)];
        let v = TensorView::from_slice(&c, &[1]).unwrap();
        let err = save_safetensors(&path, &[("z", v)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("complex128") && err.contains("\"z\""), "{err}");
        let a = TensorView::from_slice(&[1i32], &[1]).unwrap();
        assert!(save_safetensors(&path, &[("a", a.clone()), ("a", a.clone())]).is_err());
        assert!(!path.exists());

        // Hostile files: too short, header length past the end, bad JSON, bad offsets.
        for bytes in [
            b"1234".to_vec(),
            u64::MAX.to_le_bytes().to_vec(),
            [&8u64.to_le_bytes()[..], b"not json"].concat(),
            [
                &56u64.to_le_bytes()[..],
                br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0u8; 4][..],
            ]
            .concat(),
            [
                &64u64.to_le_bytes()[..],
                br#"{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}    "#,
                &[0u8; 2][..],
            ]
            .concat(),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = load_safetensors(&path).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "{err}");
            assert!(err.to_string().contains("x.safetensors"), "{err}");
        }
        assert!(matches!(
            load_safetensors(dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn misaligned_member_is_copied() {
        // Hand-made file: a u8 member of 3 bytes first, then an f32 at data offset 3.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.safetensors");
        let header = br#"{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[1],"data_offsets":[3,7]}}"#;
        let mut header = header.to_vec();
        header.resize(header.len().div_ceil(8) * 8, b' ');
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&[1, 2, 3]);
        bytes.extend_from_slice(&2.5f32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load_safetensors(&path).unwrap();
        assert_eq!(loaded[0].0, "a");
        assert!(loaded[0].1.is_view());
        assert_eq!(loaded[1].0, "b");
        assert!(!loaded[1].1.is_view());
        assert_eq!(loaded[1].1.to_vec::<f32>().unwrap(), vec![2.5]);
    }

    #[test]
    fn metadata_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = TensorView::from_slice(&[1.5f32, 2.0], &[2]).unwrap();
        save_safetensors(&path, &[("a", a.clone())]).unwrap();
        assert_eq!(read_safetensors_metadata(&path).unwrap(), None);
        let meta: BTreeMap<String, String> = [("format", "pt"), ("note", "ünïcode \"q\"")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        save_safetensors_with_metadata(&path, &[("a", a)], Some(&meta)).unwrap();
        assert_eq!(read_safetensors_metadata(&path).unwrap(), Some(meta));
        let loaded = load_safetensors(&path).unwrap();
        assert_eq!(loaded[0].1.to_vec::<f32>().unwrap(), vec![1.5, 2.0]);
        std::fs::write(&path, b"1234").unwrap();
        assert!(matches!(
            read_safetensors_metadata(&path),
            Err(Error::Format { .. })
        ));
    }
}
