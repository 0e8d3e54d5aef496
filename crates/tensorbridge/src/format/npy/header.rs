//! The `.npy` header: its preamble (magic, version, length), the Python-literal dict
//! it holds, and the header `np.save` writes.

use crate::dtype::{ByteOrder, DType};
use crate::error::{Error, Result};
use crate::format::format_err;
use crate::shape::ShapeDisplay;
use crate::view::{contiguous_strides, MAX_NDIM};

use super::{MAGIC, MAX_HEADER_CHARS};

/// A header of more bytes than this cannot decode to at most [`MAX_HEADER_CHARS`]
/// characters (UTF-8 needs at most 4 bytes per character).
const MAX_HEADER_BYTES: usize = 4 * MAX_HEADER_CHARS;

/// Array data starts on a multiple of this in files NumPy and tensorbridge write.
const ARRAY_ALIGN: usize = 64;
/// NumPy leaves room after the header for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// Nesting deeper than this in a header is refused (no valid header nests past 3).
const MAX_DEPTH: usize = 16;

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
    /// the header's is otherwise a cast target; see [`LoadOptions::dtype`](super::LoadOptions::dtype).)
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
        // NumPy writes `repr(shape)`: the Python tuple `ShapeDisplay` renders.
        let shape = ShapeDisplay(&self.shape);
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

pub(super) fn truncated_header(have: usize, need: usize) -> String {
    format!("truncated header: the header needs {need} bytes but only {have} are there")
}

fn header_too_long(n: usize) -> String {
    format!(
        "header of {n} characters is longer than NumPy allows ({MAX_HEADER_CHARS}); \
         refused as unsafe to parse"
    )
}

/// Check magic, version and header length; return the version and the data offset.
pub(crate) fn preamble(bytes: &[u8], path: &str) -> Result<((u8, u8), usize)> {
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
        // np.save headers of shapes (7,), () and Fortran-ordered (2, 3, 4), verbatim.
        for (shape, fortran, dict) in [
            (
                &[7][..],
                false,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }",
            ),
            (
                &[][..],
                false,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            ),
            (
                &[2, 3, 4][..],
                true,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }",
            ),
        ] {
            let mut want = b"\x93NUMPY\x01\x00v\x00".to_vec();
            want.extend_from_slice(dict.as_bytes());
            want.resize(127, b' ');
            want.push(b'\n');
            let got = NpyHeader::new(DType::Float32, shape, fortran)
                .unwrap()
                .to_bytes();
            assert_eq!(got, want, "{shape:?}");
        }
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
