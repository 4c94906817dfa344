//! `lt:plugin/trainer`: the trainer's read-only state.

use crate::context::Stage;
use crate::plugin::bindings::trainer;
use crate::plugin::bindings::types::Stage as WitStage;
use crate::plugin::views::TrainerView;

type R<T> = wasmtime::Result<T>;

pub fn stage_out(s: Stage) -> WitStage {
    match s {
        Stage::Fit => WitStage::Fit,
        Stage::Validate => WitStage::Validate,
        Stage::Test => WitStage::Test,
        Stage::Predict => WitStage::Predict,
        Stage::SanityCheck => WitStage::SanityCheck,
    }
}

impl trainer::Host for TrainerView<'_> {
    fn current_epoch(&mut self) -> R<u64> {
        Ok(self.run.current_epoch)
    }
    fn global_step(&mut self) -> R<u64> {
        Ok(self.run.global_step)
    }
    fn current_stage(&mut self) -> R<WitStage> {
        Ok(stage_out(self.run.stage))
    }
    fn training(&mut self) -> R<bool> {
        Ok(self.run.training)
    }
    fn device(&mut self) -> R<String> {
        Ok(self.run.device_name())
    }
    fn fail(&mut self, message: String) -> R<()> {
        Err(crate::error::GuestFailure(crate::plugin::adapter::capped(message)).into())
    }

    fn max_epochs(&mut self) -> R<Option<u64>> {
        Ok(self.run.max_epochs)
    }

    fn precision(&mut self) -> R<String> {
        Ok(self.run.precision.name().into())
    }

    fn ranks(&mut self) -> R<trainer::ProcessRanks> {
        let w = self.run.world.unwrap_or_default();
        let per_node = w.local_world_size.max(1);
        Ok(trainer::ProcessRanks {
            world_size: w.world_size.max(1) as u32,
            global_rank: w.global_rank as u32,
            local_rank: w.local_rank as u32,
            node_rank: w.node_rank as u32,
            num_devices: per_node as u32,
            num_nodes: (w.world_size.max(1) / per_node).max(1) as u32,
        })
    }

    fn fit_numbers(&mut self) -> R<trainer::LoopNumbers> {
        let n = self.run.fit_numbers.clone();
        Ok(trainer::LoopNumbers {
            max_steps: n.max_steps,
            num_training_batches: n.num_training_batches,
            num_val_batches: n.num_val_batches,
            accumulate_grad_batches: n.accumulate_grad_batches,
            log_every_n_steps: n.log_every_n_steps,
            check_val_every_n_epoch: n.check_val_every_n_epoch,
        })
    }

    fn dataloader_idx(&mut self) -> R<Option<u32>> {
        Ok(self.run.dataloader_idx)
    }

    fn is_last_batch(&mut self) -> R<bool> {
        Ok(self.run.is_last_batch)
    }

    fn metrics(&mut self) -> R<trainer::TrainerMetrics> {
        let list = |m: &std::collections::BTreeMap<String, f64>| m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Ok(trainer::TrainerMetrics {
            callback: list(&self.run.callback_metrics),
            logged: list(&self.run.logged_metrics),
            progress_bar: list(&self.run.progress_bar_metrics),
        })
    }

    fn should_stop(&mut self) -> R<bool> {
        Ok(self.run.stop_set.unwrap_or(self.run.should_stop))
    }

    fn set_should_stop(&mut self, stop: bool) -> R<()> {
        self.run.stop_set = Some(stop);
        Ok(())
    }

    fn current_batch(&mut self) -> R<Vec<wasmtime::component::Resource<tch::Tensor>>> {
        let batch: Vec<tch::Tensor> = self.run.batch.iter().map(tch::Tensor::shallow_clone).collect();
        let mut out = Vec::with_capacity(batch.len());
        for t in batch {
            out.push(self.handles.push(t, "current_batch")?);
        }
        Ok(out)
    }
}
