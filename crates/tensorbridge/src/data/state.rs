//! Iterator state: where an epoch's stages stand, as JSON, and how elements in
//! flight are made again from their provenance.
//!
//! Every element in flight carries a [`Prov`], enough to make it again
//! ([`Dataset::materialize`]): sources give `Index(row)`, element-wise stages pass
//! their input's on, `batch` gives a `List` of its rows'. Each stage of an epoch is
//! a [`Stage`]; its [`Stage::state`] is a small JSON value (counters, PRNG state,
//! the provenances of elements taken from the input but not yet passed on — never
//! element data) describing the position *after* the last element it returned.
//! [`Dataset::build_in`](super::Dataset) restores an epoch from it: elements that
//! were in flight (a shuffle buffer, a prefetch channel, a parallel map's jobs) are
//! re-materialized from their provenances and come out first, then the input goes
//! on where it stood.
//!
//! The state of a whole iterator ([`super::DatasetIter::state`]) is
//! `{"version": 1, "pipeline": [...], "position": n, "state": {...}}`, where
//! `pipeline` is a readable description of the stages (see
//! [`Dataset::fingerprint`]) checked on restore: a state saved from a different
//! pipeline definition is refused with [`Error::InvalidArgument`] naming the
//! first stage that differs.

use serde_json::{json, Map, Value};

use super::comp::Item;
use super::Dataset;
use crate::error::{Error, Result};

/// The version of the state layout written by [`super::DatasetIter::state`].
pub(crate) const STATE_VERSION: u64 = 1;

/// Where an element in flight came from: enough to make it again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prov {
    /// Row `i` of a source (a file source counts rows over its files in their
    /// original, unshuffled order).
    Index(u64),
    /// The elements of a batch (or a zip), in order.
    List(Vec<Prov>),
    /// Element made from input `k` (concatenate, sampling) or with a counter
    /// `k` (enumerate, unbatch) out of an input element.
    Tagged(u64, Box<Prov>),
}

impl Prov {
    /// From JSON: `Index` a number, `List` an array, `Tagged` `{"t": k, "p": ...}`
    /// (as [`provs_json`] writes them).
    pub(crate) fn from_json(v: &Value) -> Result<Prov> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(Prov::Index)
                .ok_or_else(|| bad(format!("an element position is not a row index: {n}"))),
            Value::Array(a) => a
                .iter()
                .map(Prov::from_json)
                .collect::<Result<_>>()
                .map(Prov::List),
            Value::Object(o) => Ok(Prov::Tagged(
                field_u64(o, "t")?,
                Box::new(Prov::from_json(field(o, "p")?)?),
            )),
            other => Err(bad(format!("an element position is malformed: {other}"))),
        }
    }

    /// The row index of an `Index` provenance.
    pub(crate) fn index(&self) -> Result<u64> {
        match self {
            Prov::Index(i) => Ok(*i),
            other => Err(bad(format!("expected a row index, got {other:?}"))),
        }
    }
}

/// Make many elements again (a shuffle buffer): in the order of their
/// provenances, so a file source reads file after file rather than jumping
/// between files, and returned in the given order.
pub(crate) fn materialize_all(ds: &Dataset, provs: &[Prov]) -> Result<Vec<Item>> {
    let mut order: Vec<usize> = (0..provs.len()).collect();
    order.sort_by(|&a, &b| provs[a].cmp(&provs[b]));
    let mut out: Vec<Option<Item>> = (0..provs.len()).map(|_| None).collect();
    for i in order {
        out[i] = Some(ds.materialize(&provs[i])?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// One stage of a running epoch.
pub(crate) trait Stage: Send {
    /// The next element and its provenance, an error, or `None` at the end.
    fn next(&mut self) -> Option<Result<(Item, Prov)>>;
    /// The state after the last element this stage returned (JSON, no data).
    fn state(&self) -> Result<Value>;
}

/// An epoch's iterator of one stage.
pub(crate) type It = Box<dyn Stage>;

/// The error for a state that does not fit the pipeline.
pub(crate) fn bad(msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("cannot restore the iterator state: {msg}"))
}

/// The JSON object `v`, or an error naming `what`.
pub(crate) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| bad(format!("the state of {what} is not an object: {v}")))
}

/// Field `key` of a state object.
pub(crate) fn field<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a Value> {
    o.get(key)
        .ok_or_else(|| bad(format!("field {key:?} is missing")))
}

/// An unsigned integer field.
pub(crate) fn field_u64(o: &Map<String, Value>, key: &str) -> Result<u64> {
    let v = field(o, key)?;
    v.as_u64()
        .ok_or_else(|| bad(format!("field {key:?} is not an unsigned integer: {v}")))
}

