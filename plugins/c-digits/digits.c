// The digits MLP in C: plugins/digits-mlp over the C bindings of the same WIT. The same
// model with the same seed gives the same losses as the Rust plugin (all the math runs in
// the host). `lt_aten_*` are the generated typed operators (lthost_aten.h).
#include "lthost.h"
#include "lthost_aten.h"

static lt_linear_t hidden, out;
static lt_dropout_t dropout;
static double lr = 0.003;
// Host calls made per training step for nothing but their cost (make bench).
static int probe_calls = 0;
static uint32_t batch_size = 32;
static lt_plugin_tensor_list_tuple2_string_own_tensor_t splits;

static lt_tensor forward(lt_tensor x) {
  lt_tensor h = lt_aten_relu(lt_linear_forward(&hidden, x));
  return lt_linear_forward(&out, lt_dropout_forward(&dropout, h));
}

bool exports_lt_plugin_lightning_module_configure(plugin_string_t *hparams, exports_lt_plugin_lightning_module_saved_hparams_t *ret, plugin_string_t *err) {
  double width = lt_hparam(hparams, "hidden", 128), p = lt_hparam(hparams, "dropout", 0.1);
  lr = lt_hparam(hparams, "lr", 0.003);
  probe_calls = (int)lt_hparam(hparams, "probe_calls", 0);
  double bs = lt_hparam(hparams, "batch_size", 32);
  plugin_string_free(hparams);
  if (width < 1 || p < 0 || p >= 1) {
    plugin_string_dup(err, "hidden must be >= 1 and dropout in [0, 1)");
    return false;
  }
  hidden = lt_linear("hidden", 64, (uint32_t)width, true);
  dropout = lt_dropout(p);
  out = lt_linear("out", (uint32_t)width, 10, true);
  char json[256];
  snprintf(json, sizeof json, "{\"hidden\": %d, \"dropout\": %g, \"lr\": %g, \"batch_size\": %d}", (int)width, p, lr, (int)bs);
  // Saved and logged, as `save_hyperparameters()` in a Lightning module's __init__.
  plugin_string_dup(&ret->hparams, json);
  ret->log = true;
  return true;
}

void exports_lt_plugin_lightning_module_configure_optimizers(exports_lt_plugin_lightning_module_optimization_t *ret) {
  exports_lt_plugin_lightning_module_optimizer_t *o = calloc(1, sizeof *o);
  o->algorithm.tag = EXPORTS_LT_PLUGIN_LIGHTNING_MODULE_ALGORITHM_ADAM;
  o->algorithm.val.adam = (exports_lt_plugin_lightning_module_adam_t){.lr = lr, .betas = {0.9, 0.999}, .eps = 1e-8, .weight_decay = 0.0, .amsgrad = false};
  ret->optimizers.ptr = o;
  ret->optimizers.len = 1;
  ret->lr_schedulers.ptr = NULL;
  ret->lr_schedulers.len = 0;
  ret->automatic_optimization = true;
}

// Lightning's lightning_hasattr / lightning_setattr: the learning rate is the one field the
// learning-rate finder may set (read by configure_optimizers).
static bool is_lr(plugin_string_t *name) { return name->len == 2 && memcmp(name->ptr, "lr", 2) == 0; }

bool exports_lt_plugin_lightning_module_has_attr(plugin_string_t *name) {
  bool found = is_lr(name);
  plugin_string_free(name);
  return found;
}

bool exports_lt_plugin_lightning_module_set_attr(plugin_string_t *name, exports_lt_plugin_lightning_module_attr_value_t *value, plugin_string_t *err) {
  if (is_lr(name)) lr = value->tag == LT_PLUGIN_TYPES_ATTR_VALUE_INT ? (double)value->val.int_ : value->val.float_;
  plugin_string_free(name);
  return true;
}

bool exports_lt_plugin_lightning_module_get_attr(plugin_string_t *name, exports_lt_plugin_lightning_module_attr_value_t *ret) {
  bool found = is_lr(name);
  plugin_string_free(name);
  if (found) {
    ret->tag = LT_PLUGIN_TYPES_ATTR_VALUE_FLOAT;
    ret->val.float_ = lr;
  }
  return found;
}

bool exports_lt_plugin_lightning_module_save_state(plugin_list_u8_t *ret) { return false; }

bool exports_lt_plugin_lightning_module_load_state(plugin_list_u8_t *state, plugin_string_t *err) {
  plugin_list_u8_free(state);
  return true;
}

void exports_lt_plugin_lightning_module_implemented_hooks(exports_lt_plugin_lightning_module_list_hook_t *ret) {
  ret->ptr = NULL;
  ret->len = 0;
}

int32_t exports_lt_plugin_lightning_module_on_hook(exports_lt_plugin_lightning_module_hook_t hook, exports_lt_plugin_lightning_module_stage_t stage, uint64_t *maybe_batch_idx) { return 0; }

bool exports_lt_plugin_lightning_module_training_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, exports_lt_plugin_lightning_module_option_own_tensor_t *ret, plugin_string_t *err) {
  for (int i = 0; i < probe_calls; i++) lt_plugin_tensor_method_tensor_numel(lt_b(batch->ptr[0]));
  int mark = lt_scope_begin();
  lt_tensor loss = lt_cross_entropy(forward(batch->ptr[0]), batch->ptr[1]);
  lt_log("train_loss", loss, true);
  *ret = (exports_lt_plugin_lightning_module_option_own_tensor_t){.is_some = true, .val = lt_release(loss)};
  lt_scope_end(mark);
  lt_batch_free(batch);
  return true;
}

