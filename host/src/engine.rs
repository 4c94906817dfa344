//! The tensor engine on libtorch: dtypes, parameter store, torch.nn-exact layers and
//! initialisation, torch.optim-exact optimizers.

pub mod aten;
pub mod aten_denylist;
pub mod autocast;
pub mod clip;
pub mod dtype;
pub mod grad_scaler;
pub mod heap;
pub mod init;
pub mod layers;
pub mod memory_budget;
pub mod optim;
pub mod params;
pub mod scalar;
pub mod schedulers;
pub mod sync_batch_norm;
pub mod torch_ext;
