// The C SDK for lthost plugins: helpers over the bindings `wit-bindgen c` generates from
// lthost's WIT (`plugin.h`, world `plugin`). Tensors are handles to libtorch tensors in
// the host; every op runs there, with autograd.
//
// Handles: every op returns an owned handle. Make them inside a scope and they are
// dropped when it ends: `int m = lt_scope_begin(); ... op(...) ...; lt_scope_end(m);`.
// Handles the plugin keeps (layers, datasets) are `lt_release`d or made outside a scope.
// A step's batch is the plugin's to free: `lt_batch_free(batch)`.
#ifndef LTHOST_H
#define LTHOST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "plugin.h"

typedef lt_plugin_tensor_own_tensor_t lt_tensor;

// Scopes nest: `int mark = lt_scope_begin(); ... lt_scope_end(mark);` drops every handle
// made since `mark` that was not `lt_release`d. The state is shared by every file that
// includes this header (weak definitions).
#define LT_SCOPE_MAX 65536
__attribute__((weak)) lt_tensor lt_scope_[LT_SCOPE_MAX];
__attribute__((weak)) int lt_scope_len_ = 0;
__attribute__((weak)) int lt_scope_depth_ = 0;

static inline int lt_scope_begin(void) {
  lt_scope_depth_++;
  return lt_scope_len_;
}

// Registers a handle with the innermost open scope (if any) and returns it.
static inline lt_tensor lt_keep(lt_tensor t) {
  if (lt_scope_depth_ > 0) {
    if (lt_scope_len_ == LT_SCOPE_MAX) {
      fprintf(stderr, "lthost.h: more than %d tensors made in open scopes; end a scope sooner\n", LT_SCOPE_MAX);
      abort();
    }
    lt_scope_[lt_scope_len_++] = t;
  }
  return t;
}

static inline void lt_scope_end(int mark) {
  for (int i = mark; i < lt_scope_len_; i++) lt_plugin_tensor_tensor_drop_own(lt_scope_[i]);
  lt_scope_len_ = mark;
  if (lt_scope_depth_ > 0) lt_scope_depth_--;
}

// Takes a handle out of the open scopes (it is returned to the host, or kept).
static inline lt_tensor lt_release(lt_tensor t) {
  for (int i = lt_scope_len_ - 1; i >= 0; i--) {
    if (lt_scope_[i].__handle == t.__handle) {
      lt_scope_[i] = lt_scope_[--lt_scope_len_];
      break;
    }
  }
  return t;
}

// Frees a batch the host lent to a step: drops its tensor handles (wit-bindgen's list free
// does not) and the list.
static inline void lt_batch_free(exports_lt_plugin_lightning_module_list_own_tensor_t *batch) {
  for (size_t i = 0; i < batch->len; i++) lt_plugin_tensor_tensor_drop_own(batch->ptr[i]);
  exports_lt_plugin_lightning_module_list_own_tensor_free(batch);
}

static inline lt_plugin_tensor_borrow_tensor_t lt_b(lt_tensor t) { return lt_plugin_tensor_borrow_tensor(t); }

static inline lt_tensor lt_unary(lt_tensor t, lt_plugin_tensor_unary_op_t op) { return lt_keep(lt_plugin_tensor_method_tensor_unary(lt_b(t), op)); }
static inline lt_tensor lt_relu(lt_tensor t) { return lt_unary(t, LT_PLUGIN_TENSOR_UNARY_OP_RELU); }
static inline lt_tensor lt_float(lt_tensor t) { return lt_keep(lt_plugin_tensor_method_tensor_to_dtype(lt_b(t), LT_PLUGIN_TYPES_DTYPE_FLOAT32)); }
static inline lt_tensor lt_div_scalar(lt_tensor t, double v) { return lt_keep(lt_plugin_tensor_method_tensor_binary_scalar(lt_b(t), LT_PLUGIN_TENSOR_BINARY_OP_DIV, v)); }
static inline lt_tensor lt_eq(lt_tensor a, lt_tensor b) { return lt_keep(lt_plugin_tensor_method_tensor_compare(lt_b(a), LT_PLUGIN_TENSOR_COMPARE_OP_EQ, lt_b(b))); }
static inline lt_tensor lt_argmax(lt_tensor t, int64_t dim) { return lt_keep(lt_plugin_tensor_method_tensor_argmax(lt_b(t), dim, false)); }
static inline lt_tensor lt_softmax(lt_tensor t, int64_t dim) { return lt_keep(lt_plugin_tensor_method_tensor_softmax(lt_b(t), dim)); }
static inline lt_tensor lt_mean(lt_tensor t) {
  plugin_list_s64_t dims = {NULL, 0};
  return lt_keep(lt_plugin_tensor_method_tensor_reduce(lt_b(t), LT_PLUGIN_TENSOR_REDUCE_OP_MEAN, &dims, false));
}
static inline lt_tensor lt_cross_entropy(lt_tensor input, lt_tensor target) {
  return lt_keep(lt_plugin_tensor_cross_entropy(lt_b(input), lt_b(target), LT_PLUGIN_TYPES_REDUCTION_MEAN, 0.0));
}

