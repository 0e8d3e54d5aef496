//! `assert_cardinality`: the input's elements, with a cardinality the caller knows
//! (as `tf.data.experimental.assert_cardinality`); an epoch with fewer or more
//! elements fails with an error saying so. For sources whose length is known
//! although the stages that make them cannot tell it (rows of blocks unbatched:
//! `Dataset.from_ray`).

use serde_json::{json, Value};

use super::comp::Item;
use super::run::Ctx;
use super::state::{field, field_u64, object, It, Prov, Stage};
use super::{Dataset, Node};
use crate::error::{Error, Result};

impl Dataset {
    /// The same elements, with cardinality `n` (each epoch checks it: an epoch that
    /// ends early, or yields an element past the `n`-th, fails with
    /// [`Error::InvalidArgument`]).
    pub fn assert_cardinality(&self, n: u64) -> Dataset {
        Self::wrap(Node::AssertCardinality {
            input: self.clone(),
            n,
        })
    }
}

/// One epoch of an `assert_cardinality`: provenance the input's; state
/// `{"seen": elements, "input": ...}`.
pub(crate) struct AssertCardinality {
    input: It,
    n: u64,
    seen: u64,
}

impl AssertCardinality {
    /// A fresh epoch, or one restored from `state`.
    pub(crate) fn build(
        input: &Dataset,
        ctx: &Ctx,
        n: u64,
        state: Option<&Value>,
    ) -> Result<AssertCardinality> {
        Ok(match state {
            None => AssertCardinality {
                input: input.build_in(ctx, None)?,
                n,
                seen: 0,
            },
            Some(s) => {
                let o = object(s, "assert_cardinality")?;
                AssertCardinality {
                    input: input.build_in(ctx, Some(field(o, "input")?))?,
                    n,
                    seen: field_u64(o, "seen")?,
                }
            }
        })
    }
}

fn mismatch(n: u64, what: String) -> Error {
    Error::InvalidArgument(format!(
        "assert_cardinality: the input was expected to have {n} elements, but {what}"
    ))
}

impl Stage for AssertCardinality {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        match self.input.next() {
            None if self.seen < self.n => {
                let seen = self.seen;
                self.seen = self.n; // report once
                Some(Err(mismatch(self.n, format!("it ended after {seen}"))))
            }
            None => None,
            Some(Ok(_)) if self.seen >= self.n => Some(Err(mismatch(
                self.n,
                "it has at least one more".to_string(),
            ))),
            Some(r) => {
                self.seen += 1;
                Some(r)
            }
        }
    }

    fn state(&self) -> Result<Value> {
        Ok(json!({ "seen": self.seen, "input": self.input.state()? }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::data::{Cardinality, Dataset};

    /// The even numbers of `range(10)`, through a filter (cardinality unknown).
    fn evens() -> Dataset {
        Dataset::range(10).filter(Arc::new(|t| Ok(t[0].to_vec::<i64>()?[0] % 2 == 0)))
    }

    fn count(ds: &Dataset) -> crate::error::Result<u64> {
        let mut it = ds.iter()?;
        let mut k = 0;
        for x in &mut it {
            x?;
            k += 1;
        }
        Ok(k)
    }

    #[test]
    fn exact_count_passes_and_is_reported() {
        let ds = evens().assert_cardinality(5);
        assert_eq!(ds.cardinality(), Cardinality::Finite(5));
        assert_eq!(count(&ds).unwrap(), 5);
    }

    #[test]
    fn fewer_or_more_elements_fail() {
        let short = evens().assert_cardinality(6);
        let e = count(&short).unwrap_err().to_string();
        assert!(
            e.contains("expected to have 6 elements, but it ended after 5"),
            "{e}"
        );
        let long = evens().assert_cardinality(4);
        let e = count(&long).unwrap_err().to_string();
        assert!(
            e.contains("expected to have 4 elements, but it has at least one more"),
            "{e}"
        );
    }
}
