//! `Dataset::zip`: elements made of one element of each input, side by side (the
//! components of input 0, then of input 1, ...; the Python package keeps the
//! tuple/dict structure). Ends with the shortest input, as `tf.data`.

use serde_json::{json, Value};

use super::comp::Item;
use super::state::{bad, field, object, It, Prov, Stage};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::error::{Error, Result};

impl Dataset {
    /// Zip `datasets` (at least one): element `i` holds the components of element
    /// `i` of every input, in order.
    pub fn zip(datasets: Vec<Dataset>) -> Result<Dataset> {
        if datasets.is_empty() {
            return Err(Error::InvalidArgument(
                "zip needs at least one dataset".into(),
            ));
        }
        Ok(Self::wrap(Node::Zip { inputs: datasets }))
    }
}

/// `tf.data`'s rule: unknown if any input is; else the smallest finite one;
/// infinite when every input is.
pub(crate) fn cardinality(inputs: &[Dataset]) -> Cardinality {
    let mut out = Cardinality::Infinite;
    for d in inputs {
        match (d.cardinality(), out) {
            (Cardinality::Unknown, _) => return Cardinality::Unknown,
            (Cardinality::Infinite, _) => {}
            (Cardinality::Finite(n), Cardinality::Finite(m)) => out = Cardinality::Finite(n.min(m)),
            (Cardinality::Finite(n), _) => out = Cardinality::Finite(n),
        }
    }
    out
}

/// The inputs' specs side by side (`None` if any is unknown).
pub(crate) fn element_spec(inputs: &[Dataset]) -> Result<Option<Vec<ComponentSpec>>> {
    let mut out = Vec::new();
    for d in inputs {
        match d.element_spec()? {
            Some(s) => out.extend(s),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// One epoch of a zip: provenance `List` of the inputs' provenances; state
/// `{"inputs": [state, ...]}`.
pub(crate) struct Zip {
    inputs: Vec<It>,
    done: bool,
}

impl Zip {
    pub(crate) fn new(inputs: Vec<It>) -> Zip {
        Zip {
            inputs,
            done: false,
        }
    }
}

/// The input states of a zip's state (`None`: a fresh epoch).
pub(crate) fn input_states(state: Option<&Value>, n: usize) -> Result<Vec<Option<&Value>>> {
    match state {
        None => Ok(vec![None; n]),
        Some(s) => {
            let list = field(object(s, "zip")?, "inputs")?
                .as_array()
                .filter(|a| a.len() == n)
                .ok_or_else(|| bad(format!("a zip of {n} datasets needs {n} input states")))?;
            Ok(list.iter().map(Some).collect())
        }
    }
}

/// Element `prov` of a zip: each input's element, side by side.
pub(crate) fn materialize(inputs: &[Dataset], prov: &Prov) -> Result<Item> {
    match prov {
        Prov::List(ps) if ps.len() == inputs.len() => {
            let mut out = Vec::new();
            for (d, p) in inputs.iter().zip(ps) {
                out.extend(d.materialize(p)?);
            }
            Ok(out)
        }
        other => Err(bad(format!(
            "a zip element's position is malformed: {other:?}"
        ))),
    }
}

impl Stage for Zip {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        let mut provs = Vec::with_capacity(self.inputs.len());
        for it in &mut self.inputs {
            match it.next() {
                Some(Ok((x, p))) => {
                    out.extend(x);
                    provs.push(p);
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
        Some(Ok((out, Prov::List(provs))))
    }

    fn state(&self) -> Result<Value> {
        let inputs = self
            .inputs
            .iter()
            .map(|i| i.state())
            .collect::<Result<Vec<_>>>()?;
        Ok(json!({ "inputs": inputs }))
    }
}
