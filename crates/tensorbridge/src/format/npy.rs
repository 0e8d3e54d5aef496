//! NumPy's `.npy` format, as `numpy/lib/format.py` defines it.
//!
//! A file is a 6-byte magic string `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the
//! header length (2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0), the header
//! — a Python-literal dict `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
//! in latin-1 (1.0, 2.0) or UTF-8 (3.0), padded with spaces and a newline so the data
//! starts on a 64-byte boundary — and then the raw elements in C or Fortran order.
//!
//! # Reading
//! [`load`] reads a file into a [`Tensor`]; [`LoadOptions::mmap`] chooses between a
//! zero-copy memory mapping and an owned copy:
//!
//! - `Some(true)`: map the file. The tensor is a read-only view of the mapping
//!   ([`Tensor::is_view`] is true), opening costs the same for any size, and the
//!   mapping lives as long as the last tensor using it (the file may be closed or
//!   deleted meanwhile). A Fortran-order file maps as a Fortran-strided view (no
//!   copy). Refused when the bytes cannot be used as they lie: non-native byte
//!   order, a cast to another dtype, or data misaligned for its dtype.
//! - `Some(false)`: read into an owned, 64-byte-aligned, C-contiguous tensor; big-endian
//!   data is converted and Fortran order transposed in the same single pass.
//! - `None` (default): map when the bytes can be used as they lie *and* the data is at
//!   least [`MMAP_THRESHOLD`] (1 MiB) long; otherwise read. (Below that size a read is
//!   as fast as setting up a mapping and gives an independent, writable-by-copy buffer.)
//!
//! Every element dtype of the core is read in every byte order (`<`, `>`, `|`, `=`);
//! 0-d arrays, empty arrays and zero-length dimensions work.
//!
//! # bfloat16
//! NumPy has no bfloat16; `np.save` of an `ml_dtypes.bfloat16` array writes the descr
//! `'<V2'` (two raw bytes). Such a file loads only when the caller says what the bytes
//! are, with `LoadOptions { dtype: Some(DType::BFloat16), .. }`; otherwise it is refused
//! with an error that says so. tensorbridge writes bfloat16 the same way (`'<V2'`), so
//! `np.load(path).view(ml_dtypes.bfloat16)` reads a tensorbridge file back exactly.
//!
//! # Refusals
//! Hostile or unsupported files are refused with [`Error::Format`] naming the file and
//! the reason — never a panic, never an out-of-bounds read, and never an allocation
//! larger than the file justifies (the data size the header claims is checked against
//! the file size, with overflow-checked arithmetic, before anything is allocated):
//! object arrays (`'|O'`: pickles, never unpickled), structured/record and subarray
//! dtypes, other unsupported dtypes (strings, datetimes, `float128`, ...), bad magic,
//! unknown versions, headers longer than NumPy allows ([`MAX_HEADER_CHARS`]) or that
//! are not a Python-literal dict with exactly the keys `descr`, `fortran_order` and
//! `shape`, negative or overflowing shapes, more than 64 dimensions, and data shorter
//! than the shape says.
//!
//! # Writing
//! [`save`] / [`write()`] write version 1.0 (2.0 only if the header does not fit in 1.0),
//! byte-for-byte the header `np.save` writes for the same array, always in native byte
//! order. [`NpyWriter`] streams an array larger than memory: header first, then chunks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::{for_each_piece, format_err, io_err, AtomicFile};
use crate::cast::cast_into;
use crate::dtype::{ByteOrder, Casting, DType};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::cast;
use crate::tensor::Tensor;
use crate::view::{contiguous_strides, TensorView, MAX_NDIM};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header NumPy reads by default, in characters (`max_header_size` in
/// `numpy.lib.format`); longer headers are refused.
pub const MAX_HEADER_CHARS: usize = 10_000;

/// A header of more bytes than this cannot decode to at most [`MAX_HEADER_CHARS`]
/// characters (UTF-8 needs at most 4 bytes per character).
const MAX_HEADER_BYTES: usize = 4 * MAX_HEADER_CHARS;

/// With `mmap: None`, data at least this long (1 MiB) is mapped rather than read.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Array data starts on a multiple of this in files NumPy and tensorbridge write.
const ARRAY_ALIGN: usize = 64;
/// NumPy leaves room after the header for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// Nesting deeper than this in a header is refused (no valid header nests past 3).
const MAX_DEPTH: usize = 16;
/// Large reads are split into pieces of this size and run on all threads.
const READ_PIECE: usize = 16 << 20;

/// The parsed header of an `.npy` file (or `.npz` member).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version: `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// The `descr` value as written (`"<f4"`, `"|b1"`, `"<V2"`).
    pub descr: String,
    /// The element type, or `None` for a 2-byte void (`'V2'`) — what NumPy writes for
    /// `ml_dtypes.bfloat16`; see [`NpyHeader::resolve_dtype`].
    pub dtype: Option<DType>,
    /// Byte order of the stored elements (native for one-byte types and `'|'`/`'='`).
    pub byte_order: ByteOrder,
    /// Whether the elements are stored in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The dimensions (empty for a 0-d array).
    pub shape: Vec<usize>,
    /// Byte offset of the first element from the start of the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// The header `np.save` would write for an array of `dtype` and `shape`, in native
    /// byte order (bfloat16 as `'<V2'`), version 1.0 unless it needs 2.0.
    pub fn new(dtype: DType, shape: &[usize], fortran_order: bool) -> Result<NpyHeader> {
        if shape.len() > MAX_NDIM {
            return Err(Error::Shape(format!(
                "{} dimensions; at most {MAX_NDIM} are supported",
                shape.len()
            )));
        }
        data_len(shape, dtype.size())
            .ok_or_else(|| Error::Shape(format!("shape {shape:?} of {dtype} is too large")))?;
        let mut h = NpyHeader {
            version: (1, 0),
            descr: dtype.typestr(),
            dtype: Some(dtype),
            byte_order: ByteOrder::NATIVE,
            fortran_order,
            shape: shape.to_vec(),
            data_offset: 0,
        };
        let dict = h.dict_text();
        let (version, total) = header_layout(dict.len());
        h.version = version;
        h.data_offset = total;
        Ok(h)
    }

    /// Parse the header at the start of `bytes`, which must hold at least the whole
    /// header (more, such as the whole file, is fine). `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &str) -> Result<NpyHeader> {
        let (version, data_offset) = preamble(bytes, path)?;
        let start = if version.0 == 1 { 10 } else { 12 };
        let raw = bytes
            .get(start..data_offset)
            .ok_or_else(|| format_err(path, truncated_header(bytes.len(), data_offset)))?;
        let text: String = if version.0 == 3 {
            std::str::from_utf8(raw)
                .map_err(|e| format_err(path, format!("header is not valid UTF-8: {e}")))?
                .to_string()
        } else {
            raw.iter().map(|&b| b as char).collect() // latin-1
        };
        let chars = text.chars().count();
        if chars > MAX_HEADER_CHARS {
            return Err(format_err(path, header_too_long(chars)));
        }
        let lit = Parser::new(&text, version.0 < 3)
            .parse_all()
            .map_err(|e| format_err(path, format!("header is not a valid Python literal: {e}")))?;
        let mut h = interpret(lit).map_err(|e| format_err(path, e))?;
        h.version = version;
        h.data_offset = data_offset;
        Ok(h)
    }

    /// The dtype to load the elements as: the header's, or for a `'V2'` descr the
    /// requested dtype, which must then be bfloat16. (A requested dtype other than
    /// the header's is otherwise a cast target; see [`LoadOptions::dtype`].)
    pub fn resolve_dtype(&self, requested: Option<DType>, path: &str) -> Result<DType> {
        match (self.dtype, requested) {
            (Some(d), _) => Ok(d),
            (None, Some(DType::BFloat16)) => Ok(DType::BFloat16),
            (None, _) => Err(format_err(
                path,
                format!(
                    "descr '{}' is two raw bytes (how NumPy saves ml_dtypes.bfloat16); \
                     load it as bfloat16 by asking for dtype bfloat16",
                    self.descr
                ),
            )),
        }
    }

    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        self.dtype.map_or(2, DType::size)
    }

    /// Number of elements (1 for a 0-d array).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of element data after the header.
    pub fn data_len(&self) -> usize {
        self.len() * self.itemsize()
    }

    /// Byte strides of the stored layout (C or Fortran order).
    pub fn strides(&self) -> Vec<isize> {
        layout_strides(&self.shape, self.itemsize(), self.fortran_order)
    }

    /// The header's bytes: magic, version, length and the padded dict, exactly as
    /// `np.save` writes them. Its length is [`NpyHeader::data_offset`] when the header
    /// came from [`NpyHeader::new`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let dict = self.dict_text();
        let (needed, _) = header_layout(dict.len());
        let version = if self.version.0 > needed.0 {
            self.version
        } else {
            needed
        };
        let prefix = if version.0 == 1 { 10 } else { 12 };
        let total = padded_total(prefix, dict.len());
        let hlen = total - prefix;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version.0, version.1]);
        if prefix == 10 {
            out.extend_from_slice(&(hlen as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(hlen as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        out
    }

    /// The dict text before padding, as NumPy formats it (growth-axis spaces included).
    fn dict_text(&self) -> String {
        let shape = match self.shape.as_slice() {
            [] => "()".to_string(),
            [n] => format!("({n},)"),
            s => format!(
                "({})",
                s.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let order = if self.fortran_order { "True" } else { "False" };
        let mut text = format!(
            "{{'descr': '{}', 'fortran_order': {order}, 'shape': {shape}, }}",
            self.descr
        );
        let growth = if self.fortran_order {
            self.shape.last()
        } else {
            self.shape.first()
        };
        if let Some(n) = growth {
            let digits = n.to_string().len();
            text.extend(std::iter::repeat_n(
                ' ',
                GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
            ));
        }
        text
    }
}

/// Total header size (through the final newline) for a dict of `dict_len` bytes after
/// a `prefix`-byte preamble, padded with spaces as NumPy pads it.
fn padded_total(prefix: usize, dict_len: usize) -> usize {
    let hlen = dict_len + 1;
    prefix + hlen + (ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN)
}

/// The version NumPy would pick for a dict of `dict_len` ASCII bytes, and the total
/// header size in it.
fn header_layout(dict_len: usize) -> ((u8, u8), usize) {
    let total = padded_total(10, dict_len);
    if total - 10 <= u16::MAX as usize {
        ((1, 0), total)
    } else {
        ((2, 0), padded_total(12, dict_len))
    }
}

fn truncated_header(have: usize, need: usize) -> String {
    format!("truncated header: the header needs {need} bytes but only {have} are there")
}

fn header_too_long(n: usize) -> String {
    format!(
        "header of {n} characters is longer than NumPy allows ({MAX_HEADER_CHARS}); \
         refused as unsafe to parse"
    )
}

/// Check magic, version and header length; return the version and the data offset.
fn preamble(bytes: &[u8], path: &str) -> Result<((u8, u8), usize)> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes.get(..magic_len) != MAGIC.get(..magic_len) {
        return Err(format_err(
            path,
            "not a .npy file: bad magic (expected the bytes \\x93NUMPY)",
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[a, b]) => (a, b),
        _ => return Err(format_err(path, truncated_header(bytes.len(), 10))),
    };
    let prefix = match (major, minor) {
        (1, 0) => 10,
        (2, 0) | (3, 0) => 12,
        _ => {
            return Err(format_err(
                path,
                format!("unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are)"),
            ))
        }
    };
    let len_bytes = bytes
        .get(8..prefix)
        .ok_or_else(|| format_err(path, truncated_header(bytes.len(), prefix)))?;
    let hlen = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if hlen > MAX_HEADER_BYTES {
        return Err(format_err(path, header_too_long(hlen)));
    }
    Ok(((major, minor), prefix + hlen))
}

/// `len(shape) * itemsize`, or `None` if it overflows or exceeds `isize::MAX`.
fn data_len(shape: &[usize], itemsize: usize) -> Option<usize> {
    let n = shape
        .iter()
        .try_fold(itemsize, |acc, &d| acc.checked_mul(d))?;
    (n <= isize::MAX as usize).then_some(n)
}

/// Byte strides for a C- or Fortran-ordered layout.
fn layout_strides(shape: &[usize], itemsize: usize, fortran: bool) -> Vec<isize> {
    if fortran {
        let rev: Vec<usize> = shape.iter().rev().copied().collect();
        let mut s = contiguous_strides(&rev, itemsize);
        s.reverse();
        s
    } else {
        contiguous_strides(shape, itemsize)
    }
}

// ---------------------------------------------------------------------------------
// The header literal.

/// A Python literal, as far as `.npy` headers use them.
#[derive(Debug)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    /// A list (its items are parsed, then dropped: only structured descrs use lists).
    List,
    Dict(Vec<(Lit, Lit)>),
}

/// A small, strict parser for the Python-literal subset `.npy` headers use: dicts,
/// tuples, lists, single- or double-quoted strings (simple escapes), decimal integers
/// (with Python 2's `L` suffix in versions 1.0 and 2.0, as NumPy accepts), `True`,
/// `False` and `None`, with bounded nesting.
///
/// Hand-written on purpose: NumPy itself uses `ast.literal_eval`, and no Rust crate
/// parses this Python-literal subset safely and strictly (JSON, RON or TOML parsers
/// accept a different language, and a general Python parser accepts far more than a
/// header may contain). This one never recurses deeper than [`MAX_DEPTH`], never
/// allocates more than its input justifies, and refuses anything else.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
    allow_long: bool,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str, allow_long: bool) -> Self {
        Parser {
            s,
            pos: 0,
            depth: 0,
            allow_long,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn err<T>(&self, what: &str) -> std::result::Result<T, String> {
        Err(format!("{what} at character offset {}", self.pos))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') = self.peek() {
            self.pos += 1;
        }
    }

    fn parse_all(mut self) -> std::result::Result<Lit, String> {
        let v = self.value()?;
        self.skip_ws();
        if self.pos != self.s.len() {
            return self.err("unexpected text after the literal");
        }
        Ok(v)
    }

    fn value(&mut self) -> std::result::Result<Lit, String> {
        self.skip_ws();
        match self.peek() {
            None => self.err("unexpected end of header"),
            Some(b'{' | b'(' | b'[') => {
                if self.depth >= MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                self.depth += 1;
                let v = self.container();
                self.depth -= 1;
                v
            }
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'0'..=b'9' | b'-' | b'+') => self.int(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == b'_' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                match &self.s[start..self.pos] {
                    "True" => Ok(Lit::Bool(true)),
                    "False" => Ok(Lit::Bool(false)),
                    "None" => Ok(Lit::None),
                    _ => {
                        self.pos = start;
                        self.err("not a literal (names and expressions are not allowed)")
                    }
                }
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    /// A dict, tuple or list; the opening bracket is at `pos`.
    fn container(&mut self) -> std::result::Result<Lit, String> {
        let open = self.peek();
        self.pos += 1;
        let close = match open {
            Some(b'{') => b'}',
            Some(b'(') => b')',
            _ => b']',
        };
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            let first = items.is_empty() && pairs.is_empty();
            if !first && !trailing_comma {
                return self.err("expected ',' or a closing bracket");
            }
            let v = self.value()?;
            if close == b'}' {
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return self.err("expected ':' in dict");
                }
                self.pos += 1;
                let value = self.value()?;
                pairs.push((v, value));
            } else {
                items.push(v);
            }
            self.skip_ws();
            trailing_comma = self.peek() == Some(b',');
            if trailing_comma {
                self.pos += 1;
            }
        }
        Ok(match close {
            b'}' => Lit::Dict(pairs),
            b']' => Lit::List,
            // `(x)` is just `x`; `(x,)` and `()` are tuples.
            _ if items.len() == 1 && !trailing_comma => items.pop().unwrap_or(Lit::None),
            _ => Lit::Tuple(items),
        })
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = self.peek();
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.pos..];
            let Some(c) = rest.chars().next() else {
                return self.err("unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                '\n' | '\r' => return self.err("line break in string"),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    out.push(match e {
                        b'\\' => '\\',
                        b'\'' => '\'',
                        b'"' => '"',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'0' => '\0',
                        b'x' => {
                            let hex = self.s.get(self.pos..self.pos + 2).unwrap_or("");
                            let v = u8::from_str_radix(hex, 16)
                                .or_else(|_| self.err("bad \\x escape"))?;
                            self.pos += 2;
                            v as char
                        }
                        _ => {
                            self.pos -= 1;
                            return self.err("unsupported string escape");
                        }
                    });
                }
                c if Some(c as u32) == quote.map(u32::from) => return Ok(out),
                c => out.push(c),
            }
        }
    }

    fn int(&mut self) -> std::result::Result<Lit, String> {
        let mut neg = false;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            neg ^= c == b'-';
            self.pos += 1;
            self.skip_ws();
        }
        let start = self.pos;
        let mut v: i128 = 0;
        let mut last_underscore = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' => {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add((c - b'0') as i128))
                        .map_or_else(|| self.err("integer too large"), Ok)?;
                    last_underscore = false;
                }
                b'_' if self.pos > start && !last_underscore => last_underscore = true,
                _ => break,
            }
            self.pos += 1;
        }
        let digits = &self.s[start..self.pos];
        if digits.is_empty() || last_underscore {
            return self.err("expected an integer");
        }
        if digits.len() > 1 && digits.starts_with('0') && v != 0 {
            return self.err("integer with leading zeros");
        }
        if self.allow_long && matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        if let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
                return self.err("unsupported number (only decimal integers are allowed)");
            }
        }
        Ok(Lit::Int(if neg { -v } else { v }))
    }
}

