// Any ATen operator, called by its schema name through libtorch's dispatcher (a boxed call,
// as TorchScript and torch's Python bindings make one): autograd, dtype promotion, views
// and in-place semantics are torch's own. The arguments arrive as plain tagged values; the
// schema says what each becomes (a missing one takes its default, a kwarg goes by name).
// Nothing throws across the C boundary: an error is returned as a malloc'd message.
#include <ATen/ScalarOps.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/enum_tag.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" {

// A value crossing the boundary. Lists point at arrays the caller owns (arguments) or that
// lthost_values_release releases (results); a tensor is an `at::Tensor*`.
typedef struct {
  int32_t tag;
  int64_t i;  // int, bool, or a list's or a string's length
  double d;
  void* p;    // tensor, list data, or a string (its `i` bytes; a result's is also NUL-terminated)
} lthost_value;

// An argument name: `len` bytes at `p`, not NUL-terminated.
typedef struct {
  const char* p;
  int64_t len;
} lthost_name;

enum {
  LT_NONE = 0,
  LT_TENSOR = 1,
  LT_INT = 2,
  LT_FLOAT = 3,
  LT_BOOL = 4,
  LT_INTS = 5,
  LT_FLOATS = 6,
  LT_TENSORS = 7,  // elements may be null: an optional tensor list
  LT_STRING = 8,
  LT_BOOLS = 9,
};

void lthost_values_release(lthost_value* vals, int64_t n);
}

