//! Lightning's `precision` Trainer argument and its precision plugins: `MixedPrecision`
//! (`bf16-mixed`, `16-mixed`: the steps under torch.autocast, weights float32),
//! `HalfPrecision` (`bf16-true`, `16-true`) and `DoublePrecision` (`64-true`): the module
//! converted to the dtype, inputs converted, tensors made in `configure_model` and in the steps
//! in that dtype by default. `32-true` changes nothing.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::engine::autocast::{Autocast, AutocastDevice, DefaultDtype};
use crate::engine::grad_scaler::GradScalerConfig;
use crate::engine::params::ParamStore;

/// The argument as given: Lightning takes `"bf16-mixed"`, `16`, `"16"`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PrecisionFlag {
    Int(i64),
    Name(String),
}

impl Default for PrecisionFlag {
    fn default() -> Self {
        PrecisionFlag::Name("32-true".into())
    }
}

impl std::fmt::Display for PrecisionFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrecisionFlag::Int(n) => write!(f, "{n}"),
            PrecisionFlag::Name(s) => f.write_str(s),
        }
    }
}

/// Lightning's `MixedPrecision(precision, device, scaler)` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixedPrecisionConfig {
    /// "16-mixed" or "bf16-mixed".
    pub precision: String,
    /// torch.autocast's device type, "cpu" or "cuda": the run's device's.
    pub device: String,
    /// `torch.amp.GradScaler`'s arguments (16-mixed; its defaults when absent).
    #[serde(default)]
    pub scaler: Option<GradScalerConfig>,
}

/// The precision a run trains in (Lightning's `trainer.precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    True32,
    True64,
    Bf16True,
    F16True,
    Bf16Mixed,
    F16Mixed,
}

/// Lightning's `_PRECISION_INPUT` values, in its order, as its message lists them.
const ALLOWED: &str = "('transformer-engine', 'transformer-engine-float16', '16-true', '16-mixed', 'bf16-true', 'bf16-mixed', '32-true', '64-true', 64, 32, 16, '64', '32', '16', 'bf16')";

impl Precision {
    /// Lightning's `_convert_precision_to_unified_args` and `_check_and_init_precision` for
    /// one device: the aliases (`16` → `16-mixed`, with Lightning's warning), `16-mixed` on
    /// the CPU → `bf16-mixed` (Lightning's warning), an unknown value refused in its words.
    /// Returns the precision and what Lightning says about it.
    pub fn resolve(
        flag: &PrecisionFlag,
        plugin: Option<&MixedPrecisionConfig>,
        device: Device,
    ) -> Result<(Precision, Vec<String>)> {
        if let Some(p) = plugin {
            return Self::from_plugin(flag, p, device);
        }
        let mut said = Vec::new();
        let name = match flag {
            PrecisionFlag::Int(n @ (16 | 32 | 64)) => format!("{n}"),
            PrecisionFlag::Int(n) => bail!("Precision {n} is invalid. Allowed precision values: {ALLOWED}"),
            PrecisionFlag::Name(s) => s.clone(),
        };
        // Lightning's `_PRECISION_INPUT_STR_ALIAS_CONVERSION`; it warns for all but 32 and 64.
        let alias = match name.as_str() {
            "64" => Some(("64-true", false)),
            "32" => Some(("32-true", false)),
            "16" => Some(("16-mixed", true)),
            "bf16" => Some(("bf16-mixed", true)),
            _ => None,
        };
        let unified = match alias {
            Some((to, warned)) => {
                if warned {
                    said.push(format!(
                        "warning: `precision={flag}` is supported for historical reasons but its usage is discouraged. Please set your precision to {to} instead!"
                    ));
                }
                to.to_string()
            }
            None => name.clone(),
        };
        let precision = match unified.as_str() {
            "32-true" => Precision::True32,
            "64-true" => Precision::True64,
            "bf16-true" => Precision::Bf16True,
            "16-true" => Precision::F16True,
            "bf16-mixed" => Precision::Bf16Mixed,
            "16-mixed" if device == Device::Cpu => {
                said.push("warning: You passed `Trainer(accelerator='cpu', precision='16-mixed')` but AMP with fp16 is not supported on CPU. Using `precision='bf16-mixed'` instead.".into());
                Precision::Bf16Mixed
            }
            "16-mixed" => Precision::F16Mixed,
            "transformer-engine" | "transformer-engine-float16" => {
                bail!("precision={unified:?} needs NVIDIA's Transformer Engine, which lthost does not provide")
            }
            // Python's repr of the string Lightning was given.
            _ => bail!("Precision '{name}' is invalid. Allowed precision values: {ALLOWED}"),
        };
        match precision {
            Precision::Bf16Mixed => said.push("Using bfloat16 Automatic Mixed Precision (AMP)".into()),
            Precision::F16Mixed => said.push("Using 16bit Automatic Mixed Precision (AMP)".into()),
            _ => {}
        }
        Ok((precision, said))
    }