/// Turn the parsed literal into a header (version and data offset filled in later).
fn interpret(lit: Lit) -> std::result::Result<NpyHeader, String> {
    let Lit::Dict(pairs) = lit else {
        return Err("header is not a dict".into());
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in pairs {
        let Lit::Str(k) = k else {
            return Err("header dict has a key that is not a string".into());
        };
        let slot = match k.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            _ => return Err(format!("header has unexpected key {k:?}")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("header has key {k:?} twice"));
        }
    }
    let missing = |k: &str| format!("header is missing key {k:?}");
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;

    let descr = match descr {
        Lit::Str(s) => s,
        Lit::List => {
            return Err(
                "structured (record) dtypes are not supported: descr is a list of fields".into(),
            )
        }
        Lit::Tuple(_) => return Err("subarray dtypes are not supported".into()),
        _ => return Err("descr is not a valid dtype descriptor".into()),
    };
    let (dtype, byte_order) = parse_descr(&descr)?;
    let Lit::Bool(fortran_order) = fortran else {
        return Err("fortran_order is not a bool".into());
    };
    let Lit::Tuple(dims) = shape else {
        return Err("shape is not a tuple of integers".into());
    };
    if dims.len() > MAX_NDIM {
        return Err(format!(
            "shape has {} dimensions; at most {MAX_NDIM} are supported",
            dims.len()
        ));
    }
    let mut shape = Vec::with_capacity(dims.len());
    for d in &dims {
        match *d {
            Lit::Int(n) if n < 0 => return Err(format!("shape has a negative dimension {n}")),
            Lit::Int(n) => shape.push(
                usize::try_from(n)
                    .map_err(|_| format!("shape dimension {n} is too large for this machine"))?,
            ),
            _ => return Err("shape is not a tuple of integers".into()),
        }
    }
    let itemsize = dtype.map_or(2, DType::size);
    if data_len(&shape, itemsize).is_none() {
        return Err(format!(
            "shape {shape:?} of '{descr}' overflows: its byte size does not fit in memory"
        ));
    }
    Ok(NpyHeader {
        version: (1, 0),
        descr,
        dtype,
        byte_order,
        fortran_order,
        shape,
        data_offset: 0,
    })
}

