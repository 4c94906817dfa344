//! Each `lt:plugin` interface is implemented on its own narrow view of a plugin's store, as
//! wasmtime-wasi implements WASI on `WasiCtxView`: the view holds only what that interface may
//! read or change, so the compiler, not a review, keeps `tensor` away from the optimizers and
//! `trainer` read-only. [`add_to_linker`] registers each interface with its view.
//!
//! | interface      | may change                                   | may read                      |
//! |----------------|----------------------------------------------|-------------------------------|
//! | `tensor`       | handles, its generator                       | creation device, train mode, the data grant |
//! | `aten`         | handles, its generator, inference scopes, operator index, last error | |
//! | `log`          | the hook's logs, the run's metric names       | handles, the running hook     |
//! | `optimization` | handles, the optimizer set                   | the closure's optimizer       |
//! | `parameters`   | handles, the parameter store                 | the run's device              |
//! | `trainer`      | handles (`current-batch`)                    | the run's context             |

use std::path::Path;

use tch::Device;
use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::context::{LogTarget, RunContext};
use crate::engine::optim::OptimizerSet;
use crate::engine::params::ParamStore;
use crate::engine::torch_ext::Generator;
use crate::plugin::bindings::{aten, log, optimization, parameters, tensor, trainer, types};
use crate::plugin::handles::Handles;
use crate::plugin::op_index::OpIndex;
use crate::plugin::state::{InferenceScopes, PluginState};

/// `lt:plugin/tensor`: creating, reading and computing tensors.
pub struct TensorView<'a> {
    pub handles: Handles<'a>,
    /// A DataLoader worker's own generator; None: the run's.
    pub generator: Option<&'a mut Generator>,
    /// Where new tensors go (the run's device in model hooks, the CPU in data hooks).
    pub device: Device,
    /// Train mode (dropout).
    pub training: bool,
    /// The granted read-only data directory, and whether the run had one the manifest did not
    /// ask for.
    pub data_dir: Option<&'a Path>,
    pub data_declined: bool,
}

/// `lt:plugin/aten`: any allowed operator, grad and inference modes, the generator's state.
pub struct AtenView<'a> {
    pub handles: Handles<'a>,
    pub generator: Option<&'a mut Generator>,
    pub inference_scopes: &'a mut InferenceScopes,
    pub ops: &'a mut OpIndex,
    pub last_op_error: &'a mut Option<String>,
}

/// `lt:plugin/log`: `self.log`.
pub struct LogView<'a> {
    pub table: &'a ResourceTable,
    pub target: LogTarget<'a>,
}

/// `lt:plugin/optimization`: manual optimization on the run's optimizer set.
pub struct OptimizationView<'a> {
    pub handles: Handles<'a>,
    pub optim: Option<&'a mut OptimizerSet>,
    /// The plugin-run optimizer whose closure is running, in automatic optimization.
    pub closure_of: Option<usize>,
}

/// `lt:plugin/parameters`: the parameters and buffers the plugin registers.
pub struct ParametersView<'a> {
    pub handles: Handles<'a>,
    pub params: &'a mut ParamStore,
    pub device: Device,
}

/// `lt:plugin/trainer`: the trainer's state, read-only but for `should_stop`.
pub struct TrainerView<'a> {
    pub handles: Handles<'a>,
    pub run: &'a mut RunContext,
}

/// The handles of a store, borrowed apart from its other fields.
macro_rules! handles {
    ($s:ident) => {
        Handles { table: &mut $s.table, budget: &mut $s.budget, deadline: $s.deadline }
    };
}

impl PluginState {
    pub fn tensor_view(&mut self) -> TensorView<'_> {
        TensorView {
            handles: handles!(self),
            generator: self.generator.as_mut(),
            device: self.ctx.creation_device,
            training: self.ctx.training,
            data_dir: self.ctx.data_dir.as_deref(),
            data_declined: self.data_declined,
        }
    }

    pub fn aten_view(&mut self) -> AtenView<'_> {
        AtenView {
            handles: handles!(self),
            generator: self.generator.as_mut(),
            inference_scopes: &mut self.inference_scopes,
            ops: &mut self.ops,
            last_op_error: &mut self.last_op_error,
        }
    }

    pub fn log_view(&mut self) -> LogView<'_> {
        LogView { table: &self.table, target: self.ctx.log_target() }
    }

    pub fn optimization_view(&mut self) -> OptimizationView<'_> {
        OptimizationView { handles: handles!(self), optim: self.ctx.optim.as_mut(), closure_of: self.ctx.closure_of }
    }

    pub fn parameters_view(&mut self) -> ParametersView<'_> {
        ParametersView { handles: handles!(self), params: &mut self.ctx.params, device: self.ctx.device }
    }

    pub fn trainer_view(&mut self) -> TrainerView<'_> {
        TrainerView { handles: handles!(self), run: &mut self.ctx }
    }
}

macro_rules! view_data {
    ($($marker:ident => $view:ident),* $(,)?) => {$(
        #[doc = concat!("Registers an interface on [`", stringify!($view), "`].")]
        struct $marker;
        impl HasData for $marker {
            type Data<'a> = $view<'a>;
        }
    )*};
}

view_data! {
    TensorData => TensorView,
    AtenData => AtenView,
    LogData => LogView,
    OptimizationData => OptimizationView,
    ParametersData => ParametersView,
    TrainerData => TrainerView,
}

/// `lt:plugin/types` has types only: nothing to see.
pub struct TypesView;

struct TypesData;
impl HasData for TypesData {
    type Data<'a> = TypesView;
}

impl types::Host for TypesView {}

/// Registers every `lt:plugin` import, each on its own view.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, TypesData>(linker, |_| TypesView)?;
    tensor::add_to_linker::<_, TensorData>(linker, PluginState::tensor_view)?;
    aten::add_to_linker::<_, AtenData>(linker, PluginState::aten_view)?;
    log::add_to_linker::<_, LogData>(linker, PluginState::log_view)?;
    optimization::add_to_linker::<_, OptimizationData>(linker, PluginState::optimization_view)?;
    parameters::add_to_linker::<_, ParametersData>(linker, PluginState::parameters_view)?;
    trainer::add_to_linker::<_, TrainerData>(linker, PluginState::trainer_view)?;
    Ok(())
}
