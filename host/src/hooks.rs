//! Lightning's hooks, in one table: each row gives the hook's name, who has it (module,
//! callback or both), where `self.log` may be called in it (Lightning's `_FxValidator`), and
//! whether a plugin module implements it through the WIT `hook` enum. The enum, the names,
//! the owners, the log rules, the module hooks and the WIT mapping
//! (`plugin::convert::hook_out`) all come from it.

/// Where a hook lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Module,
    Callback,
    Both,
}

/// What `self.log` may do in a hook: allowed on_step values, allowed on_epoch values, and
/// the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRule {
    pub on_step: &'static [bool],
    pub on_epoch: &'static [bool],
    pub default_on_step: bool,
    pub default_on_epoch: bool,
}

const ANY: &[bool] = &[false, true];
const TRAIN_STEP: Option<LogRule> =
    Some(LogRule { on_step: ANY, on_epoch: ANY, default_on_step: true, default_on_epoch: false });
const EVAL_STEP: Option<LogRule> =
    Some(LogRule { on_step: ANY, on_epoch: ANY, default_on_step: false, default_on_epoch: true });
const EPOCH_ONLY: Option<LogRule> =
    Some(LogRule { on_step: &[false], on_epoch: &[true], default_on_step: false, default_on_epoch: true });
const NO_LOG: Option<LogRule> = None;

/// The hooks, their Rust-side facts from the table.
macro_rules! define_hooks {
    ($($hook:ident $name:literal $owner:ident $log:ident $wit:ident;)*) => {
        /// Every hook the loops call, on callbacks, on the module, or both.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Hook {
            $($hook,)*
        }

        impl Hook {
            /// Every hook, in the table's order.
            pub const ALL: &'static [Hook] = &[$(Hook::$hook,)*];

            /// Lightning's name for the hook.
            pub fn name(self) -> &'static str {
                match self {
                    $(Hook::$hook => $name,)*
                }
            }

            /// Where the hook lives.
            pub fn owner(self) -> Owner {
                match self {
                    $(Hook::$hook => Owner::$owner,)*
                }
            }

            /// Lightning's `_FxValidator`: None where `self.log` is not allowed.
            pub fn log_rule(self) -> Option<LogRule> {
                match self {
                    $(Hook::$hook => $log,)*
                }
            }

            /// A plugin module implements it through the WIT `hook` enum.
            pub fn in_wit(self) -> bool {
                match self {
                    $(Hook::$hook => define_hooks!(@wit $wit),)*
                }
            }
        }

    };
    (@wit wit) => { true };
    (@wit host) => { false };
}

/// The table, handed to `$m!` (this file's `define_hooks`, `plugin::convert`'s WIT mapping).
/// Each row: the variant, Lightning's name, the owner, the log rule, and `wit` (a module
/// implements it through the WIT `hook` enum, whose variant has the same name) or `host` (the
/// host runs it another way: a step, configure_optimizers; or only callbacks have it).
macro_rules! hook_table {
    ($m:ident) => {
        $m! {            Setup "setup" Both NO_LOG wit;
            Teardown "teardown" Both NO_LOG wit;
            ConfigureModel "configure_model" Module NO_LOG wit;
            ConfigureOptimizers "configure_optimizers" Module NO_LOG host;
            OnFitStart "on_fit_start" Both NO_LOG wit;
            OnFitEnd "on_fit_end" Both NO_LOG wit;
            OnSanityCheckStart "on_sanity_check_start" Callback NO_LOG host;
            OnSanityCheckEnd "on_sanity_check_end" Callback NO_LOG host;
            OnTrainStart "on_train_start" Both EPOCH_ONLY wit;
            OnTrainEnd "on_train_end" Both NO_LOG wit;
            OnTrainEpochStart "on_train_epoch_start" Both EPOCH_ONLY wit;
            OnTrainEpochEnd "on_train_epoch_end" Both EPOCH_ONLY wit;
            OnTrainBatchStart "on_train_batch_start" Both TRAIN_STEP wit;
            OnTrainBatchEnd "on_train_batch_end" Both TRAIN_STEP wit;
            OnValidationStart "on_validation_start" Both EPOCH_ONLY wit;
            OnValidationEnd "on_validation_end" Both NO_LOG wit;
            OnValidationEpochStart "on_validation_epoch_start" Both EPOCH_ONLY wit;
            OnValidationEpochEnd "on_validation_epoch_end" Both EPOCH_ONLY wit;
            OnValidationBatchStart "on_validation_batch_start" Both EVAL_STEP wit;
            OnValidationBatchEnd "on_validation_batch_end" Both EVAL_STEP wit;
            OnValidationModelEval "on_validation_model_eval" Module NO_LOG wit;
            OnValidationModelTrain "on_validation_model_train" Module NO_LOG wit;
            OnValidationModelZeroGrad "on_validation_model_zero_grad" Module NO_LOG wit;
            OnTestStart "on_test_start" Both EPOCH_ONLY wit;
            OnTestEnd "on_test_end" Both NO_LOG wit;
            OnTestEpochStart "on_test_epoch_start" Both EPOCH_ONLY wit;
            OnTestEpochEnd "on_test_epoch_end" Both EPOCH_ONLY wit;
            OnTestBatchStart "on_test_batch_start" Both EVAL_STEP wit;
            OnTestBatchEnd "on_test_batch_end" Both EVAL_STEP wit;
            OnTestModelEval "on_test_model_eval" Module NO_LOG wit;
            OnTestModelTrain "on_test_model_train" Module NO_LOG wit;
            OnPredictStart "on_predict_start" Both NO_LOG wit;
            OnPredictEnd "on_predict_end" Both NO_LOG wit;
            OnPredictEpochStart "on_predict_epoch_start" Both NO_LOG wit;
            OnPredictEpochEnd "on_predict_epoch_end" Both NO_LOG wit;
            OnPredictBatchStart "on_predict_batch_start" Both NO_LOG wit;
            OnPredictBatchEnd "on_predict_batch_end" Both NO_LOG wit;
            OnPredictModelEval "on_predict_model_eval" Module NO_LOG wit;
            OnBeforeBatchTransfer "on_before_batch_transfer" Module NO_LOG wit;
            OnAfterBatchTransfer "on_after_batch_transfer" Module NO_LOG wit;
            TrainingStep "training_step" Module TRAIN_STEP host;
            ValidationStep "validation_step" Module EVAL_STEP host;
            TestStep "test_step" Module EVAL_STEP host;
            PredictStep "predict_step" Module NO_LOG host;
            OnBeforeZeroGrad "on_before_zero_grad" Both TRAIN_STEP wit;
            OnBeforeBackward "on_before_backward" Both TRAIN_STEP wit;
            OnAfterBackward "on_after_backward" Both TRAIN_STEP wit;
            OnBeforeOptimizerStep "on_before_optimizer_step" Both TRAIN_STEP wit;
            OnException "on_exception" Callback NO_LOG host;
        }
    };
}
pub(crate) use hook_table;