/// Map a descr string to a dtype (`None` for `'V2'`) and byte order.
fn parse_descr(descr: &str) -> std::result::Result<(Option<DType>, ByteOrder), String> {
    let (order, rest) = match descr.as_bytes().first() {
        Some(b'<') => (ByteOrder::Little, &descr[1..]),
        Some(b'>') => (ByteOrder::Big, &descr[1..]),
        Some(b'|' | b'=') => (ByteOrder::NATIVE, &descr[1..]),
        _ => (ByteOrder::NATIVE, descr),
    };
    if rest == "V2" {
        return Ok((None, order));
    }
    if matches!(rest, "O" | "O4" | "O8" | "object") {
        return Err(format!(
            "object arrays (descr '{descr}') are not supported: their data is a pickle of \
             Python objects, which tensorbridge never unpickles"
        ));
    }
    match DType::parse(descr) {
        Ok((d, o)) => Ok((Some(d), if d.size() == 1 { ByteOrder::NATIVE } else { o })),
        Err(_) => Err(format!("unsupported dtype '{descr}'")),
    }
}

// ---------------------------------------------------------------------------------
// Reading.

/// How to load an array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `Some(true)`: memory-map (zero-copy; an error if the bytes cannot be used as
    /// they lie); `Some(false)`: read into owned memory; `None`: map when the bytes can
    /// be used as they lie and the data is at least [`MMAP_THRESHOLD`] long (see the
    /// [module documentation](self)).
    pub mmap: Option<bool>,
    /// The dtype of the result. `None`: the file's. For a `'V2'` file it must be
    /// bfloat16 (what the two bytes are); for any other file a different dtype is a
    /// cast under [`LoadOptions::casting`], done in the same pass as the read.
    pub dtype: Option<DType>,
    /// Casting mode for a cast to [`LoadOptions::dtype`] (default: unsafe, as NumPy's
    /// `astype`).
    pub casting: Casting,
}

