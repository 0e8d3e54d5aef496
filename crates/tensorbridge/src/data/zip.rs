//! `Dataset::zip`: elements made of one element of each input, side by side (the
//! components of input 0, then of input 1, ...; the Python package keeps the
//! tuple/dict structure). Ends with the shortest input, as `tf.data`.

use super::comp::{It, Item};
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

/// One epoch of a zip.
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

impl Iterator for Zip {
    type Item = Result<Item>;
    fn next(&mut self) -> Option<Result<Item>> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        for it in &mut self.inputs {
            match it.next() {
                Some(Ok(x)) => out.extend(x),
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
        Some(Ok(out))
    }
}
