//! `.npz` archives in an object store: the zip central directory read with suffix and
//! ranged reads (no member data), and members read by ranges when accessed.

use std::io::{Cursor, Read};

use bytes::Bytes;
use flate2::read::DeflateDecoder;

use super::{Compression, NpzArchive, NpzMember, Source};
use crate::error::Result;
use crate::format::format_err;
use crate::format::npy::{header::preamble, NpyHeader, NpyReader};
use crate::location::{ObjectStream, RemoteObject};

/// Bytes read from the end of the object first: the end-of-central-directory record
/// and, for archives of a few dozen members, the whole central directory.
const TAIL: u64 = 16 << 10;
/// The most a zip comment can push the record from the end.
const MAX_TAIL: u64 = 65_535 + 22;
/// Bytes read at a member's local header: the header, its name and extra field, and
/// the start of the member — enough for the `.npy` header of an array of a few
/// dimensions (a longer one costs a second read), and small, so that listing the
/// headers of an archive of many members reads little.
const MEMBER_HEAD: usize = 30 + 256 + 256;

fn u16_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(i..i + 4)?.try_into().ok()?,
    )))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// The end-of-central-directory record in `tail` (the last bytes of the object):
/// its offset in `tail`.
fn find_eocd(tail: &[u8]) -> Option<usize> {
    (0..tail.len().saturating_sub(21)).rev().find(|&i| {
        tail[i..].starts_with(b"PK\x05\x06")
            && u16_at(tail, i + 20).is_some_and(|c| i + 22 + c as usize == tail.len())
    })
}

/// Read the central directory of the archive `obj` (named `label` in errors): its
/// members, with `data_start` the offset of each one's local header.
pub(super) fn read_directory(obj: &RemoteObject, label: &str) -> Result<Vec<NpzMember>> {
    let bad = |why: &str| format_err(label, format!("not a valid .npz (zip) archive: {why}"));
    let size = obj.size();
    if size < 22 {
        return Err(bad("too short for an end-of-central-directory record"));
    }
    let mut tail_start = size - size.min(TAIL);
    let mut tail = obj.get_range(tail_start..size)?;
    let mut eocd = find_eocd(&tail);
    if eocd.is_none() && tail_start > 0 {
        tail_start = size - size.min(MAX_TAIL);
        tail = obj.get_range(tail_start..size)?;
        eocd = find_eocd(&tail);
    }
    let e = eocd.ok_or_else(|| bad("no end-of-central-directory record"))?;
    let field = |v: Option<u64>| v.ok_or_else(|| bad("truncated end record"));
    let mut entries = field(u16_at(&tail, e + 10))?;
    let mut cd_size = field(u32_at(&tail, e + 12))?;
    let mut cd_offset = field(u32_at(&tail, e + 16))?;
    if entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        // ZIP64: the locator (20 bytes) precedes the record and points at the ZIP64 record.
        let loc_at = (tail_start + e as u64)
            .checked_sub(20)
            .ok_or_else(|| bad("no ZIP64 locator"))?;
        let locator = local_slice(&tail, tail_start, loc_at, 20)
            .map_or_else(|| obj.get_range(loc_at..loc_at + 20), Ok)?;
        if !locator.starts_with(b"PK\x06\x07") {
            return Err(bad("no ZIP64 locator"));
        }
        let rec_at = field(u64_at(&locator, 8))?;
        if rec_at.checked_add(56).is_none_or(|end| end > size) {
            return Err(bad("ZIP64 record outside the archive"));
        }
        let rec = local_slice(&tail, tail_start, rec_at, 56)
            .map_or_else(|| obj.get_range(rec_at..rec_at + 56), Ok)?;
        if !rec.starts_with(b"PK\x06\x06") {
            return Err(bad("bad ZIP64 end record"));
        }
        entries = field(u64_at(&rec, 32))?;
        cd_size = field(u64_at(&rec, 40))?;
        cd_offset = field(u64_at(&rec, 48))?;
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > size) {
        return Err(bad("central directory outside the archive"));
    }
    // Every entry takes at least 46 bytes: bounds the member list by the file.
    if entries.saturating_mul(46) > cd_size {
        return Err(bad("more entries than the central directory holds"));
    }
    let cd = local_slice(&tail, tail_start, cd_offset, cd_size as usize)
        .map_or_else(|| obj.get_range(cd_offset..cd_offset + cd_size), Ok)?;
    parse_entries(&cd, entries, label)
}