/// Read just the header of the `.npy` file at `path` (one or two small reads).
pub fn read_header(path: impl AsRef<Path>) -> Result<NpyHeader> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    read_file_header(&file, &name)
}

/// Read and parse the header at the start of `file` with positional reads (usually
/// one: the first 512 bytes hold any header NumPy writes for up to ~20 dimensions).
fn read_file_header(file: &File, name: &str) -> Result<NpyHeader> {
    let mut buf = vec![0u8; 512];
    let got = read_at_most(file, &mut buf, 0).map_err(io_err(name))?;
    buf.truncate(got);
    let (_, data_offset) = preamble(&buf, name)?;
    if data_offset > buf.len() {
        // The length is bounded by `preamble` (at most 40 kB).
        let have = buf.len();
        buf.resize(data_offset, 0);
        let more = read_at_most(file, &mut buf[have..], have as u64).map_err(io_err(name))?;
        buf.truncate(have + more);
    }
    NpyHeader::parse(&buf, name)
}

/// Read up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut n = 0;
        while n < buf.len() {
            match file.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        read_full(&mut f, buf)
    }
}

/// Errors of a stream being read: corrupt data (a bad deflate stream, a CRC mismatch)
/// is a format error, anything else an I/O error.
fn read_err(name: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => format_err(name, e.to_string()),
        _ => Error::Io {
            path: name.to_string(),
            source: e,
        },
    }
}

