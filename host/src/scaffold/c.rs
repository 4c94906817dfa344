//! The C template: `model.c` on the C SDK (sdk/c/lthost.h) over the bindings `wit-bindgen c`
//! generates, compiled by clang-19 for wasm32-wasi and linked into a component by
//! wasm-component-ld (the Rust toolchain's) with the WASI reactor adapter.

use super::Template;

const MODEL_C: &str = r#"// {name}: a LightningModule and a DataModule for lthost (`lthost init` template).
// Learns y = 0.5 * sum(x) from samples with a two-layer MLP.
#include "lthost.h"

static lt_linear_t hidden, out;
static double lr = 0.01;
static uint32_t batch_size = 32;
static lt_tensor xs[2], ys[2];

static lt_tensor forward(lt_tensor x) { return lt_linear_forward(&out, lt_relu(lt_linear_forward(&hidden, x))); }

bool exports_lt_plugin_lightning_module_configure(plugin_string_t *hparams, exports_lt_plugin_lightning_module_saved_hparams_t *ret, plugin_string_t *err) {
  lr = lt_hparam(hparams, "lr", 0.01);
  int width = (int)lt_hparam(hparams, "hidden", 32);
  plugin_string_free(hparams);
  if (width < 1) {
    plugin_string_dup(err, "hidden must be >= 1");
    return false;
  }
  hidden = lt_linear("hidden", 8, (uint32_t)width, true);
  out = lt_linear("out", (uint32_t)width, 1, true);
  char json[128];
  snprintf(json, sizeof json, "{\"lr\": %g, \"hidden\": %d}", lr, width);
  // Saved and logged, as `save_hyperparameters()` in a Lightning module's __init__.
  plugin_string_dup(&ret->hparams, json);
  ret->log = true;
  return true;
}

void exports_lt_plugin_lightning_module_configure_optimizers(exports_lt_plugin_lightning_module_optimization_t *ret) {
  exports_lt_plugin_lightning_module_optimizer_t *o = calloc(1, sizeof *o);
  o->algorithm.tag = EXPORTS_LT_PLUGIN_LIGHTNING_MODULE_ALGORITHM_ADAM;
  o->algorithm.val.adam = (exports_lt_plugin_lightning_module_adam_t){.lr = lr, .betas = {0.9, 0.999}, .eps = 1e-8};
  *ret = (exports_lt_plugin_lightning_module_optimization_t){.optimizers = {o, 1}, .automatic_optimization = true};
}

bool exports_lt_plugin_lightning_module_training_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, exports_lt_plugin_lightning_module_option_own_tensor_t *ret, plugin_string_t *err) {
  int mark = lt_scope_begin();
  lt_tensor loss = lt_mse_loss(forward(batch->ptr[0]), batch->ptr[1]);
  lt_log("train_loss", loss, true);
  *ret = (exports_lt_plugin_lightning_module_option_own_tensor_t){.is_some = true, .val = lt_release(loss)};
  lt_scope_end(mark);
  lt_batch_free(batch);
  return true;
}

bool exports_lt_plugin_lightning_module_validation_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, plugin_string_t *err) {
  int mark = lt_scope_begin();
  lt_log("val_loss", lt_mse_loss(forward(batch->ptr[0]), batch->ptr[1]), true);
  lt_scope_end(mark);
  lt_batch_free(batch);
  return true;
}

bool exports_lt_plugin_data_module_setup(exports_lt_plugin_data_module_stage_t stage, plugin_string_t *hparams, exports_lt_plugin_data_module_saved_hparams_t *ret, plugin_string_t *err) {
  int64_t n = (int64_t)lt_hparam(hparams, "samples", 512);
  batch_size = (uint32_t)lt_hparam(hparams, "batch_size", 32);
  plugin_string_free(hparams);
  for (int i = 0; i < 2; i++) {
    int mark = lt_scope_begin();
    xs[i] = lt_release(lt_randn2(n, 8));
    ys[i] = lt_release(lt_mul_scalar(lt_sum_dim(xs[i], 1, true), 0.5));
    lt_scope_end(mark);
  }
  // The DataModule saves nothing of its own (the module's set holds every key).
  plugin_string_dup(&ret->hparams, "{}");
  ret->log = false;
  return true;
}

bool exports_lt_plugin_data_module_dataloader(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_dataset_t *ret) {
  if (index > 0) return false;  // one DataLoader per split
  int i = split == EXPORTS_LT_PLUGIN_DATA_MODULE_SPLIT_TRAIN ? 0 : split == EXPORTS_LT_PLUGIN_DATA_MODULE_SPLIT_VAL ? 1 : -1;
  if (i < 0 || xs[i].__handle == 0) return false;
  lt_tensor *cols = malloc(2 * sizeof *cols);
  cols[0] = xs[i];
  cols[1] = ys[i];
  xs[i].__handle = ys[i].__handle = 0;
  *ret = (exports_lt_plugin_data_module_dataset_t){.columns = {cols, 2}, .batch_size = batch_size, .shuffle = i == 0};
  return true;
}