    /// A `MixedPrecision` plugin given (Lightning's checks, in its words where it has them): no
    /// `precision` beside it, 16-mixed or bf16-mixed, no scaler with bf16-mixed; lthost's own:
    /// the autocast device is the run's.
    fn from_plugin(flag: &PrecisionFlag, p: &MixedPrecisionConfig, device: Device) -> Result<(Precision, Vec<String>)> {
        if *flag != PrecisionFlag::default() {
            bail!(
                "Received both `precision={flag}` and `plugins=MixedPrecision(precision={:?})` ([trainer.mixed_precision]). Choose one.",
                p.precision
            );
        }
        let precision = match p.precision.as_str() {
            "16-mixed" => Precision::F16Mixed,
            "bf16-mixed" => Precision::Bf16Mixed,
            other => {
                bail!("`Passed `MixedPrecision(precision='{other}')`. Precision must be '16-mixed' or 'bf16-mixed'.")
            }
        };
        if let Some(s) = &p.scaler {
            if precision == Precision::Bf16Mixed {
                bail!("`precision='bf16-mixed'` does not use a scaler, found GradScaler({s:?}).");
            }
            s.validate().map_err(|e| anyhow!("[trainer.mixed_precision.scaler]: {e}"))?;
        }
        let run = AutocastDevice::of(device);
        if AutocastDevice::parse(&p.device) != Some(run) {
            bail!(
                "[trainer.mixed_precision] device = {:?}: lthost runs autocast on the run's device ({:?} here)",
                p.device,
                run.name()
            );
        }
        Ok((precision, Vec::new()))
    }

    /// Lightning's name (`trainer.precision`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::True32 => "32-true",
            Precision::True64 => "64-true",
            Precision::Bf16True => "bf16-true",
            Precision::F16True => "16-true",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16Mixed => "16-mixed",
        }
    }

    /// The dtype of a true mode's parameters and inputs.
    pub fn true_dtype(self) -> Option<Kind> {
        match self {
            Precision::True64 => Some(Kind::Double),
            Precision::Bf16True => Some(Kind::BFloat16),
            Precision::F16True => Some(Kind::Half),
            _ => None,
        }
    }

    /// The dtype a mixed mode's autocast computes in.
    pub fn autocast_dtype(self) -> Option<Kind> {
        match self {
            Precision::Bf16Mixed => Some(Kind::BFloat16),
            Precision::F16Mixed => Some(Kind::Half),
            _ => None,
        }
    }

    /// Whether the run scales the loss (`16-mixed`: Lightning's `torch.amp.GradScaler`).
    pub fn scales_loss(self) -> bool {
        self == Precision::F16Mixed
    }

    /// Lightning's `forward_context` around training/validation/test/predict steps:
    /// `torch.autocast(device, dtype, cache_enabled=False)` in mixed modes, the true dtype as
    /// torch's default dtype in true modes; nothing in `32-true`. Left when dropped.
    pub fn forward_context(self, device: Device) -> ForwardContext {
        if let Some(dtype) = self.autocast_dtype() {
            return ForwardContext::Autocast(Autocast::enter(AutocastDevice::of(device), dtype, true, false));
        }
        match self.true_dtype() {
            Some(dtype) => ForwardContext::DefaultDtype(DefaultDtype::set(dtype)),
            None => ForwardContext::None,
        }
    }

    /// Lightning's `module_init_context` around `configure_model`: the true dtype as default.
    pub fn module_init_context(self) -> Option<DefaultDtype> {
        self.true_dtype().map(DefaultDtype::set)
    }

    /// Lightning's `convert_input`: a true mode converts the batch's floating tensors to its
    /// dtype (before `on_before_batch_transfer`); other modes pass it as it is.
    pub fn convert_input(self, batch: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let Some(dtype) = self.true_dtype() else { return Ok(batch) };
        batch
            .into_iter()
            .map(|t| {
                if t.is_floating_point() && t.kind() != dtype {
                    t.f_to_kind(dtype).map_err(|e| anyhow!("converting the batch to {}: {e}", self.name()))
                } else {
                    Ok(t)
                }
            })
            .collect()
    }

    /// Lightning's `convert_module` (`module.to(dtype)` / `module.double()`): every floating
    /// parameter and buffer in the true dtype, in place (`param.data = param.to(dtype)`), so the
    /// plugin's handles see the converted tensors. Mixed modes keep float32 weights.
    pub fn convert_module(self, params: &ParamStore) -> Result<()> {
        let Some(dtype) = self.true_dtype() else { return Ok(()) };
        tch::no_grad(|| {
            for e in params.entries() {
                if e.tensor.is_floating_point() && e.tensor.kind() != dtype {
                    let converted = e.tensor.f_to_kind(dtype).map_err(|err| anyhow!("{}: {err}", e.name))?;
                    e.tensor.shallow_clone().f_set_data(&converted).map_err(|err| anyhow!("{}: {err}", e.name))?;
                }
            }
            Ok(())
        })
    }
}

