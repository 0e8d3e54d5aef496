//! `sample_from_datasets` and `choose_from_datasets`: `tf.data`'s directed
//! interleave — each output is the next element of one of several inputs,
//! picked at random with given weights (seeded SplitMix64, the same picks every
//! epoch, as `tf.data` with a seed) or by the int64 scalars of a choice dataset.
//!
//! An exhausted input ends the whole stage when `stop_on_empty_dataset`;
//! otherwise it is left out (its weight no longer counts; a choice of it is
//! skipped), and the stage ends when every input is exhausted (or the choice
//! dataset ends).

use serde_json::{json, Value};

use super::comp::{materialize, Item};
use super::rng::{random_seed, SplitMix64};
use super::run::Ctx;
use super::state::{bad, field, field_bool, object, It, Prov, Stage};
use super::{Cardinality, ComponentSpec, Dataset, Node};
use crate::dtype::DType;
use crate::error::{Error, Result};

impl Dataset {
    /// Each element is the next one of input `k`, `k` drawn with probability
    /// proportional to `weights[k]` (`None`: uniform) among the inputs not yet
    /// exhausted. Weights must be finite, non-negative, not all zero.
    pub fn sample_from_datasets(
        datasets: Vec<Dataset>,
        weights: Option<Vec<f64>>,
        seed: Option<u64>,
        stop_on_empty_dataset: bool,
    ) -> Result<Dataset> {
        if datasets.is_empty() {
            return Err(Error::InvalidArgument(
                "sample_from_datasets needs at least one dataset".into(),
            ));
        }
        let weights = weights.unwrap_or_else(|| vec![1.0; datasets.len()]);
        if weights.len() != datasets.len() {
            return Err(Error::InvalidArgument(format!(
                "sample_from_datasets: {} weights for {} datasets",
                weights.len(),
                datasets.len()
            )));
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(Error::InvalidArgument(format!(
                "sample_from_datasets: weights must be finite, non-negative and not all zero, not {weights:?}"
            )));
        }
        common_spec(&datasets, "sample_from_datasets")?;
        Ok(Self::wrap(Node::Sample {
            inputs: datasets,
            weights,
            seed: seed.unwrap_or_else(random_seed),
            stop_on_empty: stop_on_empty_dataset,
        }))
    }

    /// Each element is the next one of `datasets[c]`, `c` the next int64 scalar of
    /// `choice` (a value out of range fails the epoch).
    pub fn choose_from_datasets(
        datasets: Vec<Dataset>,
        choice: &Dataset,
        stop_on_empty_dataset: bool,
    ) -> Result<Dataset> {
        if datasets.is_empty() {
            return Err(Error::InvalidArgument(
                "choose_from_datasets needs at least one dataset".into(),
            ));
        }
        if let Some(spec) = choice.element_spec()? {
            if spec.len() != 1 || spec[0] != (DType::Int64, vec![]) {
                return Err(Error::InvalidArgument(format!(
                    "choose_from_datasets: the choice dataset must yield int64 scalars, not {spec:?}"
                )));
            }
        }
        common_spec(&datasets, "choose_from_datasets")?;
        Ok(Self::wrap(Node::Choose {
            inputs: datasets,
            choice: choice.clone(),
            stop_on_empty: stop_on_empty_dataset,
        }))
    }
}

fn common_spec(inputs: &[Dataset], op: &str) -> Result<Option<Vec<ComponentSpec>>> {
    super::concat::common_spec(&inputs.iter().collect::<Vec<_>>(), op)
}

/// `tf.data`'s rule: infinite if any input is, else unknown.
pub(crate) fn cardinality(inputs: &[Dataset]) -> Cardinality {
    if inputs
        .iter()
        .any(|d| d.cardinality() == Cardinality::Infinite)
    {
        Cardinality::Infinite
    } else {
        Cardinality::Unknown
    }
}

/// The most specific spec every input fits.
pub(crate) fn element_spec(inputs: &[Dataset], op: &str) -> Result<Option<Vec<ComponentSpec>>> {
    common_spec(inputs, op)
}

/// How the next input is picked.
pub(crate) enum Picker {
    /// Weighted draws.
    Weights(Vec<f64>, SplitMix64),
    /// The int64 scalars of a choice dataset.
    Choice(It),
}

/// One epoch of a directed interleave: provenance `Tagged(k, p)` (`k`: the input);
/// state `{"picker": rng state | choice state, "inputs": [state | null (exhausted)],
/// "done": bool}`.
pub(crate) struct Interleave {
    inputs: Vec<Option<It>>,
    picker: Picker,
    stop_on_empty: bool,
    done: bool,
}