namespace {

char* dup(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

const char* tag_name(int32_t tag) {
  switch (tag) {
    case LT_NONE: return "None";
    case LT_TENSOR: return "a tensor";
    case LT_INT: return "an int";
    case LT_FLOAT: return "a float";
    case LT_BOOL: return "a bool";
    case LT_INTS: return "a list of ints";
    case LT_FLOATS: return "a list of floats";
    case LT_TENSORS: return "a list of tensors";
    case LT_STRING: return "a string";
    case LT_BOOLS: return "a list of bools";
    default: return "an unknown value";
  }
}

[[noreturn]] void refuse(const c10::Argument& arg, const lthost_value& v) {
  throw std::runtime_error("argument `" + arg.name() + "` expects " + arg.type()->str() + ", got " + tag_name(v.tag));
}

const at::Tensor& tensor_at(const lthost_value& v) { return *static_cast<const at::Tensor*>(v.p); }

// `v` as the IValue of type `type` (the argument `arg`'s, or an element's).
c10::IValue convert(const c10::Argument& arg, const c10::TypePtr& type, const lthost_value& v) {
  using K = c10::TypeKind;
  switch (type->kind()) {
    case K::OptionalType:
      if (v.tag == LT_NONE) return c10::IValue();
      return convert(arg, type->castRaw<c10::OptionalType>()->getElementType(), v);
    case K::TensorType:
      if (v.tag == LT_TENSOR && v.p != nullptr) return tensor_at(v);
      // A number where a tensor goes (`x + 1` as aten::add.Tensor): a wrapped-number tensor,
      // as torch's Python binding makes it, so dtype promotion treats it as a number.
      if (v.tag == LT_INT) return at::native::wrapped_scalar_tensor(c10::Scalar(v.i));
      if (v.tag == LT_FLOAT) return at::native::wrapped_scalar_tensor(c10::Scalar(v.d));
      if (v.tag == LT_BOOL) return at::native::wrapped_scalar_tensor(c10::Scalar(v.i != 0));
      break;
    case K::IntType:
    case K::SymIntType:
    case K::ScalarTypeType:
    case K::LayoutType:
    case K::MemoryFormatType:
      if (v.tag == LT_INT) return v.i;
      break;
    case K::FloatType:
    case K::SymFloatType:
      if (v.tag == LT_FLOAT) return v.d;
      if (v.tag == LT_INT) return static_cast<double>(v.i);
      break;
    case K::BoolType:
    case K::SymBoolType:
      if (v.tag == LT_BOOL) return v.i != 0;
      break;
    case K::NumberType:
      if (v.tag == LT_INT) return v.i;
      if (v.tag == LT_FLOAT) return v.d;
      if (v.tag == LT_BOOL) return v.i != 0;
      break;
    case K::StringType:
      if (v.tag == LT_STRING) return std::string(static_cast<const char*>(v.p), static_cast<size_t>(v.i));
      break;
    case K::DeviceObjType:
      if (v.tag == LT_STRING) return c10::Device(std::string(static_cast<const char*>(v.p), static_cast<size_t>(v.i)));
      break;
    case K::ListType: {
      auto elem = type->castRaw<c10::ListType>()->getElementType();
      auto ek = elem->kind();
      if (ek == K::IntType || ek == K::SymIntType) {
        if (v.tag == LT_INTS) {
          auto* xs = static_cast<const int64_t*>(v.p);
          return std::vector<int64_t>(xs, xs + v.i);
        }
        // `int[2] kernel_size=3`: one int stands for N equal ones, as in torch's Python API;
        // for `int[] size` it is a one-element list (`torch.empty(5)`).
        if (v.tag == LT_INT) return std::vector<int64_t>(arg.N() ? *arg.N() : 1, v.i);
      } else if (ek == K::FloatType) {
        if (v.tag == LT_FLOATS) {
          auto* xs = static_cast<const double*>(v.p);
          return std::vector<double>(xs, xs + v.i);
        }
      } else if (ek == K::BoolType) {
        if (v.tag == LT_BOOLS) {
          auto* xs = static_cast<const uint8_t*>(v.p);
          c10::List<bool> out;
          for (int64_t k = 0; k < v.i; ++k) out.push_back(xs[k] != 0);
          return out;
        }
      } else if (ek == K::TensorType && v.tag == LT_TENSORS) {
        auto* xs = static_cast<void* const*>(v.p);
        std::vector<at::Tensor> out;
        for (int64_t k = 0; k < v.i; ++k) {
          if (xs[k] == nullptr) throw std::runtime_error("argument `" + arg.name() + "`: a None in a list of tensors");
          out.push_back(*static_cast<const at::Tensor*>(xs[k]));
        }
        return out;
      } else if (ek == K::OptionalType && v.tag == LT_TENSORS) {
        auto* xs = static_cast<void* const*>(v.p);
        c10::List<std::optional<at::Tensor>> out;
        for (int64_t k = 0; k < v.i; ++k) {
          if (xs[k] == nullptr) {
            out.push_back(std::nullopt);
          } else {
            out.push_back(*static_cast<const at::Tensor*>(xs[k]));
          }
        }
        return out;
      }
      break;
    }
    default:
      throw std::runtime_error("argument `" + arg.name() + "` has type " + type->str() +
                               ", which plugins cannot pass yet");
  }
  refuse(arg, v);
}

// A list of numbers as a malloc'd array (freed by lthost_values_free).
template <typename T>
lthost_value give_list(int32_t tag, const std::vector<T>& list) {
  auto* xs = static_cast<T*>(std::malloc(sizeof(T) * (list.size() + 1)));
  if (!list.empty()) std::memcpy(xs, list.data(), sizeof(T) * list.size());
  return lthost_value{tag, static_cast<int64_t>(list.size()), 0.0, xs};
}

// A result as a value the Rust side takes ownership of.
lthost_value give(const c10::IValue& r) {
  lthost_value v{LT_NONE, 0, 0.0, nullptr};
  if (r.isNone()) return v;
  if (r.isTensor()) {
    const auto& t = r.toTensor();
    if (!t.defined()) return v;
    v.tag = LT_TENSOR;
    v.p = new at::Tensor(t);
  } else if (r.isInt()) {
    v.tag = LT_INT;
    v.i = r.toInt();
  } else if (r.isDouble()) {
    v.tag = LT_FLOAT;
    v.d = r.toDouble();
  } else if (r.isBool()) {
    v.tag = LT_BOOL;
    v.i = r.toBool() ? 1 : 0;
  } else if (r.isTensorList()) {
    auto list = r.toTensorVector();
    v.tag = LT_TENSORS;
    v.i = static_cast<int64_t>(list.size());
    auto** xs = static_cast<void**>(std::malloc(sizeof(void*) * (list.size() + 1)));
    for (size_t k = 0; k < list.size(); ++k) xs[k] = list[k].defined() ? new at::Tensor(list[k]) : nullptr;
    v.p = xs;
  } else if (r.isIntList()) {
    v = give_list(LT_INTS, r.toIntVector());
  } else if (r.isDoubleList()) {
    v = give_list(LT_FLOATS, r.toDoubleVector());
  } else if (r.isString()) {
    v.tag = LT_STRING;
    v.i = static_cast<int64_t>(r.toStringRef().size());
    v.p = dup(r.toStringRef());
  } else {
    throw std::runtime_error("the op returned a " + r.tagKind() + ", which plugins cannot receive yet");
  }
  return v;
}

// The argument stack of a call, kept per thread between calls (no allocation per call); a
// call made while one is running on the same thread gets a fresh one.
struct StackLease {
  static thread_local torch::jit::Stack spare;
  torch::jit::Stack stack;
  StackLease() : stack(std::move(spare)) { stack.clear(); }
  ~StackLease() {
    stack.clear();
    spare = std::move(stack);
  }
};
thread_local torch::jit::Stack StackLease::spare;

// A stack value as the C++ type an unboxed kernel takes for it (torchgen's mapping of the
// schema's types).
template <typename T>
struct Unbox;
template <>
struct Unbox<const at::Tensor&> {
  static const at::Tensor& from(const c10::IValue& v) { return v.toTensor(); }
};
template <>
struct Unbox<const std::optional<at::Tensor>&> {
  static std::optional<at::Tensor> from(const c10::IValue& v) { return v.toOptional<at::Tensor>(); }
};
template <>
struct Unbox<const c10::Scalar&> {
  static c10::Scalar from(const c10::IValue& v) { return v.toScalar(); }
};
template <>
struct Unbox<int64_t> {
  static int64_t from(const c10::IValue& v) { return v.toInt(); }
};
template <>
struct Unbox<c10::SymInt> {
  static c10::SymInt from(const c10::IValue& v) { return v.toSymInt(); }
};
template <>
struct Unbox<double> {
  static double from(const c10::IValue& v) { return v.toDouble(); }
};
template <>
struct Unbox<bool> {
  static bool from(const c10::IValue& v) { return v.toBool(); }
};
template <>
struct Unbox<std::optional<at::ScalarType>> {
  static std::optional<at::ScalarType> from(const c10::IValue& v) { return v.toOptional<at::ScalarType>(); }
};

// Calls `op` unboxed with the stack's values as `A...`, as torch's C++ API (`at::neg`) and
// tch do: the same kernels as the boxed call, without boxing the arguments again for each
// kernel the dispatcher passes through.
using Unboxed = at::Tensor (*)(const c10::OperatorHandle&, const torch::jit::Stack&);

template <typename... A, size_t... I>
at::Tensor call_unboxed(const c10::OperatorHandle& op, const torch::jit::Stack& s, std::index_sequence<I...>) {
  return op.typed<at::Tensor(A...)>().call(Unbox<A>::from(s[I])...);
}
template <typename... A>
at::Tensor unboxed(const c10::OperatorHandle& op, const torch::jit::Stack& s) {
  return call_unboxed<A...>(op, s, std::index_sequence_for<A...>{});
}

// The same call with no stack at all, on a typed handle made once (`typed_handle`): argument
// `i` is the tensor `given[i]` where one is given (only where the schema takes a tensor), else
// the schema's default `defaults[i]`.
using Direct = at::Tensor (*)(const void* typed, const at::Tensor* const* given, const c10::IValue* defaults);

template <typename A>
struct Pick {
  static decltype(auto) from(const at::Tensor* const* given, const c10::IValue* defaults, size_t i) {
    return Unbox<A>::from(defaults[i]);
  }
};
template <>
struct Pick<const at::Tensor&> {
  static const at::Tensor& from(const at::Tensor* const* given, const c10::IValue* defaults, size_t i) {
    return given[i] != nullptr ? *given[i] : defaults[i].toTensor();
  }
};
template <>
struct Pick<const std::optional<at::Tensor>&> {
  static std::optional<at::Tensor> from(const at::Tensor* const* given, const c10::IValue* defaults, size_t i) {
    return given[i] != nullptr ? std::optional<at::Tensor>(*given[i]) : defaults[i].toOptional<at::Tensor>();
  }
};

template <typename... A>
using Typed = c10::TypedOperatorHandle<at::Tensor(A...)>;

template <typename... A, size_t... I>
at::Tensor call_direct(const void* typed, const at::Tensor* const* given, const c10::IValue* defaults,
                       std::index_sequence<I...>) {
  return static_cast<const Typed<A...>*>(typed)->call(Pick<A>::from(given, defaults, I)...);
}
template <typename... A>
at::Tensor direct(const void* typed, const at::Tensor* const* given, const c10::IValue* defaults) {
  return call_direct<A...>(typed, given, defaults, std::index_sequence_for<A...>{});
}

// The typed handle `direct` calls (checked against torch's C++ signature once, here, rather
// than on every call as `typed()` does).
template <typename... A>
void* typed_handle(const c10::OperatorHandle& op) {
  return new Typed<A...>(op.typed<at::Tensor(A...)>());
}
template <typename... A>
void drop_typed(void* typed) {
  delete static_cast<Typed<A...>*>(typed);
}

template <typename... A>
void signature(const c10::OperatorHandle& op) {
  op.typed<at::Tensor(A...)>();
}

using Ten = const at::Tensor&;
using OptTen = const std::optional<at::Tensor>&;
using Sc = const c10::Scalar&;
using OptDt = std::optional<at::ScalarType>;

// The argument shapes called unboxed, by a letter per argument (see `letter`): the
// commonest of the functional operators returning one tensor (elementwise, matrix products,
// softmax, linear, dropout, transpose, ...). Others are called boxed.
struct Shape {
  const char* key;
  Unboxed call;
  Direct direct;
  void* (*make_typed)(const c10::OperatorHandle&);
  void (*drop_typed)(void*);
  void (*check)(const c10::OperatorHandle&);  // throws unless torch's C++ signature is this one
};

#define LTHOST_SHAPE(key, ...) \
  {key, unboxed<__VA_ARGS__>, direct<__VA_ARGS__>, typed_handle<__VA_ARGS__>, drop_typed<__VA_ARGS__>, signature<__VA_ARGS__>}
const Shape SHAPES[] = {
    LTHOST_SHAPE("T", Ten),
    LTHOST_SHAPE("TT", Ten, Ten),
    LTHOST_SHAPE("TS", Ten, Sc),
    LTHOST_SHAPE("TI", Ten, int64_t),
    LTHOST_SHAPE("TY", Ten, c10::SymInt),
    LTHOST_SHAPE("TB", Ten, bool),
    LTHOST_SHAPE("TTS", Ten, Ten, Sc),
    LTHOST_SHAPE("TSS", Ten, Sc, Sc),
    LTHOST_SHAPE("TTT", Ten, Ten, Ten),
    LTHOST_SHAPE("TTo", Ten, Ten, OptTen),
    LTHOST_SHAPE("TII", Ten, int64_t, int64_t),
    LTHOST_SHAPE("TIB", Ten, int64_t, bool),
    LTHOST_SHAPE("TId", Ten, int64_t, OptDt),
    LTHOST_SHAPE("TFB", Ten, double, bool),
    LTHOST_SHAPE("Td", Ten, OptDt),
};
#undef LTHOST_SHAPE

// An argument's letter: its type as an unboxed kernel takes it, or '?' for one no shape has.
char letter(const c10::Argument& a) {
  using K = c10::TypeKind;
  const auto& t = a.real_type();
  if (a.alias_info() != nullptr && a.alias_info()->isWrite()) return '?';
  switch (t->kind()) {
    case K::TensorType: return 'T';
    case K::NumberType: return 'S';
    case K::IntType: return 'I';
    case K::SymIntType: return 'Y';
    case K::FloatType: return 'F';
    case K::BoolType: return 'B';
    case K::OptionalType: {
      auto e = t->castRaw<c10::OptionalType>()->getElementType()->kind();
      if (e == K::TensorType) return 'o';
      if (e == K::ScalarTypeType) return 'd';
      return '?';
    }
    default: return '?';
  }
}

// The shape `op` is called unboxed by, if its schema has one of SHAPES and returns one
// tensor (written to none of its arguments), and torch agrees on the C++ signature.
const Shape* unboxed_form(const c10::OperatorHandle& op) {
  const auto& schema = op.schema();
  const auto& rets = schema.returns();
  if (rets.size() != 1 || rets[0].real_type()->kind() != c10::TypeKind::TensorType || schema.is_vararg() ||
      (rets[0].alias_info() != nullptr && rets[0].alias_info()->isWrite())) {
    return nullptr;
  }
  std::string key;
  for (const auto& a : schema.arguments()) key += letter(a);
  for (const auto& shape : SHAPES) {
    if (key != shape.key) continue;
    try {
      shape.check(op);
      return &shape;
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  return nullptr;
}

bool writes_an_argument(const c10::OperatorHandle& op) {
  for (const auto& a : op.schema().arguments()) {
    if (a.alias_info() != nullptr && a.alias_info()->isWrite()) return true;
  }
  return false;
}

// A resolved operator: the dispatcher's handle and, for the shapes above, its unboxed calls.
struct LtOp {
  c10::OperatorHandle handle;
  Unboxed fast = nullptr;
  Direct direct = nullptr;
  std::unique_ptr<void, void (*)(void*)> typed{nullptr, nullptr};  // what `direct` calls
  bool writes = false;  // whether it writes to an argument (`Tensor(a!)`)
  // `direct_with[n]`: whether `direct` may be called with the first n arguments given as
  // tensors: each of them takes a tensor, and every later one has a default.
  bool direct_with[4] = {false, false, false, false};
  std::vector<c10::IValue> defaults;  // each argument's default (None where it has none)

  explicit LtOp(const c10::OperatorHandle& op) : handle(op), writes(writes_an_argument(op)) {
    const Shape* shape = unboxed_form(op);
    if (shape == nullptr) return;
    fast = shape->call;
    direct = shape->direct;
    typed = std::unique_ptr<void, void (*)(void*)>(shape->make_typed(op), shape->drop_typed);
    const auto& params = op.schema().arguments();
    for (const auto& a : params) defaults.push_back(a.default_value() ? *a.default_value() : c10::IValue());
    for (size_t n = 1; n < 4 && n <= params.size(); ++n) {
      bool ok = true;
      for (size_t k = 0; k < params.size(); ++k) {
        char l = letter(params[k]);
        ok = ok && (k < n ? (l == 'T' || l == 'o') : params[k].default_value().has_value());
      }
      direct_with[n] = ok;
    }
  }
};

}  // namespace

extern "C" {

// The operator `name` (e.g. "aten::masked_fill") with overload `overload` ("" for none), or
// null with a message when there is no such operator.
void* lthost_op_find(const char* name, const char* overload, char** err) {
  try {
    auto op = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!op) {
      *err = dup(std::string("no operator ") + name + (overload[0] ? std::string(".") + overload : std::string()));
      return nullptr;
    }
    return new LtOp(*op);
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return nullptr;
  }
}

void lthost_op_free(void* op) { delete static_cast<LtOp*>(op); }

// Every operator registered with the dispatcher, `name[.overload]` per line (malloc'd).
char* lthost_op_names() {
  std::string all;
  for (const auto& op : c10::Dispatcher::singleton().getAllOpNames()) {
    all += op.name;
    if (!op.overload_name.empty()) all += "." + op.overload_name;
    all += "\n";
  }
  return dup(all);
}

// The operator's schema as torch prints it (malloc'd).
char* lthost_op_schema(void* op) {
  std::ostringstream s;
  s << static_cast<LtOp*>(op)->handle.schema();
  return dup(s.str());
}

// `Generator?`.
bool is_generator(const c10::TypePtr& t) {
  return t->kind() == c10::TypeKind::OptionalType &&
         t->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::GeneratorType;
}

// A tensor's sizes, strides and storage offset, to put back after a failed in-place op.
struct Geometry {
  at::Tensor tensor;
  std::vector<int64_t> sizes, strides;
  int64_t offset;
  explicit Geometry(const at::Tensor& t)
      : tensor(t), sizes(t.sizes().vec()), strides(t.strides().vec()), offset(t.storage_offset()) {}
  void restore() {
    auto* impl = tensor.unsafeGetTensorImpl();
    if (impl->sizes() == c10::IntArrayRef(sizes) && impl->strides() == c10::IntArrayRef(strides) &&
        impl->storage_offset() == offset) {
      return;
    }
    impl->set_sizes_and_strides(sizes, strides, offset);
  }
};

// Whether torch tags the operator `nondeterministic_seeded` (it draws random numbers).
bool lthost_op_seeded(void* op) {
  return static_cast<LtOp*>(op)->handle.hasTag(at::Tag::nondeterministic_seeded);
}

// Whether the operator is called unboxed (its argument shape is one of SHAPES).
bool lthost_op_unboxed(void* op) { return static_cast<LtOp*>(op)->fast != nullptr; }

// Whether lthost_op_call_direct may be called with `n` tensors.
bool lthost_op_direct(void* op, int64_t n) {
  auto* lt = static_cast<LtOp*>(op);
  return n >= 0 && n < 4 && lt->direct_with[n];
}

// Calls `op` with the tensors `tensors[0..n]` (`at::Tensor*`) as its first arguments and the
// rest at their defaults, straight to its unboxed kernel (lthost_op_direct(op, n) must hold).
// On success (0) `*out` is the result (a new `at::Tensor*`), else (-1) `*err` a message.
int lthost_op_call_direct(void* op, const void* const* tensors, int64_t n, void** out, char** err) {
  *out = nullptr;
  try {
    auto* lt = static_cast<LtOp*>(op);
    if (n < 0 || n >= 4 || !lt->direct_with[n]) throw std::runtime_error("not callable with " + std::to_string(n) + " tensors");
    const at::Tensor* given[4] = {nullptr, nullptr, nullptr, nullptr};
    for (int64_t k = 0; k < n; ++k) given[k] = static_cast<const at::Tensor*>(tensors[k]);
    *out = new at::Tensor(lt->direct(lt->typed.get(), given, lt->defaults.data()));
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return -1;
  }
  return 0;
}

// The number of values the operator returns (its schema's returns).
int64_t lthost_op_returns(void* op) {
  return static_cast<int64_t>(static_cast<LtOp*>(op)->handle.schema().returns().size());
}


// Calls `op` with `nargs` positional values and `nkw` named ones; with `in_order` the
// positional values are the schema's first arguments, keyword-only ones included. On success
// (0) `out[0..*nout]` holds the results (`cap` is lthost_op_returns; release their contents
// with lthost_values_release), else (-1) `*err` holds a message.
int lthost_op_call(void* op, const lthost_value* args, int64_t nargs, bool in_order, const lthost_name* kw_names,
                   const lthost_value* kw_values, int64_t nkw, void* generator, lthost_value* out, int64_t cap,
                   int64_t* nout, char** err) {
  *nout = 0;
  int64_t given_out = 0;
  try {
    auto* lt = static_cast<LtOp*>(op);
    auto* handle = &lt->handle;
    const auto& schema = handle->schema();
    const auto& params = schema.arguments();
    if (nargs > static_cast<int64_t>(params.size())) {
      throw std::runtime_error(schema.name() + " takes " + std::to_string(params.size()) + " arguments, got " +
                               std::to_string(nargs));
    }
    if (nkw > 64) throw std::runtime_error(schema.name() + ": more than 64 named arguments");
    uint64_t used = 0;
    StackLease lease;
    auto& stack = lease.stack;
    stack.reserve(params.size());
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& arg = params[k];
      if (static_cast<int64_t>(k) < nargs) {
        if (arg.kwarg_only() && !in_order) {
          throw std::runtime_error("argument `" + arg.name() + "` of " + schema.name() + " is keyword-only");
        }
        stack.push_back(convert(arg, arg.type(), args[k]));
        continue;
      }
      const lthost_value* given = nullptr;
      for (int64_t j = 0; j < nkw; ++j) {
        if (arg.name() == std::string_view(kw_names[j].p, static_cast<size_t>(kw_names[j].len))) {
          given = &kw_values[j];
          used |= uint64_t{1} << j;
        }
      }
      if (given != nullptr) {
        stack.push_back(convert(arg, arg.type(), *given));
      } else if (arg.default_value()) {
        stack.push_back(*arg.default_value());
      } else if (generator != nullptr && is_generator(arg.type())) {
        stack.push_back(c10::IValue());  // filled with `generator` below
      } else {
        throw std::runtime_error("missing argument `" + arg.name() + "` of " + schema.name());
      }
    }
    for (int64_t j = 0; j < nkw; ++j) {
      if ((used & (uint64_t{1} << j)) == 0) {
        throw std::runtime_error("no argument `" + std::string(kw_names[j].p, static_cast<size_t>(kw_names[j].len)) +
                                 "` in " + schema.name());
      }
    }
    // A `Generator?` left out or None draws from `generator` when one is given (a worker's own).
    if (generator != nullptr) {
      for (size_t k = 0; k < params.size(); ++k) {
        if (is_generator(params[k].type()) && stack[k].isNone()) {
          stack[k] = c10::IValue(*static_cast<at::Generator*>(generator));
        }
      }
    }
    // The geometry of every tensor the operator writes (`Tensor(a!)`): an in-place op that
    // fails part-way (resize_ refused by the tensor budget after setting the new sizes) must
    // not leave a tensor whose sizes reach past its storage.
    std::vector<Geometry> written;
    for (size_t k = 0; lt->writes && k < params.size(); ++k) {
      const auto* alias = params[k].alias_info();
      if (alias != nullptr && alias->isWrite() && stack[k].isTensor() && stack[k].toTensor().defined()) {
        written.emplace_back(stack[k].toTensor());
      }
    }
    try {
      if (lt->fast != nullptr) {
        auto r = lt->fast(*handle, stack);
        stack.clear();
        stack.emplace_back(std::move(r));
      } else {
        handle->callBoxed(&stack);
      }
    } catch (...) {
      for (auto& g : written) g.restore();
      throw;
    }
    if (static_cast<int64_t>(stack.size()) > cap) {
      throw std::runtime_error(schema.name() + " returned " + std::to_string(stack.size()) + " values, not " +
                               std::to_string(cap));
    }
    for (const auto& r : stack) out[given_out++] = give(r);
  } catch (const std::exception& e) {
    lthost_values_release(out, given_out);
    *err = dup(e.what());
    return -1;
  }
  *nout = given_out;
  return 0;
}

// Releases what results hold that the Rust side did not take (a taken tensor's `p` is null);
// the array itself is the caller's.
void lthost_values_release(lthost_value* vals, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    auto& v = vals[k];
    if (v.tag == LT_TENSOR && v.p != nullptr) delete static_cast<at::Tensor*>(v.p);
    if (v.tag == LT_TENSORS && v.p != nullptr) {
      auto** xs = static_cast<void**>(v.p);
      for (int64_t j = 0; j < v.i; ++j) delete static_cast<at::Tensor*>(xs[j]);
    }
    if (v.tag != LT_TENSOR && v.p != nullptr) std::free(v.p);
    v.p = nullptr;
  }
}

}  // extern "C"