/// What [`Precision::forward_context`] entered.
pub enum ForwardContext {
    None,
    Autocast(Autocast),
    DefaultDtype(DefaultDtype),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flag: PrecisionFlag, device: Device) -> (Precision, Vec<String>) {
        Precision::resolve(&flag, None, device).expect("a known precision")
    }

    #[test]
    fn lightnings_values_aliases_and_cpu_fallback() {
        assert_eq!(resolve(PrecisionFlag::default(), Device::Cpu), (Precision::True32, vec![]));
        assert_eq!(resolve(PrecisionFlag::Int(64), Device::Cpu).0, Precision::True64);
        assert!(resolve(PrecisionFlag::Int(64), Device::Cpu).1.is_empty());
        let (p, said) = resolve(PrecisionFlag::Name("bf16".into()), Device::Cpu);
        assert_eq!(p, Precision::Bf16Mixed);
        assert_eq!(said[0], "warning: `precision=bf16` is supported for historical reasons but its usage is discouraged. Please set your precision to bf16-mixed instead!");
        let (p, said) = resolve(PrecisionFlag::Int(16), Device::Cpu);
        assert_eq!(p, Precision::Bf16Mixed);
        assert!(said[1].contains("AMP with fp16 is not supported on CPU"), "{said:?}");
        assert_eq!(resolve(PrecisionFlag::Int(16), Device::Cuda(0)).0, Precision::F16Mixed);
        assert_eq!(resolve(PrecisionFlag::Name("bf16-true".into()), Device::Cpu).0.true_dtype(), Some(Kind::BFloat16));
        let err = Precision::resolve(&PrecisionFlag::Name("17".into()), None, Device::Cpu).unwrap_err().to_string();
        assert_eq!(err, format!("Precision '17' is invalid. Allowed precision values: {ALLOWED}"));
        let err = Precision::resolve(&PrecisionFlag::Int(8), None, Device::Cpu).unwrap_err().to_string();
        assert!(err.starts_with("Precision 8 is invalid"), "{err}");
    }

    #[test]
    fn a_true_mode_converts_floating_parameters_in_place_and_floating_inputs() {
        let mut params = ParamStore::default();
        let w = params.add_parameter("w", Tensor::ones([2], (Kind::Float, Device::Cpu))).expect("w");
        let _ = params.add_buffer("n", Tensor::zeros([1], (Kind::Int64, Device::Cpu))).expect("n");
        Precision::True64.convert_module(&params).expect("converted");
        assert_eq!(w.kind(), Kind::Double, "the handle held before sees the conversion");
        assert!(w.requires_grad());
        assert_eq!(params.get("n").expect("n").kind(), Kind::Int64);
        let batch = vec![Tensor::ones([1], (Kind::Float, Device::Cpu)), Tensor::ones([1], (Kind::Int64, Device::Cpu))];
        let out = Precision::Bf16True.convert_input(batch).expect("converted");
        assert_eq!((out[0].kind(), out[1].kind()), (Kind::BFloat16, Kind::Int64));
        let out =
            Precision::Bf16Mixed.convert_input(vec![Tensor::ones([1], (Kind::Float, Device::Cpu))]).expect("kept");
        assert_eq!(out[0].kind(), Kind::Float);
    }
}