impl Interleave {
    /// A fresh epoch (`state` `None`) or one restored: `datasets` are the inputs,
    /// `picker` the fresh picker (its RNG or choice iterator is then moved to the
    /// saved place), `choice` the choice dataset (for a restore).
    pub(crate) fn build(
        datasets: &[Dataset],
        ctx: &Ctx,
        picker: Picker,
        choice: Option<&Dataset>,
        stop_on_empty: bool,
        state: Option<&Value>,
    ) -> Result<Interleave> {
        let Some(s) = state else {
            return Ok(Interleave {
                inputs: datasets
                    .iter()
                    .map(|d| d.build_in(ctx, None).map(Some))
                    .collect::<Result<_>>()?,
                picker,
                stop_on_empty,
                done: false,
            });
        };
        let o = object(s, "sample/choose_from_datasets")?;
        let list = field(o, "inputs")?
            .as_array()
            .filter(|a| a.len() == datasets.len())
            .ok_or_else(|| bad(format!("{} input states expected", datasets.len())))?;
        let inputs = datasets
            .iter()
            .zip(list)
            .map(|(d, st)| match st {
                Value::Null => Ok(None),
                st => d.build_in(ctx, Some(st)).map(Some),
            })
            .collect::<Result<_>>()?;
        let p = field(o, "picker")?;
        let picker = match (picker, choice) {
            (Picker::Weights(w, rng), _) => {
                let st = p
                    .as_u64()
                    .ok_or_else(|| bad("the sampler's state is not a number"))?;
                Picker::Weights(w, rng.with_state(st))
            }
            (Picker::Choice(_), Some(c)) => Picker::Choice(c.build_in(ctx, Some(p))?),
            (Picker::Choice(_), None) => return Err(bad("no choice dataset")),
        };
        Ok(Interleave {
            inputs,
            picker,
            stop_on_empty,
            done: field_bool(o, "done")?,
        })
    }

    /// The next input to read (`None`: the stage ends).
    fn pick(&mut self) -> Option<Result<usize>> {
        let n = self.inputs.len();
        match &mut self.picker {
            Picker::Weights(w, rng) => {
                let total: f64 = w
                    .iter()
                    .zip(&self.inputs)
                    .filter(|(_, it)| it.is_some())
                    .map(|(w, _)| *w)
                    .sum();
                if total <= 0.0 {
                    return None;
                }
                // A uniform double in [0, total) from the top 53 bits.
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                let mut acc = 0.0;
                let mut last = None;
                for (k, (wk, it)) in w.iter().zip(&self.inputs).enumerate() {
                    if it.is_none() || *wk <= 0.0 {
                        continue;
                    }
                    acc += wk;
                    last = Some(k);
                    if u < acc {
                        return Some(Ok(k));
                    }
                }
                last.map(Ok) // rounding: the last live input
            }
            Picker::Choice(it) => {
                let c = match it.next()? {
                    Ok((x, _)) => materialize(x).and_then(|t| {
                        let v = t.first().map(|t| t.to_vec::<i64>()).transpose()?;
                        match v.as_deref() {
                            Some([c]) if t.len() == 1 && t[0].shape().is_empty() => Ok(*c),
                            _ => Err(Error::InvalidArgument(
                                "choose_from_datasets: the choice dataset must yield int64 scalars"
                                    .into(),
                            )),
                        }
                    }),
                    Err(e) => Err(e),
                };
                Some(c.and_then(|c| {
                    usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "choose_from_datasets: selector index out of range: {c} >= {n}"
                        ))
                    })
                }))
            }
        }
    }
}

/// Element `prov` of a directed interleave.
pub(crate) fn materialize_tagged(inputs: &[Dataset], prov: &Prov) -> Result<Item> {
    match prov {
        Prov::Tagged(k, p) if (*k as usize) < inputs.len() => inputs[*k as usize].materialize(p),
        other => Err(bad(format!(
            "a sampled element's position is malformed: {other:?}"
        ))),
    }
}

impl Stage for Interleave {
    fn next(&mut self) -> Option<Result<(Item, Prov)>> {
        while !self.done {
            if self.inputs.iter().all(Option::is_none) {
                break;
            }
            let k = match self.pick() {
                None => break,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(k)) => k,
            };
            let Some(it) = &mut self.inputs[k] else {
                if self.stop_on_empty {
                    break;
                }
                continue;
            };
            match it.next() {
                Some(r) => return Some(r.map(|(x, p)| (x, Prov::Tagged(k as u64, Box::new(p))))),
                None => {
                    self.inputs[k] = None;
                    if self.stop_on_empty {
                        break;
                    }
                }
            }
        }
        self.done = true;
        None
    }

    fn state(&self) -> Result<Value> {
        let inputs = self
            .inputs
            .iter()
            .map(|i| i.as_ref().map_or(Ok(Value::Null), |i| i.state()))
            .collect::<Result<Vec<_>>>()?;
        let picker = match &self.picker {
            Picker::Weights(_, rng) => Value::from(rng.state()),
            Picker::Choice(it) => it.state()?,
        };
        Ok(json!({ "picker": picker, "inputs": inputs, "done": self.done }))
    }
}
