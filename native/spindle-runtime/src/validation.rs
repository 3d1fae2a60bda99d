//! Validation after every epoch, and early stopping.
//!
//! A trainable export (`spindle.keras.export_trainable`) has two signatures for it:
//! * `evaluate(<the train inputs>) -> {"loss_sum", "count", <metric states>}`: what one batch adds to each
//!   sum: its loss times its rows, its rows, and each Keras metric's state update (true positives of
//!   AUC's thresholds, an accuracy's total and count, ...), computed without touching any variable.
//! * `metrics(<the same names>) -> {"loss", <metric>...}`: the figures from the summed states.
//!
//! Each worker sums `evaluate` over its validation batches (in f64), the ring sums the workers' sums, and
//! every worker runs `metrics` on the same totals: the figures equal one evaluation over all the
//! validation rows in one process, and every worker sees them, so all decide alike whether to stop.

use spindle_proto::spindle::{DType, SignatureInfo};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tf::{DataType, Port, Tensor};

/// Sums one epoch's `evaluate` outputs and turns the totals into metrics.
pub(crate) struct Evaluator {
    /// `evaluate` outputs, in signature order (sorted by name).
    fetch: Vec<Port>,
    /// For each output: its name, the `metrics` input it feeds, its shape and elements.
    states: Vec<(String, Port, Vec<i64>, usize)>,
    /// `metrics` outputs: name and port.
    results: Vec<(String, Port)>,
    /// Running sums of every output, flattened in order.
    sums: Vec<f64>,
}

fn find<'a>(sig: &'a SignatureInfo, name: &str, model: &Model) -> Result<&'a str> {
    sig.inputs
        .iter()
        .find(|i| i.name == name)
        .map(|i| i.tensor.as_str())
        .ok_or_else(|| {
            Error::Model(format!(
                "signature 'metrics' of {} has no input '{name}', which 'evaluate' outputs",
                model.path()
            ))
        })
}

impl Evaluator {
    /// Checks that `evaluate` outputs float32 tensors of known shapes, among them `loss_sum` and `count`,
    /// and that `metrics` takes each of them.
    pub(crate) fn new(model: &Model) -> Result<Evaluator> {
        let evaluate = model.signature("evaluate").map_err(|e| {
            Error::Model(format!(
                "{e}: validation needs the 'evaluate' and 'metrics' signatures that \
                 spindle.keras.export_trainable writes (export the model again with it)"
            ))
        })?;
        let metrics = model.signature("metrics")?;
        let mut states = Vec::with_capacity(evaluate.outputs.len());
        for out in &evaluate.outputs {
            if out.dtype != DType::Float32 as i32
                || out.unknown_rank
                || out.shape.iter().any(|d| *d < 0)
            {
                return Err(Error::Model(format!(
                    "'evaluate' output '{}' is {} of shape {:?}; validation sums float32 tensors of known shape",
                    out.name, out.tf_dtype, out.shape
                )));
            }
            let elements = out.shape.iter().product::<i64>() as usize;
            let port = model.port(find(metrics, &out.name, model)?)?;
            states.push((out.name.clone(), port, out.shape.clone(), elements));
        }
        for required in ["loss_sum", "count"] {
            if !states.iter().any(|s| s.0 == required) {
                return Err(Error::Model(format!(
                    "signature 'evaluate' of {} has no output '{required}'",
                    model.path()
                )));
            }
        }
        let fetch = evaluate
            .outputs
            .iter()
            .map(|o| model.port(&o.tensor))
            .collect::<Result<Vec<_>>>()?;
        let results = metrics
            .outputs
            .iter()
            .map(|o| Ok((o.name.clone(), model.port(&o.tensor)?)))
            .collect::<Result<Vec<_>>>()?;
        let total = states.iter().map(|s| s.3).sum();
        Ok(Evaluator {
            fetch,
            states,
            results,
            sums: vec![0.0; total],
        })
    }

    /// What a validation batch runs `evaluate` for.
    pub(crate) fn fetch(&self) -> &[Port] {
        &self.fetch
    }

    /// Adds one batch's `evaluate` outputs (in [`Self::fetch`] order) to the sums.
    pub(crate) fn add(&mut self, outputs: &[Tensor]) -> Result<()> {
        let mut at = 0;
        for (t, (name, _, _, elements)) in outputs.iter().zip(&self.states) {
            let values = t.as_slice::<f32>(DataType::Float32)?;
            if values.len() != *elements {
                return Err(Error::Model(format!(
                    "'evaluate' output '{name}' has {} values, expected {elements}",
                    values.len()
                )));
            }
            for (s, v) in self.sums[at..at + elements].iter_mut().zip(values) {
                *s += *v as f64;
            }
            at += elements;
        }
        Ok(())
    }

    /// This worker's sums, for the all-reduce (float32: the ring's type; each is one rounding from the
    /// f64 sum, so the totals carry about 7 significant digits).
    pub(crate) fn sums(&self) -> Vec<f32> {
        self.sums.iter().map(|v| *v as f32).collect()
    }