/// An unsigned integer field that may be `null` (`None`).
pub(crate) fn field_opt_u64(o: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match field(o, key)? {
        Value::Null => Ok(None),
        _ => field_u64(o, key).map(Some),
    }
}

/// A boolean field.
pub(crate) fn field_bool(o: &Map<String, Value>, key: &str) -> Result<bool> {
    let v = field(o, key)?;
    v.as_bool()
        .ok_or_else(|| bad(format!("field {key:?} is not a boolean: {v}")))
}

/// A field holding a list of provenances: the JSON text [`provs_json`] writes
/// (or, written by hand, the JSON array itself).
pub(crate) fn field_provs(o: &Map<String, Value>, key: &str) -> Result<Vec<Prov>> {
    let parsed;
    let list = match field(o, key)? {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| bad(format!("field {key:?} is not a list of positions: {e}")))?;
            &parsed
        }
        v => v,
    };
    match list {
        Value::Array(a) => a.iter().map(Prov::from_json).collect(),
        v => Err(bad(format!("field {key:?} is not a list: {v}"))),
    }
}

/// Provenances as the JSON text of an array (`"[17,4,[5,6]]"`), held in a JSON
/// string: a shuffle buffer's ten thousand positions are then one string that
/// `json.loads` (or any JSON reader) takes in one step, which keeps `get_state`
/// cheap, while the text stays readable JSON.
pub(crate) fn provs_json<'a>(provs: impl Iterator<Item = &'a Prov>) -> Value {
    let mut s = String::from("[");
    for (i, p) in provs.enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_prov(&mut s, p);
    }
    s.push(']');
    Value::String(s)
}

fn write_prov(s: &mut String, p: &Prov) {
    match p {
        Prov::Index(i) => push_u64(s, *i),
        Prov::List(v) => {
            s.push('[');
            for (i, q) in v.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_prov(s, q);
            }
            s.push(']');
        }
        Prov::Tagged(k, q) => {
            s.push_str("{\"t\":");
            push_u64(s, *k);
            s.push_str(",\"p\":");
            write_prov(s, q);
            s.push('}');
        }
    }
}

/// Append `x` in decimal (without `fmt`'s machinery: this runs per buffered element).
fn push_u64(s: &mut String, mut x: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    // Digits only: always valid UTF-8.
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Check the top-level state against `ds` and return its position and stage tree.
pub(crate) fn check_top<'a>(ds: &Dataset, state: &'a Value) -> Result<(u64, &'a Value)> {
    let o = object(state, "the iterator")?;
    let version = field_u64(o, "version")?;
    if version != STATE_VERSION {
        return Err(bad(format!(
            "it has version {version}, this tensorbridge reads version {STATE_VERSION}"
        )));
    }
    let want = ds.fingerprint();
    let got: Vec<String> = match field(o, "pipeline")? {
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("\"pipeline\" is not a list of strings"))?,
        v => return Err(bad(format!("\"pipeline\" is not a list: {v}"))),
    };
    if got != want {
        let i = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        let here = want.get(i).map_or("nothing".into(), |s| format!("{s:?}"));
        let there = got.get(i).map_or("nothing".into(), |s| format!("{s:?}"));
        return Err(Error::InvalidArgument(format!(
            "the iterator state was saved from a different pipeline: stage {i} (counted from the source) is {here} in this pipeline but {there} in the state (this pipeline: {}; the state's: {})",
            want.join(" -> "),
            got.join(" -> ")
        )));
    }
    Ok((field_u64(o, "position")?, field(o, "state")?))
}

/// The top-level state of an iterator over `ds` at `position`.
pub(crate) fn top(ds: &Dataset, position: u64, tree: Value) -> Value {
    json!({
        "version": STATE_VERSION,
        "pipeline": ds.fingerprint(),
        "position": position,
        "state": tree,
    })
}

/// FNV-1a over bytes: a stable hash for fingerprints (file lists).
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>, mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// FNV-1a's offset basis.
pub(crate) const FNV_START: u64 = 0xCBF2_9CE4_8422_2325;

