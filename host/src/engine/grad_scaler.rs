//! torch.amp.GradScaler for `16-mixed` (Lightning's `MixedPrecision` scaler): the loss scaled
//! before backward, each optimizer's gradients unscaled once per step with torch's
//! `_amp_foreach_non_finite_check_and_unscale_`, the step skipped when they hold an inf or a
//! NaN, and the scale backed off or grown by torch's `_amp_update_scale_`. Its state is
//! torch's `state_dict()`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use crate::error::{OpError, OpResult};

/// torch.amp.GradScaler's arguments (its defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GradScalerConfig {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: i64,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

impl GradScalerConfig {
    /// torch's checks, in its words; lthost's own for what torch leaves unchecked (a scale
    /// that is not a positive number, an interval below 1, which `_amp_update_scale_` cannot
    /// take).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.growth_factor > 1.0) {
            return Err("The growth factor must be > 1.0.".into());
        }
        if !(self.backoff_factor < 1.0) {
            return Err("The backoff factor must be < 1.0.".into());
        }
        if self.growth_interval <= 0 {
            return Err(format!("growth_interval must be at least 1, got {}", self.growth_interval));
        }
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return Err(format!("init_scale must be a positive number, got {}", self.init_scale));
        }
        Ok(())
    }
}

pub struct GradScaler {
    cfg: GradScalerConfig,
    /// `_scale` (float32, 0-dim) and `_growth_tracker` (int32), made at the first `scale` on
    /// the loss's device, as torch's `_lazy_init_scale_growth_tracker`.
    scale: Option<Tensor>,
    growth_tracker: Option<Tensor>,
    /// The growth tracker a loaded state holds until the tensors exist.
    init_growth_tracker: i64,
    /// Per optimizer unscaled since the last update: its `found_inf` (None: no gradient).
    unscaled: BTreeMap<usize, Option<Tensor>>,
}

fn op(name: &str, r: Result<Tensor, tch::TchError>) -> OpResult<Tensor> {
    r.map_err(|e| OpError::torch(format!("GradScaler.{name}"), e))
}

impl GradScaler {
    pub fn new(cfg: GradScalerConfig) -> Self {
        GradScaler { cfg, scale: None, growth_tracker: None, init_growth_tracker: 0, unscaled: BTreeMap::new() }
    }

    /// `scaler.scale(outputs)`: `outputs * scale`.
    pub fn scale(&mut self, outputs: &Tensor) -> OpResult<Tensor> {
        let device = outputs.device();
        let scale = match &self.scale {
            Some(s) => s.shallow_clone(),
            None => {
                let s = op("scale", Tensor::f_full([], self.cfg.init_scale, (Kind::Float, device)))?;
                self.growth_tracker =
                    Some(op("scale", Tensor::f_full([], self.init_growth_tracker, (Kind::Int, device)))?);
                self.scale = Some(s.shallow_clone());
                s
            }
        };
        op("scale", outputs.f_mul(&op("scale", scale.f_to_device(device))?))
    }

    /// `scaler.unscale_(optimizer)` on optimizer `index`'s gradients (in place).
    pub fn unscale(&mut self, index: usize, grads: &mut [Tensor]) -> OpResult<()> {
        if self.unscaled.contains_key(&index) {
            return Err(OpError::new(
                "GradScaler.unscale_",
                "unscale_() has already been called on this optimizer since the last update().",
            ));
        }
        let Some(scale) = &self.scale else {
            return Err(OpError::new(
                "GradScaler.unscale_",
                "Attempted unscale_ but _scale is None.  This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration.",
            ));
        };
        let inv_scale = op("unscale_", op("unscale_", scale.f_to_kind(Kind::Double))?.f_reciprocal())?;
        let inv_scale = op("unscale_", inv_scale.f_to_kind(Kind::Float))?;
        let mut found_inf = op("unscale_", Tensor::f_full([], 0.0, (Kind::Float, scale.device())))?;
        let mut any = false;
        for g in grads.iter_mut().filter(|g| g.defined()) {
            if g.kind() == Kind::Half {
                return Err(OpError::new("GradScaler.unscale_", "Attempting to unscale FP16 gradients."));
            }
            any = true;
            g.f_internal_amp_non_finite_check_and_unscale(&mut found_inf, &inv_scale)
                .map_err(|e| OpError::torch("GradScaler.unscale_", e))?;
        }
        self.unscaled.insert(index, any.then_some(found_inf));
        Ok(())
    }

    pub fn unscaled(&self, index: usize) -> bool {
        self.unscaled.contains_key(&index)
    }

    /// Whether `scaler.step(optimizer)` runs optimizer `index`'s step: not when its unscaled
    /// gradients held an inf or a NaN. None: no gradient was unscaled (torch: "No inf checks
    /// were recorded for this optimizer.").
    pub fn allows_step(&self, index: usize) -> OpResult<Option<bool>> {
        match self.unscaled.get(&index) {
            Some(Some(found_inf)) => {
                let v = found_inf.f_double_value(&[]).map_err(|e| OpError::torch("GradScaler.step", e))?;
                Ok(Some(v == 0.0))
            }
            _ => Ok(None),
        }
    }