static inline lt_tensor lt_mul_scalar(lt_tensor t, double v) { return lt_keep(lt_plugin_tensor_method_tensor_binary_scalar(lt_b(t), LT_PLUGIN_TENSOR_BINARY_OP_MUL, v)); }
static inline lt_tensor lt_sum_dim(lt_tensor t, int64_t dim, bool keepdim) {
  plugin_list_s64_t dims = {&dim, 1};
  return lt_keep(lt_plugin_tensor_method_tensor_reduce(lt_b(t), LT_PLUGIN_TENSOR_REDUCE_OP_SUM, &dims, keepdim));
}
static inline lt_tensor lt_mse_loss(lt_tensor input, lt_tensor target) {
  return lt_keep(lt_plugin_tensor_mse_loss(lt_b(input), lt_b(target), LT_PLUGIN_TYPES_REDUCTION_MEAN));
}
// torch.randn(rows, cols) from the run's generator.
static inline lt_tensor lt_randn2(int64_t rows, int64_t cols) {
  int64_t shape[2] = {rows, cols};
  plugin_list_s64_t s = {shape, 2};
  return lt_keep(lt_plugin_tensor_static_tensor_randn(&s));
}

// Any allowed ATen operator. An `lt_op` resolves its operator (`"aten::linear"`) on first
// use; `lt_call` runs it with positional and named arguments and returns its one tensor
// (kept in the open scope). An operator's error ends the hook naming the operator, as an
// uncaught RuntimeError; `lt_try_call` returns false with torch's message instead.
typedef struct {
  const char *name;
  bool resolved;
  lt_plugin_aten_own_op_t op;
} lt_op;
#define LT_OP(qualified) {qualified, false, {0}}
typedef lt_plugin_aten_arg_t lt_arg;
typedef lt_plugin_aten_tuple2_string_arg_t lt_kwarg;

static inline lt_arg lt_arg_none(void) { return (lt_arg){.tag = LT_PLUGIN_ATEN_ARG_NONE}; }
static inline lt_arg lt_arg_tensor(lt_tensor t) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_TENSOR};
  a.val.tensor = lt_b(t);
  return a;
}
static inline lt_arg lt_arg_int(int64_t v) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_INT};
  a.val.int_ = v;
  return a;
}
static inline lt_arg lt_arg_float(double v) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_FLOAT};
  a.val.float_ = v;
  return a;
}
static inline lt_arg lt_arg_bool(bool v) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_BOOLEAN};
  a.val.boolean = v;
  return a;
}
// The list is borrowed for the call.
static inline lt_arg lt_arg_ints(int64_t *xs, size_t n) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_INTS};
  a.val.ints = (plugin_list_s64_t){xs, n};
  return a;
}
static inline lt_arg lt_arg_dtype(lt_plugin_types_dtype_t d) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_DTYPE};
  a.val.dtype = d;
  return a;
}
static inline lt_arg lt_arg_floats(double *xs, size_t n) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_FLOATS};
  a.val.floats = (plugin_list_f64_t){xs, n};
  return a;
}
static inline lt_arg lt_arg_bools(bool *xs, size_t n) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_BOOLS};
  a.val.bools = (plugin_list_bool_t){xs, n};
  return a;
}
// A string or a device ("cpu"), borrowed for the call.
static inline lt_arg lt_arg_str(const char *s) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_STR};
  plugin_string_set(&a.val.str, s);
  return a;
}
// A tensor list's element; `LT_NO_TENSOR` is None (a `Tensor?[]` element).
#define LT_NO_TENSOR ((lt_tensor){0})
static inline lt_plugin_aten_option_borrow_tensor_t lt_opt_tensor(lt_tensor t) {
  lt_plugin_aten_option_borrow_tensor_t o = {.is_some = t.__handle != 0};
  if (o.is_some) o.val = lt_b(t);
  return o;
}
static inline lt_arg lt_arg_tensors(lt_plugin_aten_option_borrow_tensor_t *xs, size_t n) {
  lt_arg a = {.tag = LT_PLUGIN_ATEN_ARG_TENSORS};
  a.val.tensors = (lt_plugin_aten_list_option_borrow_tensor_t){xs, n};
  return a;
}
// A parameter of a generated `lt_aten_*` function (lthost_aten.h) left to its default.
#define LT_DEFAULT_TAG 255
static inline lt_arg lt_default(void) { return (lt_arg){.tag = LT_DEFAULT_TAG}; }
static inline lt_kwarg lt_kw(const char *name, lt_arg v) {
  lt_kwarg k;
  plugin_string_set(&k.f0, name);
  k.f1 = v;
  return k;
}

