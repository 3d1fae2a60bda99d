//! The gradient exchange of a job with several workers: how each step's gradients are fused, summed over
//! the [`Ring`], averaged and applied.
//!
//! Each worker writes its share of a step into one fused buffer, `[gradients * rows, loss * rows, rows]`
//! (the gradients in the order of the `apply_gradients` inputs), or zeros when it has no batch left, and
//! the ring sums the buffers of all workers in place. The summed rows then say, on every worker at once,
//! whether the epoch is over (0) and how to average (divide by them): the gradient applied is the
//! row-weighted mean, exactly one step over the union of the workers' batches. A job of one worker has no
//! exchange: it runs `train` ([`Mode::Single`]).

use spindle_proto::spindle::{DType, SignatureInfo};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::ring::{Ring, RingCloser};
use crate::tf::{DataType, Port, Tensor};

/// The gradient exchange of a job with several workers.
pub(crate) struct Exchange {
    ring: Ring,
    /// `gradients` outputs: the loss, then one gradient per `apply` input.
    fetch: Vec<Port>,
    /// `apply_gradients` inputs: port, shape, elements.
    apply: Vec<(Port, Vec<i64>, usize)>,
    step: Port,
    fused: Vec<f32>,
}

/// How a worker runs a step.
pub(crate) enum Mode {
    /// One worker: `train` does the whole step; `loss` is its loss output.
    Single { loss: Port },
    /// Several workers: `gradients`, the all-reduce, then `apply_gradients`.
    Multi(Box<Exchange>),
}

/// What the all-reduce of one step summed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summed {
    /// Rows of the step over every worker.
    pub(crate) rows: f32,
    /// The row-weighted mean loss over every worker.
    pub(crate) loss: f64,
}

fn signature_output(sig: &SignatureInfo, model: &Model, name: &str) -> Result<Port> {
    let spec = sig.outputs.iter().find(|o| o.name == name).ok_or_else(|| {
        Error::Model(format!(
            "signature '{}' of {} has no output '{name}'",
            sig.name,
            model.path()
        ))
    })?;
    model.port(&spec.tensor)
}

impl Mode {
    /// One worker, stepping with signature `sig_name` (`train`), which must have a `loss` output.
    pub(crate) fn single(model: &Model, sig_name: &str) -> Result<Mode> {
        Ok(Mode::Single {
            loss: signature_output(model.signature(sig_name)?, model, "loss")?,
        })
    }

    /// Several workers joined by `ring`. Checks that `gradients` outputs a loss and one float32 gradient,
    /// of a fully known shape, for each `apply_gradients` input.
    pub(crate) fn multi(model: &Model, ring: Ring) -> Result<Mode> {
        let grads = model.signature("gradients")?;
        let apply = model.signature("apply_gradients")?;
        let mut fetch = vec![signature_output(grads, model, "loss")?];
        let mut inputs = Vec::with_capacity(apply.inputs.len());
        let mut total = 0usize;
        for spec in &apply.inputs {
            let name = &spec.name;
            if spec.dtype != DType::Float32 as i32 {
                return Err(Error::Model(format!(
                    "apply_gradients input '{name}' is {}; multi-worker training all-reduces float32 gradients",
                    spec.tf_dtype
                )));
            }
            if spec.unknown_rank || spec.shape.iter().any(|d| *d < 0) {
                return Err(Error::Model(format!(
                    "apply_gradients input '{name}' has a shape that is not fully known ({:?})",
                    spec.shape
                )));
            }
            fetch.push(signature_output(grads, model, name)?);
            let elements = spec.shape.iter().product::<i64>() as usize;
            total += elements;
            inputs.push((model.port(&spec.tensor)?, spec.shape.clone(), elements));
        }
        Ok(Mode::Multi(Box::new(Exchange {
            ring,
            fetch,
            apply: inputs,
            step: signature_output(apply, model, "step")?,
            fused: vec![0.0; total + 2],
        })))
    }

    /// Sums `data` over every worker, in place (a single worker's is the sum already).
    pub(crate) fn all_reduce_sums(&mut self, data: &mut [f32]) -> Result<()> {
        match self {
            Mode::Multi(x) => x.ring.all_reduce(data),
            Mode::Single { .. } => Ok(()),
        }
    }

    /// A handle that shuts the ring from another thread; `None` for a single worker.
    pub(crate) fn closer(&self) -> Result<Option<RingCloser>> {
        match self {
            Mode::Multi(x) => Ok(Some(x.ring.closer()?)),
            Mode::Single { .. } => Ok(None),
        }
    }
}

impl Exchange {
    /// What a step runs `gradients` for: the loss, then one gradient per `apply_gradients` input.
    pub(crate) fn fetch(&self) -> &[Port] {
        &self.fetch
    }

    /// Writes this worker's share of the all-reduce: gradients and loss weighted by its rows, then the rows.
    pub(crate) fn fuse(&mut self, grads: &[Tensor], loss: f64, rows: usize) -> Result<()> {
        let weight = rows as f32;
        let mut at = 0;
        for (t, (_, shape, elements)) in grads.iter().zip(&self.apply) {
            let values = t.as_slice::<f32>(DataType::Float32)?;
            if values.len() != *elements {
                return Err(Error::Model(format!(
                    "a gradient has {} values, but apply_gradients expects shape {shape:?}",
                    values.len()
                )));
            }
            for (d, v) in self.fused[at..at + elements].iter_mut().zip(values) {
                *d = v * weight;
            }
            at += elements;
        }
        let n = self.fused.len();
        self.fused[n - 2] = loss as f32 * weight;
        self.fused[n - 1] = weight;
        Ok(())
    }

    /// The share of a worker out of batches: zero gradients, zero loss, zero rows.
    pub(crate) fn fuse_nothing(&mut self) {
        self.fused.fill(0.0);
    }

    /// Sums every worker's share over the ring; `None` when no worker had a row: the epoch is over.
    pub(crate) fn all_reduce(&mut self) -> Result<Option<Summed>> {
        self.ring.all_reduce(&mut self.fused)?;
        let n = self.fused.len();
        let rows = self.fused[n - 1];
        if rows == 0.0 {
            return Ok(None);
        }
        Ok(Some(Summed {
            rows,
            loss: (self.fused[n - 2] / rows) as f64,
        }))
    }

    /// Applies the summed gradients divided by the summed `rows`: the row-weighted mean.
    pub(crate) fn apply(&mut self, model: &Model, rows: f32) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.apply.len());
        let mut at = 0;
        for (_, shape, elements) in &self.apply {
            let slice = &mut self.fused[at..at + elements];
            for v in slice.iter_mut() {
                *v /= rows;
            }
            tensors.push(Tensor::copy_from(DataType::Float32, shape, slice)?);
            at += elements;
        }
        let feeds: Vec<(Port, &Tensor)> = self.apply.iter().map(|a| a.0).zip(&tensors).collect();
        model.run(&feeds, &[self.step], "signature 'apply_gradients'")?;
        Ok(())
    }
}