    /// `scaler.update()`: the scale backed off after an inf/NaN, grown after
    /// `growth_interval` clean steps (torch's `_amp_update_scale_`).
    pub fn update(&mut self) -> OpResult<()> {
        let found: Vec<Tensor> = std::mem::take(&mut self.unscaled).into_values().flatten().collect();
        let (Some(scale), Some(tracker)) = (self.scale.as_mut(), self.growth_tracker.as_ref()) else {
            return Ok(());
        };
        let Some(first) = found.first() else { return Ok(()) };
        let mut combined = first.shallow_clone();
        for f in &found[1..] {
            combined = op("update", combined.f_add(f))?;
        }
        let _ = op(
            "update",
            scale.f_internal_amp_update_scale_(
                tracker,
                &combined,
                self.cfg.growth_factor,
                self.cfg.backoff_factor,
                self.cfg.growth_interval,
            ),
        )?;
        Ok(())
    }

    /// `scaler.get_scale()`.
    pub fn get_scale(&self) -> OpResult<f64> {
        match &self.scale {
            Some(s) => s.f_double_value(&[]).map_err(|e| OpError::torch("GradScaler.get_scale", e)),
            None => Ok(self.cfg.init_scale),
        }
    }

    /// `scaler.state_dict()`: torch's keys.
    pub fn state_dict(&self) -> OpResult<Value> {
        let tracker = match &self.growth_tracker {
            Some(t) => t.f_int64_value(&[]).map_err(|e| OpError::torch("GradScaler.state_dict", e))?,
            None => self.init_growth_tracker,
        };
        Ok(json!({
            "scale": self.get_scale()?,
            "growth_factor": self.cfg.growth_factor,
            "backoff_factor": self.cfg.backoff_factor,
            "growth_interval": self.cfg.growth_interval,
            "_growth_tracker": tracker,
        }))
    }

    /// `scaler.load_state_dict(state)`.
    pub fn load_state_dict(&mut self, state: &Value) -> OpResult<()> {
        let bad = || OpError::new("GradScaler.load_state_dict", format!("not a GradScaler state: {state}"));
        let scale = state["scale"].as_f64().ok_or_else(bad)?;
        // As torch's load_state_dict: taken as saved (a scale backed off to 0 included).
        let cfg = GradScalerConfig {
            init_scale: scale,
            growth_factor: state["growth_factor"].as_f64().ok_or_else(bad)?,
            backoff_factor: state["backoff_factor"].as_f64().ok_or_else(bad)?,
            growth_interval: state["growth_interval"].as_i64().ok_or_else(bad)?,
        };
        let tracker = state["_growth_tracker"].as_i64().ok_or_else(bad)?;
        self.cfg = cfg;
        self.init_growth_tracker = tracker;
        if let Some(s) = self.scale.as_mut() {
            let _ = op("load_state_dict", s.f_fill_(scale))?;
        }
        if let Some(t) = self.growth_tracker.as_mut() {
            let _ = op("load_state_dict", t.f_fill_(tracker))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_skips_the_step_and_backs_off_then_clean_steps_grow_the_scale() {
        let cfg = GradScalerConfig { init_scale: 4.0, growth_interval: 2, ..Default::default() };
        let mut s = GradScaler::new(cfg);
        let loss = Tensor::from(3.0f32);
        assert_eq!(s.scale(&loss).expect("scaled").double_value(&[]), 12.0);
        let mut grads = vec![Tensor::from_slice(&[8.0f32, f32::INFINITY])];
        s.unscale(0, &mut grads).expect("unscaled");
        assert!(s.unscale(0, &mut grads).is_err(), "twice before update");
        assert_eq!(s.allows_step(0).expect("checked"), Some(false));
        s.update().expect("updated");
        assert_eq!(s.get_scale().expect("scale"), 2.0);
        for expected in [2.0, 4.0, 4.0, 8.0] {
            let mut grads = vec![Tensor::from_slice(&[8.0f32])];
            s.unscale(0, &mut grads).expect("unscaled");
            assert_eq!(grads[0].double_value(&[0]), 8.0 / s.get_scale().expect("scale"));
            assert_eq!(s.allows_step(0).expect("checked"), Some(true));
            s.update().expect("updated");
            assert_eq!(s.get_scale().expect("scale"), expected);
        }
        let state = s.state_dict().expect("state");
        assert_eq!(state["scale"], 8.0);
        assert_eq!(state["_growth_tracker"], 0);
        let mut resumed = GradScaler::new(GradScalerConfig::default());
        resumed.load_state_dict(&state).expect("loaded");
        assert_eq!(resumed.get_scale().expect("scale"), 8.0);
        assert_eq!(resumed.scale(&loss).expect("scaled").double_value(&[]), 24.0);
    }
}