// Ends the hook with `message` as operator `op`'s error.
static inline void lt_raise(const char *op, plugin_string_t *message) {
  plugin_string_t o;
  plugin_string_set(&o, op);
  lt_plugin_aten_raise(&o, message);
}

static inline bool lt_try_call(lt_op *op, lt_arg *args, size_t n, lt_kwarg *kwargs, size_t nkw, lt_tensor *out, plugin_string_t *err) {
  if (!op->resolved) {
    plugin_string_t name;
    plugin_string_set(&name, op->name);
    if (!lt_plugin_aten_static_op_resolve(&name, &op->op, err)) return false;
    op->resolved = true;
  }
  lt_plugin_aten_list_arg_t a = {args, n};
  lt_plugin_aten_list_tuple2_string_arg_t k = {kwargs, nkw};
  if (!lt_plugin_aten_method_op_call_tensor(lt_plugin_aten_borrow_op(op->op), &a, &k, out, err)) return false;
  lt_keep(*out);
  return true;
}

static inline lt_tensor lt_call(lt_op *op, lt_arg *args, size_t n, lt_kwarg *kwargs, size_t nkw) {
  lt_tensor out;
  plugin_string_t err;
  if (!lt_try_call(op, args, n, kwargs, nkw, &out, &err)) lt_raise(op->name, &err);
  return out;
}

// torch.nn layers on the ATen operators: parameters drawn as torch.nn's reset_parameters
// draws them (the Rust SDK's arithmetic), registered with the host under `path`.
__attribute__((weak)) lt_op lt_op_empty_ = LT_OP("aten::empty.memory_format");
__attribute__((weak)) lt_op lt_op_uniform_ = LT_OP("aten::uniform_");
__attribute__((weak)) lt_op lt_op_linear_ = LT_OP("aten::linear");
__attribute__((weak)) lt_op lt_op_dropout_ = LT_OP("aten::dropout");

// A float32 parameter of `shape` drawn from U(-bound, bound), registered at `path`.
static inline lt_tensor lt_uniform_parameter(const char *path, int64_t *shape, size_t n, double bound) {
  lt_arg size[1] = {lt_arg_ints(shape, n)};
  lt_kwarg dtype[1] = {lt_kw("dtype", lt_arg_dtype(LT_PLUGIN_TYPES_DTYPE_FLOAT32))};
  lt_tensor t = lt_release(lt_call(&lt_op_empty_, size, 1, dtype, 1));
  bool grad = lt_plugin_aten_set_grad_enabled(false);
  lt_arg draw[3] = {lt_arg_tensor(t), lt_arg_float(-bound), lt_arg_float(bound)};
  lt_plugin_tensor_tensor_drop_own(lt_release(lt_call(&lt_op_uniform_, draw, 3, NULL, 0)));
  lt_plugin_aten_set_grad_enabled(grad);
  plugin_string_t p, err;
  plugin_string_set(&p, path);
  lt_tensor param;
  if (!lt_plugin_parameters_register_parameter(&p, lt_b(t), &param, &err)) lt_raise("register_parameter", &err);
  lt_plugin_tensor_tensor_drop_own(t);
  return param;
}

typedef struct {
  lt_tensor weight, bias;
  bool has_bias;
} lt_linear_t;

