//! `lt:plugin/optimization`: manual optimization, driving the run's optimizer set.

use tch::Tensor;
use wasmtime::component::Resource;

use crate::engine::optim::OptimizerSet;
use crate::error::OpError;
use crate::plugin::bindings::optimization;
use crate::plugin::views::OptimizationView;

type R<T> = wasmtime::Result<T>;

impl OptimizationView<'_> {
    /// The optimizer set for a call of Lightning's closure (re-run by a plugin-run optimizer's
    /// step in automatic optimization, such as LBFGS): `zero_grad` of that optimizer, backward.
    fn closure_optim(&mut self, op: &str, index: Option<usize>) -> Result<&mut OptimizerSet, OpError> {
        let in_closure = self.closure_of.is_some_and(|r| index.is_none_or(|i| i == r));
        self.optim_set(op, in_closure)
    }

    fn optim(&mut self, op: &str) -> Result<&mut OptimizerSet, OpError> {
        self.optim_set(op, false)
    }

    fn optim_set(&mut self, op: &str, in_closure: bool) -> Result<&mut OptimizerSet, OpError> {
        match self.optim.as_deref_mut() {
            Some(o) if !o.automatic || in_closure => Ok(o),
            Some(_) => Err(OpError::new(
                op,
                "manual optimization calls need `automatic-optimization = false` in configure-optimizers",
            )),
            None => Err(OpError::new(op, "no optimizers yet: configure-optimizers has not run")),
        }
    }
}

impl optimization::Host for OptimizationView<'_> {
    fn manual_backward(&mut self, loss: Resource<Tensor>) -> R<()> {
        let op = "manual_backward";
        let l = self.handles.tensor(&loss, op)?.shallow_clone();
        self.closure_optim(op, None)?.backward(&l, 1.0)?;
        Ok(())
    }

    fn step(&mut self, index: u32) -> R<()> {
        Ok(self.optim("optimizer.step")?.step(index as usize)?)
    }

    fn zero_grad(&mut self, index: u32) -> R<()> {
        Ok(self.closure_optim("optimizer.zero_grad", Some(index as usize))?.zero_grad(index as usize)?)
    }

    fn toggle(&mut self, index: u32) -> R<()> {
        Ok(self.optim("toggle_optimizer")?.toggle(index as usize)?)
    }

    fn untoggle(&mut self, index: u32) -> R<()> {
        Ok(self.optim("untoggle_optimizer")?.untoggle(index as usize)?)
    }

    fn scheduler_step(&mut self, index: u32, metric: Option<f64>) -> R<()> {
        Ok(self.optim("lr_scheduler.step")?.step_scheduler(index as usize, metric)?)
    }

    fn lr(&mut self, index: u32, group: u32) -> R<f64> {
        let op = "optimizer.lr";
        let o = self.optim.as_deref().ok_or_else(|| OpError::new(op, "no optimizers yet"))?;
        Ok(o.lr(index as usize, group as usize)?)
    }

    fn set_lr(&mut self, index: u32, group: u32, lr: f64) -> R<()> {
        let op = "optimizer.set_lr";
        let o = self.optim.as_deref_mut().ok_or_else(|| OpError::new(op, "no optimizers yet"))?;
        Ok(o.set_lr(index as usize, group as usize, lr)?)
    }

    fn momentum(&mut self, index: u32, group: u32) -> R<Option<f64>> {
        let op = "optimizer.momentum";
        let o = self.optim.as_deref().ok_or_else(|| OpError::new(op, "no optimizers yet"))?;
        Ok(o.momentum(index as usize, group as usize)?)
    }

    fn grads(&mut self, index: u32) -> R<Vec<Option<Resource<Tensor>>>> {
        let op = "optimizer.grads";
        let o = self.optim.as_deref().ok_or_else(|| OpError::new(op, "no optimizers yet"))?;
        let grads = o.checked_grads_of(index as usize)?;
        let mut out = Vec::with_capacity(grads.len());
        for g in grads {
            out.push(if g.defined() { Some(self.handles.push(g, "grad")?) } else { None });
        }
        Ok(out)
    }

    fn loss_scale(&mut self) -> R<Option<f64>> {
        let Some(o) = self.optim.as_deref() else { return Ok(None) };
        Ok(match &o.scaler {
            Some(s) => Some(s.get_scale()?),
            None => None,
        })
    }

    fn unscale(&mut self, index: u32) -> R<bool> {
        Ok(self.optim("scaler.unscale_")?.scaler_allows_step(index as usize)?)
    }

    fn set_momentum(&mut self, index: u32, group: u32, momentum: f64) -> R<()> {
        let op = "optimizer.set_momentum";
        let o = self.optim.as_deref_mut().ok_or_else(|| OpError::new(op, "no optimizers yet"))?;
        Ok(o.set_momentum(index as usize, group as usize, momentum)?)
    }
}