/// Read and parse a header from the start of a stream, consuming exactly the header.
fn read_header_from(r: &mut impl Read, name: &str) -> Result<NpyHeader> {
    let mut buf = vec![0u8; 12];
    let got = read_full(r, &mut buf).map_err(read_err(name))?;
    buf.truncate(got);
    let (_, data_offset) = preamble(&buf, name)?;
    if data_offset > buf.len() {
        // The length is bounded by `preamble` (at most 40 kB).
        let have = buf.len();
        buf.resize(data_offset, 0);
        let more = read_full(r, &mut buf[have..]).map_err(read_err(name))?;
        buf.truncate(have + more);
    }
    NpyHeader::parse(&buf, name)
}

/// Read until `buf` is full or the stream ends; return the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn truncated_data(header: &NpyHeader, available: u64) -> String {
    format!(
        "truncated data: the header describes {} bytes of data (shape {:?} of '{}') \
         but only {available} follow it",
        header.data_len(),
        header.shape,
        header.descr
    )
}

/// Check the data fits in `total` bytes after the header; `Err` names the problem.
pub(crate) fn check_data_fits(header: &NpyHeader, total: u64, path: &str) -> Result<()> {
    let available = total.saturating_sub(header.data_offset as u64);
    if (header.data_len() as u64) > available {
        return Err(format_err(path, truncated_data(header, available)));
    }
    Ok(())
}

/// Whether elements stored per `header` as `stored` can be used as they lie, to give
/// `target` (the alignment of the address is checked separately).
pub(crate) fn usable_as_is(header: &NpyHeader, stored: DType, target: DType) -> bool {
    stored == target && (stored.size() == 1 || !header.byte_order.is_swapped())
}

/// The refusal for `mmap: Some(true)` when the bytes cannot be used as they lie.
pub(crate) fn no_map_reason(
    header: &NpyHeader,
    stored: DType,
    target: DType,
    aligned: bool,
) -> String {
    let why = if stored != target {
        format!("the data is {stored} and {target} was asked for (a cast needs a copy)")
    } else if !aligned {
        format!(
            "the data is not aligned for {stored} ({} bytes)",
            stored.alignment()
        )
    } else {
        format!(
            "the data is {:?}-endian and must be converted",
            header.byte_order
        )
        .to_lowercase()
    };
    format!("cannot memory-map: {why}; load with mmap disabled to get a converted copy")
}

/// Load the `.npy` file at `path` into a tensor (see the [module documentation](self)
/// for the mapping rule, conversions and refusals).
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Tensor> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    let file_len = file.metadata().map_err(io_err(&name))?.len();
    let header = read_file_header(&file, &name)?;
    let stored = header.resolve_dtype(opts.dtype, &name)?;
    let target = opts.dtype.unwrap_or(stored);
    stored.check_cast(target, opts.casting)?;
    check_data_fits(&header, file_len, &name)?;

    // A mapping starts on a page boundary, so alignment is the offset's.
    let aligned = header.data_offset % stored.alignment() == 0;
    let as_is = usable_as_is(&header, stored, target) && aligned;
    let map = match opts.mmap {
        Some(true) if !as_is => {
            return Err(format_err(
                &name,
                no_map_reason(&header, stored, target, aligned),
            ))
        }
        Some(m) => m,
        None => as_is && header.data_len() >= MMAP_THRESHOLD,
    };
    if map {
        let storage = Arc::new(map_file(&file, &name)?);
        return Tensor::from_storage(
            storage,
            stored,
            header.shape.clone(),
            header.strides(),
            header.data_offset,
            true,
        );
    }
    if as_is && !header.fortran_order {
        // The common case: one read straight into the tensor's buffer.
        return build_filled(stored, &header.shape, |buf| {
            read_exact_at(&file, buf, header.data_offset as u64).map_err(io_err(&name))
        });
    }
    // Byte-swapped, Fortran-ordered or cast: convert from a temporary mapping in one
    // pass; where the file cannot be mapped, from a buffer read first.
    match map_file(&file, &name) {
        Ok(storage) => convert_from(&header, storage.as_slice(), stored, target, opts),
        Err(_) => {
            let mut data = vec![0u8; header.data_len()];
            read_exact_at(&file, &mut data, header.data_offset as u64).map_err(io_err(&name))?;
            let mut h = header.clone();
            h.data_offset = 0;
            convert_from(&h, &data, stored, target, opts)
        }
    }
}