// torch.nn.Linear(in, out, bias): kaiming_uniform_(a=√5), then the bias from ±1/√in.
static inline lt_linear_t lt_linear(const char *path, uint32_t in, uint32_t out, bool bias) {
  char name[512];
  lt_linear_t l = {.has_bias = bias};
  double a = sqrt(5.0), gain = sqrt(2.0 / (1.0 + a * a));
  int64_t w_shape[2] = {out, in}, b_shape[1] = {out};
  snprintf(name, sizeof name, "%s.weight", path);
  l.weight = lt_uniform_parameter(name, w_shape, 2, sqrt(3.0) * (gain / sqrt((double)in)));
  if (bias) {
    snprintf(name, sizeof name, "%s.bias", path);
    l.bias = lt_uniform_parameter(name, b_shape, 1, in > 0 ? 1.0 / sqrt((double)in) : 0.0);
  }
  plugin_string_t p, kind;
  plugin_string_set(&p, path);
  plugin_string_set(&kind, "Linear");
  lt_plugin_parameters_register_module(&p, &kind);
  return l;
}
static inline lt_tensor lt_linear_forward(lt_linear_t *l, lt_tensor x) {
  lt_arg args[3] = {lt_arg_tensor(x), lt_arg_tensor(l->weight), l->has_bias ? lt_arg_tensor(l->bias) : lt_arg_none()};
  return lt_call(&lt_op_linear_, args, 3, NULL, 0);
}

// torch.nn.Dropout(p): active while the trainer trains.
typedef struct {
  double p;
} lt_dropout_t;
static inline lt_dropout_t lt_dropout(double p) { return (lt_dropout_t){p}; }
static inline lt_tensor lt_dropout_forward(lt_dropout_t *d, lt_tensor x) {
  lt_arg args[3] = {lt_arg_tensor(x), lt_arg_float(d->p), lt_arg_bool(lt_plugin_trainer_training())};
  return lt_call(&lt_op_dropout_, args, 3, NULL, 0);
}

// Lightning's self.log(name, value, prog_bar=...).
static inline void lt_log(const char *name, lt_tensor value, bool prog_bar) {
  plugin_string_t n;
  plugin_string_set(&n, name);
  lt_plugin_log_log_options_t o = {.prog_bar = prog_bar, .logger = true, .reduce_fx = LT_PLUGIN_LOG_REDUCE_FX_MEAN, .add_dataloader_idx = true};
  lt_plugin_log_log(&n, lt_b(value), &o);
}

// A number from the top level of the JSON object of hyper-parameters (`"key": 0.1`), or
// `dflt` when the key is absent or not a number.
static inline double lt_hparam(const plugin_string_t *json, const char *key, double dflt) {
  size_t n = strlen(key), depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json->len; i++) {
    char c = (char)json->ptr[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') depth--;
    if (c != '"') continue;
    // A string at the top level (depth 1) that is `key` and is followed by `:` is the key.
    bool match = depth == 1 && i + n + 1 < json->len && memcmp(json->ptr + i + 1, key, n) == 0 && json->ptr[i + n + 1] == '"';
    if (!match) {
      in_string = true;
      continue;
    }
    size_t j = i + n + 2;
    while (j < json->len && json->ptr[j] == ' ') j++;
    if (j >= json->len || json->ptr[j] != ':') {
      in_string = true;
      continue;
    }
    j++;
    while (j < json->len && json->ptr[j] == ' ') j++;
    char num[64] = {0};
    size_t k = 0;
    while (j < json->len && k < sizeof num - 1 && strchr("+-.0123456789eE", json->ptr[j])) num[k++] = (char)json->ptr[j++];
    char *end;
    double v = strtod(num, &end);
    return end == num ? dflt : v;
  }
  return dflt;
}

// The tensor stored under `name` in a loaded file, taken out of the list (NULL-handle: none).
static inline bool lt_take(lt_plugin_tensor_list_tuple2_string_own_tensor_t *all, const char *name, lt_tensor *out) {
  size_t n = strlen(name);
  for (size_t i = 0; i < all->len; i++) {
    plugin_string_t *k = &all->ptr[i].f0;
    if (k->len == n && memcmp(k->ptr, name, n) == 0 && all->ptr[i].f1.__handle != 0) {
      *out = all->ptr[i].f1;
      all->ptr[i].f1.__handle = 0;
      return true;
    }
  }
  return false;
}

#endif