static void evaluate(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, const char *prefix) {
  int mark = lt_scope_begin();
  lt_tensor logits = forward(batch->ptr[0]);
  char name[32];
  snprintf(name, sizeof name, "%s_loss", prefix);
  lt_log(name, lt_cross_entropy(logits, batch->ptr[1]), true);
  snprintf(name, sizeof name, "%s_acc", prefix);
  lt_log(name, lt_mean(lt_float(lt_eq(lt_aten_argmax(logits, lt_arg_int(1), lt_default()), batch->ptr[1]))), true);
  lt_scope_end(mark);
  lt_batch_free(batch);
}

bool exports_lt_plugin_lightning_module_validation_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, plugin_string_t *err) {
  evaluate(batch, "val");
  return true;
}

bool exports_lt_plugin_lightning_module_test_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, plugin_string_t *err) {
  evaluate(batch, "test");
  return true;
}

bool exports_lt_plugin_lightning_module_predict_step(exports_lt_plugin_lightning_module_list_own_tensor_t *batch, uint64_t batch_idx, exports_lt_plugin_lightning_module_own_tensor_t *ret, plugin_string_t *err) {
  int mark = lt_scope_begin();
  *ret = lt_release(lt_softmax(forward(batch->ptr[0]), -1));
  lt_scope_end(mark);
  lt_batch_free(batch);
  return true;
}

// digits.safetensors from the granted data directory: uint8 pixels 0..16, int64 labels.
bool exports_lt_plugin_data_module_setup(exports_lt_plugin_data_module_stage_t stage, plugin_string_t *hparams, exports_lt_plugin_data_module_saved_hparams_t *ret, plugin_string_t *err) {
  batch_size = (uint32_t)lt_hparam(hparams, "batch_size", 32);
  plugin_string_free(hparams);
  plugin_string_t file;
  plugin_string_set(&file, "digits.safetensors");
  lt_plugin_tensor_static_tensor_load(&file, &splits);
  // The DataModule saves nothing of its own (the module's set holds every key).
  plugin_string_dup(&ret->hparams, "{}");
  ret->log = false;
  return true;
}

bool exports_lt_plugin_data_module_dataloader(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_dataset_t *ret) {
  if (index > 0) return false;  // one DataLoader per split
  const char *name = split == EXPORTS_LT_PLUGIN_DATA_MODULE_SPLIT_TRAIN ? "train" : split == EXPORTS_LT_PLUGIN_DATA_MODULE_SPLIT_VAL ? "val" : "test";
  char key[32];
  lt_tensor images, labels;
  snprintf(key, sizeof key, "%s_images", name);
  if (!lt_take(&splits, key, &images)) return false;
  snprintf(key, sizeof key, "%s_labels", name);
  if (!lt_take(&splits, key, &labels)) return false;
  int mark = lt_scope_begin();
  lt_tensor x = lt_release(lt_div_scalar(lt_float(images), 16.0));
  lt_scope_end(mark);
  lt_plugin_tensor_tensor_drop_own(images);
  lt_tensor *cols = malloc(2 * sizeof *cols);
  cols[0] = x;
  cols[1] = labels;
  ret->columns.ptr = cols;
  ret->columns.len = 2;
  ret->batch_size = batch_size;
  ret->shuffle = split == EXPORTS_LT_PLUGIN_DATA_MODULE_SPLIT_TRAIN;
  ret->drop_last = false;
  ret->sampler.is_some = false;
  ret->items.is_some = false;
  ret->num_workers = 0;
  ret->persistent_workers = false;
  return true;
}

bool exports_lt_plugin_data_module_streaming(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_stream_source_t *ret) { return false; }

bool exports_lt_plugin_data_module_start_pass(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_worker_info_t *worker, plugin_string_t *err) {
  plugin_string_dup(err, "this DataModule has no stream");
  return false;
}

bool exports_lt_plugin_data_module_next_batch(exports_lt_plugin_data_module_split_t split, uint32_t index, exports_lt_plugin_data_module_option_list_own_tensor_t *ret, plugin_string_t *err) {
  ret->is_some = false;
  return true;
}

bool exports_lt_plugin_data_module_fetch(exports_lt_plugin_data_module_split_t split, uint32_t index, plugin_list_u64_t *indices, exports_lt_plugin_data_module_worker_info_t *maybe_worker, exports_lt_plugin_data_module_list_own_tensor_t *ret, plugin_string_t *err) {
  plugin_list_u64_free(indices);
  plugin_string_dup(err, "this DataModule has no items to fetch");
  return false;
}

bool exports_lt_plugin_data_module_sample(exports_lt_plugin_data_module_split_t split, uint32_t index, bool base_seed, exports_lt_plugin_data_module_sampled_pass_t *ret, plugin_string_t *err) {
  plugin_string_dup(err, "this DataModule has no sampler of its own");
  return false;
}

bool exports_lt_plugin_data_module_has_attr(plugin_string_t *name) {
  plugin_string_free(name);
  return false;
}

bool exports_lt_plugin_data_module_set_attr(plugin_string_t *name, exports_lt_plugin_data_module_attr_value_t *value, plugin_string_t *err) {
  plugin_string_free(name);
  return true;
}

bool exports_lt_plugin_data_module_get_attr(plugin_string_t *name, exports_lt_plugin_data_module_attr_value_t *ret) {
  plugin_string_free(name);
  return false;
}

bool exports_lt_plugin_data_module_save_state(plugin_list_u8_t *ret) { return false; }

bool exports_lt_plugin_data_module_load_state(plugin_list_u8_t *state, plugin_string_t *err) {
  plugin_list_u8_free(state);
  return true;
}