/// A new C-contiguous tensor whose every byte `fill` writes (a read that either fills
/// the whole buffer or fails), without zeroing the buffer first.
pub(crate) fn build_filled(
    dtype: DType,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<Tensor> {
    // SAFETY: every caller passes a `fill` that returns `Ok` only after writing the
    // whole slice (`read_exact_at`, or `NpyReader::read_chunk` with a buffer of exactly
    // the remaining data, which errors on any short read); on `Err` the buffer is
    // dropped unread.
    unsafe { Tensor::build_overwrite(dtype, shape, fill) }
}

/// Map `file` read-only.
fn map_file(file: &File, name: &str) -> Result<Storage> {
    // SAFETY: a read-only private mapping of a file we opened. The bytes are only
    // read through shared slices whose bounds are checked against the mapping length.
    // As with any file mapping (and NumPy's memmap), another process truncating the
    // file while it is mapped would make access fault; that is documented, not
    // prevented.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(io_err(name))?;
    Ok(Storage::from_mmap(map))
}

/// Read `buf.len()` bytes at `offset`; large reads run in parallel pieces.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        if buf.len() >= 4 * READ_PIECE && rayon::current_num_threads() > 1 {
            return buf
                .par_chunks_mut(READ_PIECE)
                .enumerate()
                .try_for_each(|(i, chunk)| {
                    file.read_exact_at(chunk, offset + (i * READ_PIECE) as u64)
                });
        }
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Cast the elements described by `header` in `bytes` to an owned C-contiguous tensor.
pub(crate) fn convert_from(
    header: &NpyHeader,
    bytes: &[u8],
    stored: DType,
    target: DType,
    opts: &LoadOptions,
) -> Result<Tensor> {
    let view = TensorView::new(
        bytes,
        stored,
        header.shape.clone(),
        header.strides(),
        header.data_offset,
        header.byte_order,
    )?;
    cast(&view, target, opts.casting)
}

/// Load an `.npy` image held in memory (such as an `.npz` member read elsewhere) into
/// an owned tensor. `name` labels errors. `mmap: Some(true)` is refused (there is no
/// file to map).
pub fn from_bytes(bytes: &[u8], name: &str, opts: &LoadOptions) -> Result<Tensor> {
    let header = NpyHeader::parse(bytes, name)?;
    if opts.mmap == Some(true) {
        return Err(format_err(
            name,
            "cannot memory-map bytes held in memory; load with mmap disabled",
        ));
    }
    let stored = header.resolve_dtype(opts.dtype, name)?;
    let target = opts.dtype.unwrap_or(stored);
    check_data_fits(&header, bytes.len() as u64, name)?;
    convert_from(&header, bytes, stored, target, opts)
}

/// A streaming reader of `.npy` data: the header first, then element bytes in chunks,
/// in file order (C or Fortran, per [`NpyHeader::fortran_order`]) and file byte order.
/// Memory use is the caller's chunk buffer.
pub struct NpyReader<R: Read> {
    header: NpyHeader,
    inner: R,
    remaining: usize,
    name: String,
}

impl<R: Read> NpyReader<R> {
    /// Read the header from the start of `inner`. `name` labels errors.
    pub fn new(mut inner: R, name: &str) -> Result<Self> {
        let header = read_header_from(&mut inner, name)?;
        Ok(NpyReader {
            remaining: header.data_len(),
            header,
            inner,
            name: name.to_string(),
        })
    }

    /// The header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Bytes of element data not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Fill `buf` with the next whole elements (at most `buf.len()` bytes, rounded
    /// down to whole elements but at least one element when `buf` holds one); returns
    /// the filled part, empty at the end. Data ending early is a
    /// [`Error::Format`] ("truncated data"). After the last element the rest of the
    /// stream is drained, so a checksumming stream (an `.npz` member) can verify itself.
    pub fn read_chunk<'b>(&mut self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let item = self.header.itemsize();
        let want = (buf.len() / item * item).min(self.remaining);
        if want == 0 && self.remaining > 0 {
            return Err(Error::InvalidArgument(format!(
                "a chunk buffer of {} bytes holds no element of {} bytes",
                buf.len(),
                item
            )));
        }
        let got = read_full(&mut self.inner, &mut buf[..want]).map_err(read_err(&self.name))?;
        if got < want {
            let read = self.header.data_len() - self.remaining + got;
            return Err(format_err(
                &self.name,
                truncated_data(&self.header, read as u64),
            ));
        }
        self.remaining -= want;
        if self.remaining == 0 && want > 0 {
            io::copy(&mut self.inner, &mut io::sink()).map_err(read_err(&self.name))?;
        }
        Ok(&buf[..want])
    }
}

/// Open the `.npy` file at `path` for streaming; checks up front that the file holds
/// all the data the header describes.
pub fn open(path: impl AsRef<Path>) -> Result<NpyReader<io::BufReader<File>>> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    let len = file.metadata().map_err(io_err(&name))?.len();
    let reader = NpyReader::new(io::BufReader::with_capacity(1 << 16, file), &name)?;
    check_data_fits(&reader.header, len, &name)?;
    Ok(reader)
}