/// `len` bytes at object offset `at`, if `tail` (starting at `tail_start`) holds them.
fn local_slice(tail: &Bytes, tail_start: u64, at: u64, len: usize) -> Option<Bytes> {
    let s = usize::try_from(at.checked_sub(tail_start)?).ok()?;
    let e = s.checked_add(len)?;
    (e <= tail.len()).then(|| tail.slice(s..e))
}

fn parse_entries(cd: &[u8], entries: u64, label: &str) -> Result<Vec<NpzMember>> {
    let bad = |why: String| format_err(label, format!("bad zip central directory: {why}"));
    let mut out = Vec::with_capacity(entries as usize);
    let mut p = 0usize;
    for i in 0..entries {
        let rec = cd
            .get(p..p + 46)
            .filter(|r| r.starts_with(b"PK\x01\x02"))
            .ok_or_else(|| bad(format!("entry {i} is not a central directory record")))?;
        let get = |v: Option<u64>| v.unwrap_or(0);
        let flags = get(u16_at(rec, 8));
        let method = get(u16_at(rec, 10));
        let crc32 = get(u32_at(rec, 16)) as u32;
        let mut compressed = get(u32_at(rec, 20));
        let mut size = get(u32_at(rec, 24));
        let (n, x, c) = (
            get(u16_at(rec, 28)) as usize,
            get(u16_at(rec, 30)) as usize,
            get(u16_at(rec, 32)) as usize,
        );
        let mut offset = get(u32_at(rec, 42));
        let name_bytes = cd
            .get(p + 46..p + 46 + n)
            .ok_or_else(|| bad(format!("entry {i}'s name is truncated")))?;
        let extra = cd
            .get(p + 46 + n..p + 46 + n + x)
            .ok_or_else(|| bad(format!("entry {i}'s extra field is truncated")))?;
        // ZIP64 extra field: the 64-bit values of the fields that are all ones.
        let mut q = 0;
        while q + 4 <= extra.len() {
            let id = get(u16_at(extra, q));
            let len = get(u16_at(extra, q + 2)) as usize;
            if id == 1 {
                let mut r = q + 4;
                for v in [&mut size, &mut compressed, &mut offset] {
                    if *v == 0xFFFF_FFFF {
                        *v = u64_at(extra, r)
                            .ok_or_else(|| bad(format!("entry {i}'s ZIP64 field is truncated")))?;
                        r += 8;
                    }
                }
            }
            q += 4 + len;
        }
        p += 46 + n + x + c;
        let file_name = String::from_utf8_lossy(name_bytes).into_owned();
        if file_name.ends_with('/') {
            continue;
        }
        let compression = match method {
            0 => Compression::Stored,
            8 => Compression::Deflated,
            m => Compression::Other(format!("zip method {m}")),
        };
        out.push(NpzMember {
            name: file_name
                .strip_suffix(".npy")
                .unwrap_or(&file_name)
                .to_string(),
            file_name,
            compression,
            compressed_size: compressed,
            size,
            data_start: offset,
            crc32,
            encrypted: flags & 1 != 0,
        });
    }
    Ok(out)
}

/// Where member `m`'s bytes start (after its local header, whose offset
/// `m.data_start` holds), and the first bytes of the member (up to about 1.5 KiB).
fn member_head(obj: &RemoteObject, m: &NpzMember, label: &str) -> Result<(u64, Bytes)> {
    let head = obj.get_upto(m.data_start, MEMBER_HEAD)?;
    if !head.starts_with(b"PK\x03\x04") || head.len() < 30 {
        return Err(format_err(
            label,
            "no zip local header where the directory says",
        ));
    }
    let skip =
        30 + u16_at(&head, 26).unwrap_or(0) as usize + u16_at(&head, 28).unwrap_or(0) as usize;
    let start = m.data_start + skip as u64;
    if start
        .checked_add(m.compressed_size)
        .is_none_or(|e| e > obj.size())
    {
        return Err(format_err(
            label,
            format!(
                "member data ({} bytes at offset {start}) lies outside the archive of {} bytes (truncated?)",
                m.compressed_size,
                obj.size()
            ),
        ));
    }
    let have = head.len().min(skip + m.compressed_size as usize).max(skip);
    Ok((
        start,
        head.slice(skip.min(head.len())..have.min(head.len())),
    ))
}