hook_table!(define_hooks);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hooks_log_rule_is_lightnings_fx_validator_entry() {
        // tests/reference/native_reference.py `fx_validator()`: Lightning's `_FxValidator.functions`
        // (test_fx_validator, docs/lightning-tests/logging.md row 1): for every hook lthost has,
        // logging refused where Lightning's entry is None, else the same allowed on_step and
        // on_epoch values and the same defaults.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/native.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run `make reference`)"));
        let reference: serde_json::Value = serde_json::from_str(&text).expect("native.json");
        let table = reference["fx_validator"].as_object().expect("fx_validator");
        let bools = |v: &serde_json::Value| -> Vec<bool> {
            v.as_array().expect("a list").iter().map(|b| b.as_bool().expect("a bool")).collect()
        };
        let mut compared = 0;
        for hook in Hook::ALL {
            let Some(want) = table.get(hook.name()) else { continue };
            compared += 1;
            let got = hook.log_rule();
            match (got, want.as_object()) {
                (None, None) => {}
                (Some(r), Some(w)) => {
                    assert_eq!(r.on_step, bools(&w["allowed_on_step"]).as_slice(), "{}: allowed on_step", hook.name());
                    assert_eq!(
                        r.on_epoch,
                        bools(&w["allowed_on_epoch"]).as_slice(),
                        "{}: allowed on_epoch",
                        hook.name()
                    );
                    assert_eq!(
                        (r.default_on_step, r.default_on_epoch),
                        (w["default_on_step"].as_bool().expect("b"), w["default_on_epoch"].as_bool().expect("b")),
                        "{}: defaults",
                        hook.name()
                    );
                }
                (got, _) => panic!("{}: lthost {:?}, Lightning {want}", hook.name(), got.map(|r| r.on_step)),
            }
        }
        // Every hook lthost calls is in Lightning's table but one (its predict loop calls it; the
        // table has no entry, and lthost refuses logging there as in every predict hook).
        let own: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).filter(|n| !table.contains_key(*n)).collect();
        assert_eq!(own, ["on_predict_model_eval"], "hooks Lightning's table does not name");
        assert_eq!(compared, Hook::ALL.len() - 1);
        assert_eq!(Hook::OnPredictModelEval.log_rule(), None);
    }

    #[test]
    fn log_rules_follow_lightning() {
        assert_eq!(Hook::TrainingStep.log_rule().map(|r| (r.default_on_step, r.default_on_epoch)), Some((true, false)));
        assert_eq!(
            Hook::ValidationStep.log_rule().map(|r| (r.default_on_step, r.default_on_epoch)),
            Some((false, true))
        );
        assert_eq!(Hook::OnTrainEpochEnd.log_rule().map(|r| r.on_step), Some(&[false][..]));
        assert!(Hook::OnFitStart.log_rule().is_none());
        assert!(Hook::PredictStep.log_rule().is_none());
        assert_eq!(Hook::OnSanityCheckStart.owner(), Owner::Callback);
        assert_eq!(Hook::OnValidationModelEval.owner(), Owner::Module);
    }

    #[test]
    fn the_table_names_every_hook_once() {
        let names: std::collections::HashSet<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
        assert_eq!(names.len(), Hook::ALL.len());
        assert_eq!(Hook::ALL.len(), 49);
        // The hooks a plugin module cannot implement through WIT: the host runs them.
        let host: Vec<&str> = Hook::ALL.iter().filter(|h| !h.in_wit()).map(|h| h.name()).collect();
        assert_eq!(
            host,
            [
                "configure_optimizers",
                "on_sanity_check_start",
                "on_sanity_check_end",
                "training_step",
                "validation_step",
                "test_step",
                "predict_step",
                "on_exception"
            ]
        );
    }
}