// ---------------------------------------------------------------------------------
// Writing.

/// Elements per conversion piece when writing a non-contiguous or byte-swapped view.
const WRITE_PIECE_BYTES: usize = 4 << 20;

/// Counts and converts the elements of one array being streamed out.
#[derive(Debug)]
pub(crate) struct ElementSink {
    dtype: DType,
    shape: Vec<usize>,
    expected: usize,
    written: usize,
    buf: Vec<u64>,
}

impl ElementSink {
    pub(crate) fn new(dtype: DType, shape: &[usize]) -> Self {
        ElementSink {
            dtype,
            shape: shape.to_vec(),
            expected: shape.iter().product(),
            written: 0,
            buf: Vec::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<()> {
        match self.written.checked_add(n) {
            Some(total) if total <= self.expected => {
                self.written = total;
                Ok(())
            }
            _ => Err(Error::Shape(format!(
                "{} more elements than the shape {:?} holds ({} written of {})",
                n, self.shape, self.written, self.expected
            ))),
        }
    }

    /// Append native-order element bytes.
    pub(crate) fn write_bytes(
        &mut self,
        w: &mut dyn Write,
        bytes: &[u8],
        name: &str,
    ) -> Result<()> {
        let size = self.dtype.size();
        if bytes.len() % size != 0 {
            return Err(Error::InvalidArgument(format!(
                "{} bytes are not whole elements of {}",
                bytes.len(),
                self.dtype
            )));
        }
        self.take(bytes.len() / size)?;
        w.write_all(bytes).map_err(io_err(name))
    }

    /// Append the elements of `chunk` in its C order, converted to native order.
    pub(crate) fn write_view(
        &mut self,
        w: &mut dyn Write,
        chunk: &TensorView<'_>,
        name: &str,
    ) -> Result<()> {
        if chunk.dtype() != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "a {} chunk written to a {} array (cast it first)",
                chunk.dtype(),
                self.dtype
            )));
        }
        self.take(chunk.len())?;
        if let Some(bytes) = chunk.contiguous_bytes() {
            return w.write_all(bytes).map_err(io_err(name));
        }
        let size = self.dtype.size();
        let max = (WRITE_PIECE_BYTES / size).max(1);
        let buf = &mut self.buf;
        for_each_piece(chunk, max, &mut |piece| {
            let n = piece.len() * size;
            if buf.len() * 8 < n {
                buf.resize(n.div_ceil(8), 0);
            }
            let dst = &mut bytemuck::cast_slice_mut::<u64, u8>(buf)[..n];
            cast_into(piece, piece.dtype(), Casting::Unsafe, dst)?;
            w.write_all(dst).map_err(io_err(name))
        })
    }

    pub(crate) fn check_complete(&self) -> Result<()> {
        if self.written != self.expected {
            return Err(Error::Shape(format!(
                "array of shape {:?} finished after {} of its {} elements",
                self.shape, self.written, self.expected
            )));
        }
        Ok(())
    }
}

/// A streaming `.npy` writer: writes the header at once, then element chunks; checks
/// at [`NpyWriter::finish`] that exactly the shape's element count was written.
///
/// Elements go in file order: C order, or Fortran order when created with
/// `fortran_order: true`. Always native byte order.
#[derive(Debug)]
pub struct NpyWriter<W: Write> {
    w: W,
    sink: ElementSink,
}

/// Label for errors of streams that have no file name.
const STREAM: &str = "<npy stream>";

impl<W: Write> NpyWriter<W> {
    /// Write the header for an array of `dtype` and `shape` to `w`.
    pub fn new(mut w: W, dtype: DType, shape: &[usize], fortran_order: bool) -> Result<Self> {
        let header = NpyHeader::new(dtype, shape, fortran_order)?;
        w.write_all(&header.to_bytes()).map_err(io_err(STREAM))?;
        Ok(NpyWriter {
            w,
            sink: ElementSink::new(dtype, shape),
        })
    }

    /// Append the elements of `chunk` (in its C order; any layout and byte order; its
    /// dtype must be the writer's). More elements than the shape holds is an error.
    pub fn write_chunk(&mut self, chunk: &TensorView<'_>) -> Result<()> {
        self.sink.write_view(&mut self.w, chunk, STREAM)
    }

    /// Append raw native-order element bytes (whole elements).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.sink.write_bytes(&mut self.w, bytes, STREAM)
    }

    /// Check the element count, flush, and return the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.sink.check_complete()?;
        self.w.flush().map_err(io_err(STREAM))?;
        Ok(self.w)
    }
}

/// Write `view` as an `.npy` image to `w`: C order (Fortran order, as NumPy does, when
/// the view is Fortran-contiguous but not C-contiguous), native byte order.
pub fn write(w: &mut impl Write, view: &TensorView<'_>) -> Result<()> {
    let (fortran, ordered) = in_file_order(view)?;
    let mut writer = NpyWriter::new(w, view.dtype(), view.shape(), fortran)?;
    writer.write_chunk(&ordered)?;
    writer.finish()?;
    Ok(())
}

/// Whether to write `view` in Fortran order (it is Fortran- but not C-contiguous),
/// and a view whose C order is the file order.
pub(crate) fn in_file_order<'a>(view: &TensorView<'a>) -> Result<(bool, TensorView<'a>)> {
    if view.is_c_contiguous() || !is_f_contiguous(view) {
        return Ok((false, view.clone()));
    }
    // The reversed layout is C-contiguous: its C order is the bytes' memory order.
    let rev = TensorView::new(
        view.bytes(),
        view.dtype(),
        view.shape().iter().rev().copied().collect(),
        view.strides().iter().rev().copied().collect(),
        view.offset(),
        view.byte_order(),
    )?;
    Ok((true, rev))
}