/// A reader of member `m`'s raw (possibly compressed) bytes: the first bytes from
/// the local-header read, the rest streamed with read-ahead.
pub(super) fn member_raw(
    obj: &RemoteObject,
    m: &NpzMember,
    label: &str,
) -> Result<Box<dyn Read + Send>> {
    let (start, first) = member_head(obj, m, label)?;
    let rest = ObjectStream::new(obj, start + first.len() as u64..start + m.compressed_size)?;
    Ok(Box::new(Cursor::new(first).chain(rest)))
}

/// The `.npy` header of member `m` (stored: parsed from the first bytes, read once;
/// deflated: only the header is inflated).
pub(super) fn member_header(obj: &RemoteObject, m: &NpzMember, label: &str) -> Result<NpyHeader> {
    if m.compression == Compression::Stored {
        return stored_member_header(obj, m, label).map(|(_, h)| h);
    }
    // Inflate the header from the bytes read with the local header when they hold
    // it; stream further only when they do not.
    let (_, first) = member_head(obj, m, label)?;
    if let Ok(r) = NpyReader::new(DeflateDecoder::new(Cursor::new(first)), label) {
        return Ok(r.header().clone());
    }
    let raw = member_raw(obj, m, label)?;
    Ok(NpyReader::new(DeflateDecoder::new(raw), label)?
        .header()
        .clone())
}

/// A stored member's `.npy` image: where it starts in the object, and its header
/// (read with the member's local header, one small ranged read; a second only for a
/// longer `.npy` header).
fn stored_member_header(
    obj: &RemoteObject,
    m: &NpzMember,
    label: &str,
) -> Result<(u64, NpyHeader)> {
    let (start, mut first) = member_head(obj, m, label)?;
    let (_, data_offset) = preamble(&first, label)?;
    if data_offset > first.len() && data_offset as u64 <= m.compressed_size {
        first = obj.get_range(start..start + data_offset as u64)?;
    }
    Ok((start, NpyHeader::parse(&first, label)?))
}

impl NpzArchive {
    /// [`Self::reader`] of a member of a remote archive, as a reader that owns its
    /// stream (it does not borrow the archive: ranged reads of the object with
    /// read-ahead, inflated as they arrive). `None` for an archive that is not remote.
    pub fn remote_reader(&self, name: &str) -> Result<Option<NpyReader<Box<dyn Read + Send>>>> {
        let Source::Remote(obj, _) = &self.source else {
            return Ok(None);
        };
        let (m, label) = self.find(name)?;
        let stream = super::checked_member(member_raw(obj, m, &label)?, m, &label)?;
        let reader = NpyReader::new(Box::new(stream) as Box<dyn Read + Send>, &label)?;
        crate::format::npy::check_data_fits(reader.header(), m.size, &label)?;
        Ok(Some(reader))
    }

    /// Where a stored (uncompressed) member's `.npy` image lies in a remote archive:
    /// the object, and the image's offset and length in it (one small read of the
    /// member's local header). `None` for a member that is compressed or an archive
    /// that is not remote. For ranged reads from any row of the member.
    pub fn remote_stored_image(&self, name: &str) -> Result<Option<(RemoteObject, u64, u64)>> {
        let Some((obj, m, label)) = self.remote_stored(name)? else {
            return Ok(None);
        };
        let (start, _) = member_head(obj, m, &label)?;
        Ok(Some((obj.clone(), start, m.size)))
    }

    /// [`Self::remote_stored_image`] with the image's `.npy` header, read together
    /// (the same requests as [`Self::header`]): `(object, image start, image length,
    /// header)`. What a distributed reader's driver hands its read tasks, so that
    /// each reads its rows with no other request
    /// ([`load_rows_at`](crate::format::npy::load_rows_at) over
    /// [`RemoteObject::known`]). `None`: not a remote archive, or a deflated member.
    pub fn remote_stored_header(
        &self,
        name: &str,
    ) -> Result<Option<(RemoteObject, u64, u64, NpyHeader)>> {
        let Some((obj, m, label)) = self.remote_stored(name)? else {
            return Ok(None);
        };
        let (start, h) = stored_member_header(obj, m, &label)?;
        Ok(Some((obj.clone(), start, m.size, h)))
    }

    /// Member `name` of a remote archive when it is stored (its image lies as it is
    /// in the object), with its object and label; `None` otherwise.
    fn remote_stored(&self, name: &str) -> Result<Option<(&RemoteObject, &NpzMember, String)>> {
        let Source::Remote(obj, _) = &self.source else {
            return Ok(None);
        };
        let (m, label) = self.find(name)?;
        if m.compression != Compression::Stored || m.size != m.compressed_size {
            return Ok(None);
        }
        Ok(Some((obj, m, label)))
    }
}
