//! Lightning's hooks: their names, who has them (module, callback or both), and where
//! `self.log` may be called (Lightning's `_FxValidator`).

/// Every hook the loops call, on callbacks, on the module, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Setup,
    Teardown,
    ConfigureModel,
    ConfigureOptimizers,
    OnFitStart,
    OnFitEnd,
    OnSanityCheckStart,
    OnSanityCheckEnd,
    OnTrainStart,
    OnTrainEnd,
    OnTrainEpochStart,
    OnTrainEpochEnd,
    OnTrainBatchStart,
    OnTrainBatchEnd,
    OnValidationStart,
    OnValidationEnd,
    OnValidationEpochStart,
    OnValidationEpochEnd,
    OnValidationBatchStart,
    OnValidationBatchEnd,
    OnValidationModelEval,
    OnValidationModelTrain,
    OnValidationModelZeroGrad,
    OnTestStart,
    OnTestEnd,
    OnTestEpochStart,
    OnTestEpochEnd,
    OnTestBatchStart,
    OnTestBatchEnd,
    OnTestModelEval,
    OnTestModelTrain,
    OnPredictStart,
    OnPredictEnd,
    OnPredictEpochStart,
    OnPredictEpochEnd,
    OnPredictBatchStart,
    OnPredictBatchEnd,
    OnPredictModelEval,
    OnBeforeBatchTransfer,
    OnAfterBatchTransfer,
    TrainingStep,
    ValidationStep,
    TestStep,
    PredictStep,
    OnBeforeZeroGrad,
    OnBeforeBackward,
    OnAfterBackward,
    OnBeforeOptimizerStep,
    OnException,
}

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
const TRAIN_STEP: LogRule = LogRule { on_step: ANY, on_epoch: ANY, default_on_step: true, default_on_epoch: false };
const EVAL_STEP: LogRule = LogRule { on_step: ANY, on_epoch: ANY, default_on_step: false, default_on_epoch: true };
const EPOCH_ONLY: LogRule =
    LogRule { on_step: &[false], on_epoch: &[true], default_on_step: false, default_on_epoch: true };

impl Hook {
    /// Lightning's name for the hook.
    pub fn name(self) -> &'static str {
        use Hook::*;
        match self {
            Setup => "setup",
            Teardown => "teardown",
            ConfigureModel => "configure_model",
            ConfigureOptimizers => "configure_optimizers",
            OnFitStart => "on_fit_start",
            OnFitEnd => "on_fit_end",
            OnSanityCheckStart => "on_sanity_check_start",
            OnSanityCheckEnd => "on_sanity_check_end",
            OnTrainStart => "on_train_start",
            OnTrainEnd => "on_train_end",
            OnTrainEpochStart => "on_train_epoch_start",
            OnTrainEpochEnd => "on_train_epoch_end",
            OnTrainBatchStart => "on_train_batch_start",
            OnTrainBatchEnd => "on_train_batch_end",
            OnValidationStart => "on_validation_start",
            OnValidationEnd => "on_validation_end",
            OnValidationEpochStart => "on_validation_epoch_start",
            OnValidationEpochEnd => "on_validation_epoch_end",
            OnValidationBatchStart => "on_validation_batch_start",
            OnValidationBatchEnd => "on_validation_batch_end",
            OnValidationModelEval => "on_validation_model_eval",
            OnValidationModelTrain => "on_validation_model_train",
            OnValidationModelZeroGrad => "on_validation_model_zero_grad",
            OnTestStart => "on_test_start",
            OnTestEnd => "on_test_end",
            OnTestEpochStart => "on_test_epoch_start",
            OnTestEpochEnd => "on_test_epoch_end",
            OnTestBatchStart => "on_test_batch_start",
            OnTestBatchEnd => "on_test_batch_end",
            OnTestModelEval => "on_test_model_eval",
            OnTestModelTrain => "on_test_model_train",
            OnPredictStart => "on_predict_start",
            OnPredictEnd => "on_predict_end",
            OnPredictEpochStart => "on_predict_epoch_start",
            OnPredictEpochEnd => "on_predict_epoch_end",
            OnPredictBatchStart => "on_predict_batch_start",
            OnPredictBatchEnd => "on_predict_batch_end",
            OnPredictModelEval => "on_predict_model_eval",
            OnBeforeBatchTransfer => "on_before_batch_transfer",
            OnAfterBatchTransfer => "on_after_batch_transfer",
            TrainingStep => "training_step",
            ValidationStep => "validation_step",
            TestStep => "test_step",
            PredictStep => "predict_step",
            OnBeforeZeroGrad => "on_before_zero_grad",
            OnBeforeBackward => "on_before_backward",
            OnAfterBackward => "on_after_backward",
            OnBeforeOptimizerStep => "on_before_optimizer_step",
            OnException => "on_exception",
        }
    }

    pub fn owner(self) -> Owner {
        use Hook::*;
        match self {
            OnSanityCheckStart | OnSanityCheckEnd | OnException => Owner::Callback,
            ConfigureModel
            | ConfigureOptimizers
            | OnValidationModelEval
            | OnValidationModelTrain
            | OnValidationModelZeroGrad
            | OnTestModelEval
            | OnTestModelTrain
            | OnPredictModelEval
            | OnBeforeBatchTransfer
            | OnAfterBatchTransfer
            | TrainingStep
            | ValidationStep
            | TestStep
            | PredictStep => Owner::Module,
            _ => Owner::Both,
        }
    }

    /// Lightning's `_FxValidator`: None where `self.log` is not allowed.
    pub fn log_rule(self) -> Option<LogRule> {
        use Hook::*;
        match self {
            TrainingStep
            | OnTrainBatchStart
            | OnTrainBatchEnd
            | OnBeforeBackward
            | OnAfterBackward
            | OnBeforeOptimizerStep
            | OnBeforeZeroGrad => Some(TRAIN_STEP),
            ValidationStep
            | TestStep
            | OnValidationBatchStart
            | OnValidationBatchEnd
            | OnTestBatchStart
            | OnTestBatchEnd => Some(EVAL_STEP),
            OnTrainStart
            | OnTrainEpochStart
            | OnTrainEpochEnd
            | OnValidationStart
            | OnValidationEpochStart
            | OnValidationEpochEnd
            | OnTestStart
            | OnTestEpochStart
            | OnTestEpochEnd => Some(EPOCH_ONLY),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