fn is_f_contiguous(view: &TensorView<'_>) -> bool {
    let shape: Vec<usize> = view.shape().iter().rev().copied().collect();
    let strides: Vec<isize> = view.strides().iter().rev().copied().collect();
    crate::view::is_c_contiguous(&shape, &strides, view.dtype().size())
}

/// Write `view` to the `.npy` file `path` (see [`write()`]), atomically: a temporary
/// file in the same directory renamed at the end; nothing is left behind on error.
pub fn save(path: impl AsRef<Path>, view: &TensorView<'_>) -> Result<()> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let mut file = AtomicFile::create(path)?;
    write(&mut file, view).map_err(|e| relabel(e, &name))?;
    file.commit()
}

/// Put the real file name on I/O errors from writers that do not know it.
pub(crate) fn relabel(e: Error, name: &str) -> Error {
    match e {
        Error::Io { source, .. } => Error::Io {
            path: name.to_string(),
            source,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v
    }

    fn parse(dict: &str) -> Result<NpyHeader> {
        NpyHeader::parse(&header_bytes(dict), "t.npy")
    }

    #[test]
    fn parses_numpy_headers() {
        let h = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }  \n").unwrap();
        assert_eq!(h.dtype, Some(DType::Float32));
        assert_eq!(h.shape, vec![3, 4]);
        assert!(!h.fortran_order);
        assert_eq!(h.byte_order, ByteOrder::Little);
        let h = parse("{\"shape\": (), \"fortran_order\": True, \"descr\": \">c16\"}").unwrap();
        assert_eq!(h.shape, Vec::<usize>::new());
        assert_eq!(h.dtype, Some(DType::Complex128));
        assert_eq!(h.byte_order, ByteOrder::Big);
        let h = parse("{'descr':'|b1','fortran_order':False,'shape':(0,5L,)}").unwrap();
        assert_eq!(h.shape, vec![0, 5]);
        let h = parse("{'descr': '<V2', 'fortran_order': False, 'shape': (7,)}").unwrap();
        assert_eq!(h.dtype, None);
        assert!(h.resolve_dtype(None, "x").is_err());
        assert_eq!(
            h.resolve_dtype(Some(DType::BFloat16), "x").unwrap(),
            DType::BFloat16
        );
    }

    #[test]
    fn header_matches_numpy_bytes() {
        // np.save(np.zeros((2, 3), '<f4')) header, verbatim.
        let h = NpyHeader::new(DType::Float32, &[2, 3], false).unwrap();
        let b = h.to_bytes();
        let mut want =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                .to_vec();
        want.resize(127, b' ');
        want.push(b'\n');
        assert_eq!(b, want);
        assert_eq!(h.data_offset, 128);
        let back = NpyHeader::parse(&b, "x").unwrap();
        assert_eq!(back, h);
        // 0-d and bfloat16.
        let h = NpyHeader::new(DType::BFloat16, &[], false).unwrap();
        assert!(String::from_utf8_lossy(&h.to_bytes()).contains("'descr': '<V2'"));
        assert!(String::from_utf8_lossy(&h.to_bytes()).contains("'shape': ()"));
    }

    #[test]
    fn refusals_name_the_reason() {
        let cases = [
            ("{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", "never unpickles"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured"),
            ("{'descr': '<U5', 'fortran_order': False, 'shape': (1,)}", "unsupported dtype"),
            ("{'descr': '<f4', 'fortran_order': False}", "missing key \"shape\""),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unexpected key"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "not a bool"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "negative"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", "tuple"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}", "only decimal"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2**64,)}", "expected ','"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", "overflows"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999,)}", "too large"),
            ("__import__('os').system('rm -rf /')", "not a literal"),
            ("[1, 2]", "not a dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the literal"),
            ("{'descr': '<f4' 'fortran_order': False}", "expected"),
        ];
        for (dict, want) in cases {
            let e = parse(dict).unwrap_err().to_string();
            assert!(e.contains(want) && e.starts_with("t.npy: "), "{dict}: {e}");
        }
        let deep = "(".repeat(5000);
        assert!(parse(&deep).unwrap_err().to_string().contains("too deep"));
        let e = NpyHeader::parse(b"PK\x03\x04", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad magic"), "{e}");
        let e = NpyHeader::parse(b"\x93NUMPY\x04\x00\x00\x00", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 4.0"), "{e}");
        let e = NpyHeader::parse(b"\x93NUMPY\x02\x00\xff\xff\xff\x7f", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than NumPy allows"), "{e}");
        let e = NpyHeader::parse(b"\x93NUMPY\x01\x00\x40\x00{'de", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated header"), "{e}");
        let long = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}{}",
            " ".repeat(10_001)
        );
        let e = parse(&long).unwrap_err().to_string();
        assert!(e.contains("longer than NumPy allows"), "{e}");
    }

    #[test]
    fn utf8_header_version_3() {
        let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), } ";
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[3, 0]);
        v.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        let h = NpyHeader::parse(&v, "x").unwrap();
        assert_eq!(h.version, (3, 0));
        assert_eq!(h.data_offset, v.len());
        let mut bad = v.clone();
        bad[13] = 0xff;
        assert!(NpyHeader::parse(&bad, "x")
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