// The hooks this template does not use.
bool exports_lt_plugin_lightning_module_has_attr(plugin_string_t *name) { plugin_string_free(name); return false; }
bool exports_lt_plugin_lightning_module_set_attr(plugin_string_t *name, exports_lt_plugin_lightning_module_attr_value_t *value, plugin_string_t *err) { plugin_string_free(name); return true; }
bool exports_lt_plugin_lightning_module_get_attr(plugin_string_t *name, exports_lt_plugin_lightning_module_attr_value_t *ret) { plugin_string_free(name); return false; }
bool exports_lt_plugin_lightning_module_save_state(plugin_list_u8_t *ret) { return false; }
bool exports_lt_plugin_lightning_module_load_state(plugin_list_u8_t *state, plugin_string_t *err) { plugin_list_u8_free(state); return true; }
void exports_lt_plugin_lightning_module_implemented_hooks(exports_lt_plugin_lightning_module_list_hook_t *ret) { *ret = (exports_lt_plugin_lightning_module_list_hook_t){NULL, 0}; }
int32_t exports_lt_plugin_lightning_module_on_hook(exports_lt_plugin_lightning_module_hook_t hook, exports_lt_plugin_lightning_module_stage_t stage, uint64_t *maybe_batch_idx) { return 0; }
bool exports_lt_plugin_lightning_module_test_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, plugin_string_t *err) { lt_batch_free(batch); return true; }
bool exports_lt_plugin_lightning_module_predict_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, exports_lt_plugin_lightning_module_own_tensor_t *ret, plugin_string_t *err) {
  int mark = lt_scope_begin();
  *ret = lt_release(forward(batch->ptr[0]));
  lt_scope_end(mark);
  lt_batch_free(batch);
  return true;
}
bool exports_lt_plugin_data_module_streaming(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_stream_source_t *ret) { return false; }
bool exports_lt_plugin_data_module_start_pass(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_worker_info_t *worker, plugin_string_t *err) { plugin_string_dup(err, "no stream"); return false; }
bool exports_lt_plugin_data_module_next_batch(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_option_list_own_tensor_t *ret, plugin_string_t *err) { ret->is_some = false; return true; }
bool exports_lt_plugin_data_module_fetch(exports_lt_plugin_data_module_split_t split, uint32_t index, plugin_list_u64_t *indices, exports_lt_plugin_data_module_worker_info_t *maybe_worker, exports_lt_plugin_data_module_list_own_tensor_t *ret, plugin_string_t *err) { plugin_list_u64_free(indices); plugin_string_dup(err, "no items"); return false; }
bool exports_lt_plugin_data_module_sample(exports_lt_plugin_data_module_split_t split, uint32_t index, bool base_seed, exports_lt_plugin_data_module_sampled_pass_t *ret, plugin_string_t *err) { plugin_string_dup(err, "no sampler"); return false; }
bool exports_lt_plugin_data_module_has_attr(plugin_string_t *name) { plugin_string_free(name); return false; }
bool exports_lt_plugin_data_module_set_attr(plugin_string_t *name, exports_lt_plugin_data_module_attr_value_t *value, plugin_string_t *err) { plugin_string_free(name); return true; }
bool exports_lt_plugin_data_module_get_attr(plugin_string_t *name, exports_lt_plugin_data_module_attr_value_t *ret) { plugin_string_free(name); return false; }
bool exports_lt_plugin_data_module_save_state(plugin_list_u8_t *ret) { return false; }
bool exports_lt_plugin_data_module_load_state(plugin_list_u8_t *state, plugin_string_t *err) { plugin_list_u8_free(state); return true; }
"#;

pub fn files(name: &str) -> Template {
    let build = format!(
        "mkdir -p build\n\"${{WIT_BINDGEN:-wit-bindgen}}\" c wit -w plugin --out-dir build >/dev/null\n\"${{CC:-clang-19}}\" --target=wasm32-wasi -O2 -mexec-model=reactor -I sdk -I build model.c build/plugin.c build/plugin_component_type.o \\\n  -fuse-ld=\"$(ls \"$(rustc --print sysroot)\"/lib/rustlib/*/bin/wasm-component-ld | head -1)\" -Wl,--wasi-adapter,reactor -o build/app.wasm\nlthost manifest build/app.wasm --from lthost.toml --output {name}.wasm"
    );
    let mut files = vec![
        ("model.c".to_string(), MODEL_C.replace("{name}", name)),
        (".gitignore".to_string(), "/build\n/lightning_logs\n*.wasm\n".to_string()),
    ];
    files.extend(super::sdk_files("sdk/c/").into_iter().map(|(rel, text)| (format!("sdk/{rel}"), text)));
    Template { files, build, source: "model.c" }
}