    /// The metrics of `totals` (every worker's sums added up), through `metrics`, keyed `val_<name>`;
    /// then clears the sums for the next epoch. Fails when no worker had a validation row.
    pub(crate) fn finish(&mut self, model: &Model, totals: &[f32]) -> Result<Vec<(String, f64)>> {
        self.sums.fill(0.0);
        let mut tensors = Vec::with_capacity(self.states.len());
        let mut at = 0;
        for (name, _, shape, elements) in &self.states {
            let values = &totals[at..at + elements];
            if name == "count" && values.iter().all(|v| *v == 0.0) {
                return Err(Error::Input(
                    "the validation data has no rows: no worker received one".into(),
                ));
            }
            tensors.push(Tensor::copy_from(DataType::Float32, shape, values)?);
            at += elements;
        }
        let feeds: Vec<(Port, &Tensor)> = self.states.iter().map(|s| s.1).zip(&tensors).collect();
        let ports: Vec<Port> = self.results.iter().map(|r| r.1).collect();
        let values = model.run(&feeds, &ports, "signature 'metrics'")?;
        self.results
            .iter()
            .zip(&values)
            .map(|((name, _), t)| {
                let v = match DataType::from_tf(t.tf_type()) {
                    Some(DataType::Float32) => t
                        .as_slice::<f32>(DataType::Float32)?
                        .first()
                        .map(|v| *v as f64),
                    Some(DataType::Float64) => {
                        t.as_slice::<f64>(DataType::Float64)?.first().copied()
                    }
                    _ => None,
                };
                let v = v.ok_or_else(|| {
                    Error::Model(format!("'metrics' output '{name}' is not a float scalar"))
                })?;
                Ok((format!("val_{name}"), v))
            })
            .collect()
    }
}

/// Keras's `EarlyStopping` rule: an epoch improves on the best when its metric beats it by more than
/// `min_delta`; training stops once `patience` epochs in a row have not.
#[derive(Debug, Clone)]
pub(crate) struct EarlyStopping {
    metric: String,
    patience: i32,
    min_delta: f64,
    maximize: bool,
    best: Option<(i32, f64)>,
    waited: i32,
}

/// What one epoch's metric says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The epoch is the new best: keep its weights.
    pub(crate) improved: bool,
    /// Patience ran out: no more epochs.
    pub(crate) stop: bool,
}

impl EarlyStopping {
    pub(crate) fn new(
        metric: &str,
        patience: i32,
        min_delta: f64,
        maximize: bool,
    ) -> EarlyStopping {
        EarlyStopping {
            metric: metric.to_string(),
            patience: patience.max(0),
            min_delta: min_delta.abs(),
            maximize,
            best: None,
            waited: 0,
        }
    }

    /// The metric watched.
    pub(crate) fn metric(&self) -> &str {
        &self.metric
    }

    /// The best epoch so far, and its value.
    pub(crate) fn best(&self) -> Option<(i32, f64)> {
        self.best
    }

    /// Judges `epoch` by its metrics; fails when they lack the metric watched (naming those there are).
    pub(crate) fn observe(&mut self, epoch: i32, metrics: &[(String, f64)]) -> Result<Verdict> {
        let value = metrics
            .iter()
            .find(|(name, _)| *name == self.metric)
            .map(|m| m.1)
            .ok_or_else(|| {
                let known: Vec<&str> = metrics.iter().map(|m| m.0.as_str()).collect();
                Error::Input(format!(
                    "early stopping watches '{}', which the epoch metrics do not have (they are: {})",
                    self.metric,
                    known.join(", ")
                ))
            })?;
        let better = match self.best {
            None => !value.is_nan(),
            Some((_, best)) if self.maximize => value - self.min_delta > best,
            Some((_, best)) => value + self.min_delta < best,
        };
        if better {
            self.best = Some((epoch, value));
            self.waited = 0;
        } else {
            self.waited += 1;
        }
        Ok(Verdict {
            improved: better,
            stop: self.waited > self.patience,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(stopping: &mut EarlyStopping, values: &[f64]) -> Vec<Verdict> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                stopping
                    .observe(i as i32 + 1, &[("val_loss".to_string(), *v)])
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn stops_after_patience_epochs_without_an_improvement_beyond_min_delta() {
        let mut s = EarlyStopping::new("val_loss", 1, 0.01, false);
        let v = judge(&mut s, &[1.0, 0.5, 0.495, 0.6]);
        let improved: Vec<bool> = v.iter().map(|v| v.improved).collect();
        let stop: Vec<bool> = v.iter().map(|v| v.stop).collect();
        // 0.495 beats 0.5 by less than min_delta: not an improvement.
        assert_eq!(improved, [true, true, false, false]);
        assert_eq!(stop, [false, false, false, true]);
        assert_eq!(s.best(), Some((2, 0.5)));
    }

    #[test]
    fn maximizes_when_asked_and_patience_zero_stops_at_the_first_miss() {
        let mut s = EarlyStopping::new("val_loss", 0, 0.0, true);
        let v = judge(&mut s, &[0.5, 0.7, 0.7]);
        assert_eq!(
            v[1],
            Verdict {
                improved: true,
                stop: false
            }
        );
        assert_eq!(
            v[2],
            Verdict {
                improved: false,
                stop: true
            }
        );
        assert_eq!(s.best(), Some((2, 0.7)));
    }

    #[test]
    fn a_missing_metric_names_the_ones_there_are() {
        let mut s = EarlyStopping::new("val_auc", 2, 0.0, true);
        let e = s
            .observe(1, &[("loss".into(), 1.0), ("val_loss".into(), 2.0)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'val_auc'") && e.contains("loss, val_loss"),
            "{e}"
        );
    }
}
