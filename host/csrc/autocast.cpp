// torch.autocast's switches and torch's default dtype, which tch 0.26 does not expose.
// Device types are c10::DeviceType numbers (0 CPU, 1 CUDA), dtypes c10::ScalarType numbers
// (tch's `Kind` numbering). Each is what the same-named torch function calls; none throws
// (the caller passes only CPU/CUDA and floating dtypes).
#include <ATen/autocast_mode.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarType.h>

extern "C" {

int lthost_autocast_enabled(int device_type) {
  return at::autocast::is_autocast_enabled(static_cast<c10::DeviceType>(device_type)) ? 1 : 0;
}

void lthost_set_autocast_enabled(int device_type, int enabled) {
  at::autocast::set_autocast_enabled(static_cast<c10::DeviceType>(device_type), enabled != 0);
}

int lthost_autocast_dtype(int device_type) {
  return static_cast<int>(at::autocast::get_autocast_dtype(static_cast<c10::DeviceType>(device_type)));
}

void lthost_set_autocast_dtype(int device_type, int dtype) {
  at::autocast::set_autocast_dtype(static_cast<c10::DeviceType>(device_type), static_cast<c10::ScalarType>(dtype));
}

int lthost_autocast_increment_nesting() { return at::autocast::increment_nesting(); }

int lthost_autocast_decrement_nesting() { return at::autocast::decrement_nesting(); }

void lthost_autocast_clear_cache() { at::autocast::clear_cache(); }

int lthost_autocast_cache_enabled() { return at::autocast::is_autocast_cache_enabled() ? 1 : 0; }

void lthost_set_autocast_cache_enabled(int enabled) { at::autocast::set_autocast_cache_enabled(enabled != 0); }

int lthost_default_dtype() { return static_cast<int>(c10::get_default_dtype_as_scalartype()); }

void lthost_set_default_dtype(int dtype) {
  c10::set_default_dtype(c10::scalarTypeToTypeMeta(static_cast<c10::ScalarType>(dtype)));
}
}