impl Dataset {
    /// The datasets this one reads, in order.
    pub(crate) fn inputs(&self) -> Vec<&Dataset> {
        use super::Node::*;
        match &*self.node {
            Files { .. } | Slices { .. } | Range { .. } => Vec::new(),
            MapOps { input, .. }
            | MapFn { input, .. }
            | Shuffle { input, .. }
            | Batch { input, .. }
            | Prefetch { input, .. }
            | Repeat { input, .. }
            | Take { input, .. }
            | Skip { input, .. }
            | Shard { input, .. }
            | ShardRows { input, .. } => vec![input],
            GlobalShuffle { .. }
            | Zip { .. }
            | Concatenate { .. }
            | Filter { .. }
            | Enumerate { .. }
            | Unbatch { .. }
            | PaddedBatch { .. }
            | Sample { .. }
            | Choose { .. }
            | AssertCardinality { .. } => self.combinator_inputs(),
        }
    }

    /// A readable description of this stage alone (parameters that decide which
    /// elements come out; not those that only decide speed, like the number of
    /// map workers or the prefetch depth).
    pub(crate) fn describe(&self) -> String {
        use super::Node::*;
        use std::sync::atomic::Ordering::Relaxed;
        let seed = |seeded: bool, s: &std::sync::atomic::AtomicU64| {
            if seeded {
                s.load(Relaxed).to_string()
            } else {
                "None".into()
            }
        };
        let count = |n: &Option<u64>| n.map_or("None".into(), |n| n.to_string());
        match &*self.node {
            Files {
                files,
                plan,
                shuffle,
                seed: s,
                seeded,
                ..
            } => {
                let mut h = FNV_START;
                for f in files.iter() {
                    h = fnv1a(f.path.to_string_lossy().bytes(), h);
                    h = fnv1a(0u8..1, h);
                    h = fnv1a((f.rows as u64).to_le_bytes(), h);
                }
                format!(
                    "from_files({} files, {} rows, list hash {h:016x}, keys={:?}, shuffle_files={shuffle}, seed={}, cycle_length={}, block_length={}, on_error={:?})",
                    files.len(),
                    files.iter().map(|f| f.rows as u64).sum::<u64>(),
                    plan.keys,
                    if *shuffle { seed(*seeded, s) } else { "None".into() },
                    plan.cycle_length,
                    plan.block_length,
                    plan.on_error
                )
            }
            Slices { comps, len } => format!(
                "from_tensor_slices({len} rows of {})",
                comps
                    .iter()
                    .map(|t| format!("{} {:?}", t.dtype(), &t.shape()[1..]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Range { n } => format!("range({n})"),
            MapOps { ops, .. } => format!("map({ops:?})"),
            MapFn { .. } => "map(fn)".into(),
            Shuffle {
                buffer,
                seed: s,
                seeded,
                reshuffle,
                ..
            } => format!(
                "shuffle(buffer_size={}, seed={}, reshuffle_each_iteration={reshuffle})",
                if *buffer == usize::MAX {
                    "UNKNOWN_CARDINALITY".to_string()
                } else {
                    buffer.to_string()
                },
                seed(*seeded, s)
            ),
            Batch {
                size,
                drop_remainder,
                ..
            } => format!("batch({size}, drop_remainder={drop_remainder})"),
            Prefetch { .. } => "prefetch".into(),
            Repeat { count: c, .. } => format!("repeat({})", count(c)),
            Take { n, .. } => format!("take({})", count(n)),
            Skip { n, .. } => format!("skip({})", count(n)),
            // Elastic: a shard of a global shuffle may be restored into another
            // sharding (the state holds the global position).
            Shard { input, .. } if input.is_global_shuffle() => "shard(elastic)".into(),
            Shard { num, index, .. } => format!("shard({num}, {index})"),
            ShardRows {
                num, index, block, ..
            } => format!("shard_rows({num}, {index}, block={block})"),
            GlobalShuffle { .. }
            | Zip { .. }
            | Concatenate { .. }
            | Filter { .. }
            | Enumerate { .. }
            | Unbatch { .. }
            | PaddedBatch { .. }
            | Sample { .. }
            | Choose { .. }
            | AssertCardinality { .. } => self.describe_combinator(),
        }
    }

    /// The stages, sources first (each stage after the inputs it reads): what a
    /// saved state is checked against.
    pub(crate) fn fingerprint(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.fingerprint_into(&mut out);
        out
    }

    fn fingerprint_into(&self, out: &mut Vec<String>) {
        for i in self.inputs() {
            i.fingerprint_into(out);
        }
        out.push(self.describe());
    }

    /// Why iterators of this dataset cannot save their state, if they cannot.
    pub(crate) fn no_state_reason(&self) -> Option<String> {
        if let super::Node::MapFn {
            no_state: Some(why),
            ..
        } = &*self.node
        {
            return Some(why.to_string());
        }
        self.inputs().into_iter().find_map(Dataset::no_state_reason)
    }
}
